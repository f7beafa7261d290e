"""Choose the track's mastering gain: predicted from the plan before any speech exists.

A track is encoded while its speech is still being synthesised (render.py), so
the gain that meets the loudness target has to be known before the first block
is written. It can be, because every clip is matched to the same loudness
(``core.levels.CLIP_LUFS``) and every other sound sits at a fixed level relative to
the voice: a model of the plan - 100 ms steps of K-weighted power for the
voice, bells, breathing tones and background bed, gated exactly as BS.1770
gates the real mix - predicts the mix's loudness. The mastered track is metered
as it is written; when it misses the target by more than ``TOLERANCE_DB`` (a
poor prediction, or a limiter working hard), it is written again with the gain
corrected by what was measured (render.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compassion_audio.core.audio import db_to_gain
from compassion_audio.core.settings import MixSettings
from compassion_audio.core.loudness import LoudnessMeter, gated_lufs, lufs_to_power
from compassion_audio.core.timeline import Timeline

VOICE_HEADROOM_LU = 2.0
"""The voice may end up at most this far above the target. Normally the whole mix
sets the gain (bells, bed and tones count, as BS.1770 measures them); but a track
that is mostly quiet breathing tones would otherwise be pushed up until its voice
is crushed by the limiter - there the voice sets the gain, and the file measures
quieter than the target by design."""
TOLERANCE_DB = 0.3
"""A first pass this close to its target is kept (the standard allows ±1 LU, and an
album's tracks must match within 1 LU); further off, the track is written again."""
GAIN_LIMIT_DB = 30.0
SPEECH_SPREAD_LU = 0.2
"""Real speech measures this much quieter over the whole mix than where the voice speaks
(its softer edges and word gaps weigh in the whole mix's gating; the model's constant
voice has none). Measured: 24 short renders of the 12 exercises, with and without a
rain bed, came out at -16.17 to -16.30 LUFS (voice -15.96 to -16.06) without it."""


@dataclass(frozen=True)
class Mastering:
    """What mastering applied and measured (loudness in LUFS, of the mastered PCM)."""

    gain_db: float
    """The gain applied before the limiter."""
    output_lufs: float = math.nan
    """The mastered track, BS.1770 integrated (NaN: loudness off, not measured)."""
    output_voice_lufs: float = math.nan
    """The mastered track where the voice speaks (dialogue-gated)."""
    predicted_gain_db: float = math.nan
    """The gain the plan predicted before any audio existed (NaN: not predicted)."""
    passes: int = 1
    """2 when the first pass missed the target by more than TOLERANCE_DB and the track
    was written again with the gain corrected by what was measured."""


def gain_for(whole: float, voice: float, target: float | None) -> float:
    """The gain that brings a mix measuring ``whole`` (``voice`` where the voice speaks)
    to ``target``, the voice never more than VOICE_HEADROOM_LU above it; 0 when
    there is no target or nothing to measure."""
    if target is None or not math.isfinite(whole):
        return 0.0
    gain = target - whole
    if math.isfinite(voice):
        gain = min(gain, target + VOICE_HEADROOM_LU - voice)
    return float(np.clip(gain, -GAIN_LIMIT_DB, GAIN_LIMIT_DB))


def voiced_steps(timeline: Timeline, step_frames: int) -> np.ndarray:
    """One bool per 100 ms step: does the voice speak there?"""
    voiced = np.zeros(timeline.frames // step_frames + 1, dtype=bool)
    for e in timeline.events:
        if e.kind == "speech":
            voiced[e.start // step_frames: e.end // step_frames + 1] = True
    return voiced


def measured(meter: LoudnessMeter, timeline: Timeline) -> tuple[float, float]:
    """(whole, voice) integrated loudness of a metered track of ``timeline``."""
    whole = meter.integrated_lufs()
    voiced = voiced_steps(timeline, meter.step_frames)
    return whole, (meter.integrated_lufs(select=voiced) if voiced.any() else whole)


@dataclass(frozen=True)
class Prediction:
    whole_lufs: float
    voice_lufs: float
    gain_db: float


def predict(plan: Timeline, *, mix: MixSettings, voice_lufs: float,
            bell: np.ndarray | None = None, bell_gain: float = 1.0, bed=None,
            tone_steps=None) -> Prediction:
    """Predict the loudness of the mix of ``plan`` (whose speech may be estimated).

    ``voice_lufs`` is the loudness every clip is matched to (mono). ``tone_steps``
    (pattern -> mean step power of its tones at mix level) comes from the mixer,
    which knows how it renders tones.
    """
    sr = plan.sample_rate
    step = int(round(sr * 0.1))
    count = plan.frames // step + 1
    channels = mix.channels
    voiced = voiced_steps(plan, step)[:count]
    # The voice: constant power over its audible extent, scaled so that alone it
    # measures what each clip measures (the same gating, at the plan's layout).
    voice = np.where(voiced, 1.0, 0.0)
    alone = gated_lufs(voice)
    voice_lufs += 10.0 * math.log10(channels)  # a mono voice in every channel
    if math.isfinite(alone):
        voice *= lufs_to_power(voice_lufs) / lufs_to_power(alone)
    total = voice.copy()
    if bell is not None and bell.size:
        meter = LoudnessMeter(sr, 1)
        meter.add(np.concatenate([bell * bell_gain, np.zeros(step, dtype=np.float32)]))
        ring = meter.step_powers() * channels
        for e in plan.events:
            if e.kind == "bell":
                first = e.start // step
                span = ring[: max(0, count - first)]
                total[first:first + span.size] += span
    if tone_steps is not None:
        for e, power in tone_steps:
            total[e.start // step: e.end // step] += power * channels
    if bed is not None:
        level = db_to_gain(mix.background_level_db) ** 2 * bed_power(bed)
        ducked = level * db_to_gain(-mix.duck_db) ** 2
        total += np.where(voiced, ducked, level)
    voice_mix = gated_lufs(total, select=voiced) if voiced.any() else gated_lufs(total)
    whole = gated_lufs(total) - (SPEECH_SPREAD_LU if voiced.any() else 0.0)
    return Prediction(whole, voice_mix, gain_for(whole, voice_mix, mix.loudness_lufs))


def bed_power(bed) -> float:
    """Mean K-weighted power of a bed's loop, summed over its channels."""
    meter = LoudnessMeter(bed.sample_rate, bed.channels)
    meter.add(bed.loop)
    steps = meter.step_powers()
    return float(steps.mean()) if steps.size else 0.0
