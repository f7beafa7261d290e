"""Stage 3, sound: the timeline plan, tones, bells, beds, the mix and mastering."""
