"""Breathing-pace tones: a breath pattern and the soft cues that pace it, frame-exact."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compassion_audio.core.settings import BreathingSettings
from compassion_audio.core.errors import ParameterError

STYLES = ("glide", "chime", "quiet")
MIN_BREATHS_PER_MIN = 3.0
MAX_BREATHS_PER_MIN = 12.0
_SOURCE = "breathing"


@dataclass(frozen=True)
class BreathPattern:
    """One breath cycle: in, hold, out, hold (seconds)."""

    in_seconds: float
    hold_in_seconds: float
    out_seconds: float
    hold_out_seconds: float

    def __post_init__(self) -> None:
        if min(self.in_seconds, self.out_seconds) <= 0.5:
            raise ParameterError("in- and out-breaths must each be longer than 0.5 s", source=_SOURCE,
                                 hint=f"got in {self.in_seconds:g} s, out {self.out_seconds:g} s")
        if min(self.hold_in_seconds, self.hold_out_seconds) < 0:
            raise ParameterError("breath holds cannot be negative", source=_SOURCE)

    @property
    def cycle_seconds(self) -> float:
        return self.in_seconds + self.hold_in_seconds + self.out_seconds + self.hold_out_seconds

    @property
    def breaths_per_min(self) -> float:
        return 60.0 / self.cycle_seconds

    @classmethod
    def from_rate(cls, breaths_per_min: float, ratio: tuple[float, float] = (4, 6),
                  hold_in_seconds: float = 0.0, hold_out_seconds: float = 0.0) -> "BreathPattern":
        """In and out share what the holds leave of the cycle, in the proportion ``ratio``."""
        if not MIN_BREATHS_PER_MIN <= breaths_per_min <= MAX_BREATHS_PER_MIN:
            raise ParameterError(f"breathing rate {breaths_per_min:g} breaths/min is out of range",
                                 source=_SOURCE,
                                 hint=f"use {MIN_BREATHS_PER_MIN:g} to {MAX_BREATHS_PER_MIN:g}")
        if len(ratio) != 2 or min(ratio) <= 0:
            raise ParameterError(f"breath ratio {ratio!r} must be two positive numbers", source=_SOURCE,
                                 hint="e.g. 4:6 (in:out)")
        breathing = 60.0 / breaths_per_min - hold_in_seconds - hold_out_seconds
        if breathing <= 1.0:
            raise ParameterError("breath holds leave no time to breathe", source=_SOURCE,
                                 hint=f"holds must total under {60.0 / breaths_per_min - 1.0:g} s at this rate")
        share_in = ratio[0] / (ratio[0] + ratio[1])
        return cls(breathing * share_in, hold_in_seconds, breathing * (1.0 - share_in), hold_out_seconds)

    @classmethod
    def from_settings(cls, settings: BreathingSettings, breaths_per_min: float | None = None,
                      ratio: tuple[float, float] | None = None) -> "BreathPattern":
        """The track's breathing settings, with a marker's own rate or ratio when it gives one."""
        return cls.from_rate(breaths_per_min if breaths_per_min is not None else settings.breaths_per_min,
                             tuple(ratio if ratio is not None else settings.ratio),
                             settings.hold_in_seconds, settings.hold_out_seconds)


@dataclass(frozen=True)
class _Glide:
    low_hz: float
    high_hz: float
    level: float


_GLIDES = {"glide": _Glide(196.0, 294.0, 1.0), "quiet": _Glide(220.0, 262.0, 0.5)}
_CHIME_HZ = (392.0, 294.0)
"""Chime pitch at the start of the in-breath and of the out-breath."""
_CHIME_PARTIALS = ((1.0, 0.75, 1.0), (2.0, 0.18, 0.55), (3.0, 0.07, 0.35))
"""(frequency ratio, amplitude, decay-time factor): higher partials die sooner."""
_CHIME_DECAY_SECONDS = 1.5
"""The chime's fundamental falls 30 dB in this time."""
_CHIME_RING_SECONDS = 3.0
"""Each chime is faded out by then (it is 60 dB down), or sooner at the next turn."""
_OCTAVE_SHARE = 0.1
"""A faint octave above the glide's sine, for warmth."""


def cycle_start_frame(k: int, pattern: BreathPattern, sample_rate: int) -> int:
    """Offset of cycle k from the stretch start: from k directly, so rounding never accumulates."""
    return int(round(k * pattern.cycle_seconds * sample_rate))


def whole_cycles(pattern: BreathPattern, stretch_frames: int, sample_rate: int) -> int:
    """How many whole cycles fit in a stretch of ``stretch_frames``."""
    n = int(stretch_frames / (pattern.cycle_seconds * sample_rate))
    while n > 0 and cycle_start_frame(n, pattern, sample_rate) > stretch_frames:
        n -= 1
    while cycle_start_frame(n + 1, pattern, sample_rate) <= stretch_frames:
        n += 1
    return n


def render_tones(pattern: BreathPattern, style: str, *, stretch_start: int, stretch_end: int,
                 block_start: int, block_frames: int, sample_rate: int) -> np.ndarray:
    """Frames [block_start, block_start + block_frames) of a stretch's tones, mono float32.

    Zero outside the stretch and after its last whole cycle; peak about 1.0
    (``quiet`` about 0.5). A pure function of absolute frame numbers.
    """
    if style not in STYLES:
        raise ParameterError(f"unknown tone style {style!r}", source=_SOURCE,
                             hint=f"choose one of: {', '.join(STYLES)}")
    out = np.zeros(block_frames, dtype=np.float32)
    cycles = whole_cycles(pattern, stretch_end - stretch_start, sample_rate)
    first = block_start - stretch_start
    k = max(0, int(first / (pattern.cycle_seconds * sample_rate)) - 1)
    while k < cycles:
        begin = cycle_start_frame(k, pattern, sample_rate)
        end = cycle_start_frame(k + 1, pattern, sample_rate)
        if begin >= first + block_frames:
            break
        lo, hi = max(begin, first), min(end, first + block_frames)
        if lo < hi:
            t = np.arange(lo - begin, hi - begin, dtype=np.float64) / sample_rate
            out[lo - first:hi - first] = _cycle(pattern, style, t)
        k += 1
    return out


def _cycle(pattern: BreathPattern, style: str, t: np.ndarray) -> np.ndarray:
    """Samples at times ``t`` (seconds from the cycle start) of one cycle."""
    if style == "chime":
        return _chime_cycle(pattern, t)
    return _glide_cycle(pattern, _GLIDES[style], t)


def _ease(u: np.ndarray) -> np.ndarray:
    """Raised-cosine 0 -> 1 over u in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))


def _eased_integral(t: np.ndarray, span: float) -> np.ndarray:
    """Integral of _ease(t / span) dt from 0 to t (t within the span)."""
    return 0.5 * (t - span * np.sin(np.pi * t / span) / np.pi)


def _glide_cycle(pattern: BreathPattern, voice: _Glide, t: np.ndarray) -> np.ndarray:
    """Pitch rises through the in-breath, holds, falls through the out-breath; silent hold-out.

    Phase is the analytic integral of frequency, phase by phase, so it is
    continuous and exact at any frame without walking from the cycle start.
    """
    t_in, t_hold, t_out = pattern.in_seconds, pattern.hold_in_seconds, pattern.out_seconds
    lo, span = voice.low_hz, voice.high_hz - voice.low_hz
    phase_in_end = lo * t_in + 0.5 * span * t_in
    phase_hold_end = phase_in_end + voice.high_hz * t_hold
    # t is increasing, so each part of the breath is one contiguous slice.
    a, b, c = np.searchsorted(t, (t_in, t_in + t_hold, t_in + t_hold + t_out))
    cycles = np.zeros_like(t)
    amplitude = np.zeros_like(t)

    ti = t[:a]
    cycles[:a] = lo * ti + span * _eased_integral(ti, t_in)
    amplitude[:a] = 0.75 + 0.25 * _ease(ti / t_in)
    _shape_edge(amplitude[:a], ti, min(0.3, t_in / 4), rising=True)

    th = t[a:b] - t_in
    cycles[a:b] = phase_in_end + voice.high_hz * th
    if t_hold > 0:
        # A gentle dip and return, so a held breath still has a soft sound to rest on.
        amplitude[a:b] = 1.0 - 0.2 * (1.0 - np.cos(2.0 * np.pi * th / t_hold))

    to = t[b:c] - t_in - t_hold
    cycles[b:c] = phase_hold_end + voice.high_hz * to - span * _eased_integral(to, t_out)
    amplitude[b:c] = 1.0 - 0.25 * _ease(to / t_out)
    _shape_edge(amplitude[b:c], t_out - to, min(0.8, t_out / 3), rising=False)

    # Wrap to one turn in float64 first, so the float32 sine stays exact to ~1e-7.
    turn = (2.0 * np.pi * (cycles - np.floor(cycles))).astype(np.float32)
    tone = (1.0 - _OCTAVE_SHARE) * np.sin(turn) + _OCTAVE_SHARE * np.sin(2.0 * turn)
    return (voice.level * amplitude.astype(np.float32) * tone).astype(np.float32)


def _shape_edge(amplitude: np.ndarray, distance: np.ndarray, seconds: float, *, rising: bool) -> None:
    """Scale in place by a raised cosine over the frames within ``seconds`` of a silent edge.

    ``distance`` is each frame's time from that edge; it increases with the
    array for a rising edge and decreases for a falling one.
    """
    if rising:
        n = int(np.searchsorted(distance, seconds))
        amplitude[:n] *= _ease(distance[:n] / seconds)
    else:
        n = int(np.searchsorted(-distance, -seconds))
        amplitude[n:] *= _ease(distance[n:] / seconds)


def _chime_cycle(pattern: BreathPattern, t: np.ndarray) -> np.ndarray:
    """A soft decaying chime at each turn, faded to silence before the next turn."""
    out_start = pattern.in_seconds + pattern.hold_in_seconds
    turns = ((0.0, out_start, _CHIME_HZ[0]), (out_start, pattern.cycle_seconds, _CHIME_HZ[1]))
    out = np.zeros(t.shape, dtype=np.float32)
    tau = _CHIME_DECAY_SECONDS / math.log(10.0 ** 1.5)
    for begin, end, hz in turns:
        ring = min(end - begin, _CHIME_RING_SECONDS)
        lo, hi = np.searchsorted(t, (begin, begin + ring))
        local = t[lo:hi] - begin
        envelope = _ease(local / 0.004) * (1.0 - _ease((local - (ring - 0.05)) / 0.05))
        chime = np.zeros_like(local)
        for ratio, amp, decay in _CHIME_PARTIALS:
            cycles = hz * ratio * local
            turn = (2.0 * np.pi * (cycles - np.floor(cycles))).astype(np.float32)
            chime += amp * np.exp(-local / (tau * decay)) * np.sin(turn)
        out[lo:hi] = envelope * chime
    return out
