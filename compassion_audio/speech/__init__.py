"""Stage 2, speech: engines, voices, the phrase cache and clip processing."""
