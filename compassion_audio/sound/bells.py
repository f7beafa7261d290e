"""Bells: a synthesised singing bowl, the user's own bell file, and how long a bell rings."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compassion_audio.core.audio import audible_bounds, decode_file, fade_edges
from compassion_audio.core.errors import AudioError
from compassion_audio.core.limits import MAX_SOUND_FILE_BYTES
from compassion_audio.core.input_files import input_file

# (frequency ratio, amplitude, decay time constant as a share of the bell's length, beat Hz)
# Ratios follow measured singing bowls (inharmonic, roughly 1 : 2.7 : 5.1 : 8.2 : 11.9);
# each partial is a pair detuned by the beat frequency, the slow "wah" of a real bowl.
_PARTIALS = (
    (1.000, 1.00, 0.30, 0.35),
    (2.710, 0.55, 0.16, 0.80),
    (5.130, 0.28, 0.08, 1.30),
    (8.210, 0.14, 0.045, 1.90),
    (11.90, 0.07, 0.03, 2.60),
)
_BEAT_SHARE = 0.25
"""Amplitude of each partial's detuned twin relative to the partial: beating of about ±2 dB."""
_STRIKE_SECONDS = 0.004
_TAIL_SHARE = 0.15
"""Share of the bell's length faded to exact zero at its end."""
_LOAD_THRESHOLD_DB = -45.0
"""A user's bell starts where it first comes within this much of its own peak."""
_LOAD_PREROLL_SECONDS = 0.003
_LOAD_FADE_OUT_SECONDS = 0.05


def singing_bowl(sample_rate: int, *, fundamental_hz: float = 196.0, seconds: float = 8.0) -> np.ndarray:
    """A struck singing bowl, mono float32, peak 1.0, ending in exact silence. Deterministic."""
    frames = int(round(seconds * sample_rate))
    t = np.arange(frames, dtype=np.float64) / sample_rate
    out = np.zeros(frames, dtype=np.float64)
    for i, (ratio, amp, decay_share, beat_hz) in enumerate(_PARTIALS):
        hz = fundamental_hz * ratio
        if hz >= 0.45 * sample_rate:
            continue
        # Fixed, unrelated start phases so partials do not all peak together at the strike.
        phase = 2.0 * np.pi * ((0.618034 * (i + 1)) % 1.0)
        envelope = amp * np.exp(-t / (decay_share * seconds))
        pair = np.sin(2 * np.pi * hz * t + phase) + _BEAT_SHARE * np.sin(2 * np.pi * (hz + beat_hz) * t + phase)
        out += envelope * pair
    strike = int(round(_STRIKE_SECONDS * sample_rate))
    tail = int(round(_TAIL_SHARE * frames))
    out = fade_edges(out.astype(np.float32), strike, tail)
    return _normalised(out)


def load_bell(path: str | Path, sample_rate: int) -> np.ndarray:
    """The user's bell file, mono float32: leading silence trimmed, peak 1.0, faded at both ends.

    The file must be a regular file of at most MAX_SOUND_FILE_BYTES (a ParameterError
    naming the limit: a FIFO would block the read for ever). Decode failures stay
    ``AudioError`` (they carry ffmpeg's message).
    """
    path = input_file(path, what="bell file", limit_bytes=MAX_SOUND_FILE_BYTES)
    samples = decode_file(path, sample_rate, channels=1).samples
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        raise AudioError(f"{path}: the bell file has no audible sound")
    threshold_db = 20.0 * np.log10(peak) + _LOAD_THRESHOLD_DB
    start, end = audible_bounds(samples, sample_rate, threshold_db=threshold_db)
    preroll = int(round(_LOAD_PREROLL_SECONDS * sample_rate))
    trimmed = samples[max(0, start - preroll):]
    # Fade in only across what was kept before the onset, so the strike itself is untouched.
    fade_in = min(preroll, start)
    fade_out = min(int(round(_LOAD_FADE_OUT_SECONDS * sample_rate)), trimmed.shape[0] // 2)
    return _normalised(fade_edges(trimmed, fade_in, fade_out))


def ring_frames(bell: np.ndarray, sample_rate: int, drop_db: float = 20.0) -> int:
    """Frames from the bell's start until its envelope stays ``drop_db`` below its peak.

    The envelope is the RMS over 20 ms windows, so single wave peaks and the
    bowl's slow beating do not end the ring early.
    """
    mono = np.abs(bell) if bell.ndim == 1 else np.abs(bell).max(axis=1)
    window = max(1, int(round(0.02 * sample_rate)))
    count = mono.shape[0] // window
    if count == 0:
        return int(mono.shape[0])
    power = np.square(mono[:count * window].astype(np.float64)).reshape(count, window).mean(axis=1)
    if power.max() == 0.0:
        return 0
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-drop_db / 10.0))
    return int(min((loud[-1] + 1) * window, mono.shape[0]))


def _normalised(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples)))
    return (samples / peak).astype(np.float32) if peak > 0 else samples.astype(np.float32)
