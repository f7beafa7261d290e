"""How long a track will play, before anything is spoken: the real planner, speech timed from word counts."""
from __future__ import annotations

import functools

from compassion_audio.core.segments import Bell, Script
from compassion_audio.core.settings import BreathingSettings, MixSettings, VoiceSettings
from compassion_audio.core.timeline import Timeline
from compassion_audio.sound import bells
from compassion_audio.sound.assemble import estimate_clips, plan_timeline
from compassion_audio.speech.voices import resolve_voice


def estimate_timeline(script: Script, *, voice: VoiceSettings | None = None,
                      breathing: BreathingSettings = BreathingSettings(),
                      mix: MixSettings = MixSettings()) -> Timeline:
    """The timeline ``render_track`` would plan for ``script``, with every phrase timed at the
    voice's words per minute: lead-in, bells, gaps, pauses, breathing and tail as rendered.

    ``voice`` None: the default voice profile's pace and gaps (what a render uses).
    Measured against real renders of every exercise: within ±6 % (tests/test_estimate.py).
    """
    if voice is None:
        voice = _default_voice()
    sr = mix.sample_rate
    bell_frames = ring_frames = 0
    if mix.bells or any(isinstance(s, Bell) for s in script.segments):
        bell_frames, ring_frames = _bell_frames(mix, sr)
    clips = estimate_clips([s.text for s in script.speech], voice, sr)
    return plan_timeline(script, clips, voice=voice, breathing=breathing, mix=mix,
                         bell_frames=bell_frames, bell_ring_frames=ring_frames)


def _default_voice() -> VoiceSettings:
    """The timing settings of the voice a render uses when none is chosen."""
    return resolve_voice(None).settings


def _bell_frames(mix: MixSettings, sample_rate: int) -> tuple[int, int]:
    """(length, ring) of the bell a render would load: the user's file, else the singing bowl."""
    if mix.bell_file:
        bell = bells.load_bell(mix.bell_file, sample_rate)
        return bell.shape[0], bells.ring_frames(bell, sample_rate)
    return _bowl_frames(sample_rate)


@functools.lru_cache(maxsize=4)
def _bowl_frames(sample_rate: int) -> tuple[int, int]:
    # Synthesising the bowl takes ~0.1 s: `list` times dozens of scripts.
    bowl = bells.singing_bowl(sample_rate)
    return bowl.shape[0], bells.ring_frames(bowl, sample_rate)
