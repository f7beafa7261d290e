"""Render a timeline to samples block by block, then master it (gain + true-peak limiter).

Nothing here holds the whole track: clips are read from the cache as they are
needed, tones and beds are pure functions of the absolute frame number, and
the track comes out as an iterator of blocks, so memory does not grow with
track length. The timeline may still be growing (speech being synthesised):
the mixer renders only as far as the plan is settled (``ready_frames``).
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compassion_audio.core.audio import db_to_gain, seconds_to_frames
from compassion_audio.core.settings import BreathingSettings, MixSettings
from compassion_audio.core.levels import BELL_PEAK_DB, SPEECH_RMS_DB
from compassion_audio.core.loudness import LoudnessMeter, PeakLimiter, true_peak
from compassion_audio.sound.tones import BreathPattern, render_tones
from compassion_audio.core.timeline import Timeline

BLOCK_FRAMES = 1 << 16
TONE_PEAK = 1.25
"""Bound of a pacing tone's true peak before its gain (tones.py keeps peaks near 1.0)."""
STREAM_MARGIN_SECONDS = 3.0
"""A growing plan is rendered only up to this far before its end: a clip's lead (~10 ms)
and the bed's ducking ramps (attack + release, twice, < 2 s) look no further ahead."""


@dataclass(frozen=True)
class _Placed:
    start: int
    end: int
    kind: str
    source: object
    peak: float = 1.0
    """Upper bound of this source's true peak in the mix, linear."""


class TrackMixer:
    """Mixes one timeline; ``render(a, n)`` is a pure function of the frames (a second pass
    gives the same samples)."""

    def __init__(self, timeline: Timeline, *, mix: MixSettings, breathing: BreathingSettings,
                 bell: np.ndarray | None = None, bed=None, block_frames: int = BLOCK_FRAMES) -> None:
        self.mix = mix
        self.breathing = breathing
        self.bell = bell
        self.bed = bed
        self._bed_peak = true_peak(bed.loop) if bed is not None else 0.0
        self.block_frames = block_frames
        self.channels = mix.channels
        self._bell_peak = db_to_gain(BELL_PEAK_DB) * true_peak(bell) if bell is not None and bell.size else 0.0
        # Tones peak near 1.0 (a sine's RMS is 3 dB under its peak): set their RMS
        # level_db under the speech's.
        self._tone_gain = db_to_gain(SPEECH_RMS_DB + breathing.level_db + 3.0)
        self._clip_cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.extend(timeline)

    def extend(self, timeline: Timeline) -> None:
        """Adopt ``timeline``: the first plan, or a longer (or the complete) plan of the same
        track - events already placed never move, so frames already rendered stay right."""
        self.timeline = timeline
        self._short = self._placements(timeline)
        self._short_starts = [p.start for p in self._short]
        self._short_max = max((p.end - p.start for p in self._short), default=0)
        self._tones = self._tone_stretches(timeline)
        self._speech = [(e.start, e.end) for e in timeline.events if e.kind == "speech"]
        self.speech_intervals = tuple(self._speech)
        sr = timeline.sample_rate
        sounding = [p.start for p in self._short] + [t.start for t in self._tones]
        first = min(sounding, default=timeline.frames)
        self._fade_in = min(seconds_to_frames(self.mix.fade_in_seconds, sr), first)
        last_speech = max((end for _, end in self._speech), default=0)
        if timeline.complete:
            self._fade_out_start = max(timeline.frames - seconds_to_frames(self.mix.fade_out_seconds, sr),
                                       last_speech)
            self.ready_frames = timeline.frames
        else:
            # Whatever comes next starts at timeline.frames at the earliest (less a clip's
            # short lead); the bed's ducking looks STREAM_MARGIN_SECONDS ahead at most.
            self._fade_out_start = None
            settled = timeline.frames - seconds_to_frames(STREAM_MARGIN_SECONDS, sr)
            self.ready_frames = max(0, settled) if sounding else 0

    def _placements(self, timeline: Timeline) -> list[_Placed]:
        placed = []
        for e in timeline.events:
            if e.kind == "speech" and e.clip is not None:
                placed.append(_Placed(e.clip_start, e.clip_start + e.clip.frames, "speech", e.clip.path,
                                      e.clip.true_peak))
            elif e.kind == "bell" and self.bell is not None and self.bell.size:
                placed.append(_Placed(e.start, e.start + self.bell.shape[0], "bell", None, self._bell_peak))
        placed.sort(key=lambda p: p.start)
        return placed

    def _tone_stretches(self, timeline: Timeline) -> list[_Placed]:
        b = self.breathing
        if not b.tones or b.style == "none":
            return []
        threshold = b.tones_in_pauses_seconds
        stretches = []
        for e in timeline.events:
            wants = e.kind == "breathe" or (
                e.kind == "pause" and threshold is not None
                and (e.end - e.start) >= threshold * timeline.sample_rate)
            if wants and e.end > e.start:
                pattern = BreathPattern.from_settings(b, breaths_per_min=e.breaths_per_min, ratio=e.ratio)
                stretches.append(_Placed(e.start, e.end, "tones", pattern))
        return stretches

    def tone_powers(self, timeline: Timeline) -> list[tuple[_Placed, float]]:
        """Each breathing-tone stretch of ``timeline`` with the mean K-weighted power of its
        tones at mix level (per channel): what the loudness prediction needs."""
        sr = timeline.sample_rate
        known: dict[object, float] = {}
        powers = []
        for t in self._tone_stretches(timeline):
            if t.source not in known:
                cycle = max(1, seconds_to_frames(t.source.cycle_seconds, sr))
                span = cycle * max(1, math.ceil(10 * sr / cycle))  # whole cycles, >= 10 s
                tones = render_tones(t.source, self.breathing.style, stretch_start=0,
                                     stretch_end=span + sr, block_start=0, block_frames=span,
                                     sample_rate=sr)
                meter = LoudnessMeter(sr, 1)
                meter.add(tones * self._tone_gain)
                steps = meter.step_powers()
                known[t.source] = float(steps.mean()) if steps.size else 0.0
            powers.append((t, known[t.source]))
        return powers

    def _clip(self, path: Path) -> np.ndarray:
        clip = self._clip_cache.get(path)
        if clip is None:
            clip = np.load(path, mmap_mode="r")
            self._clip_cache[path] = clip
            if len(self._clip_cache) > 8:
                self._clip_cache.popitem(last=False)
        return clip

    def peak_bound(self, a: int, n: int) -> float:
        """An upper bound of the true peak of frames [a, a+n): the sum of the peaks of
        every source sounding there (sources' true peaks add at worst)."""
        b = a + n
        lo = bisect_left(self._short_starts, a - self._short_max)
        hi = bisect_left(self._short_starts, b)
        bound = sum(p.peak for p in self._short[lo:hi] if p.end > a)
        bound += sum(TONE_PEAK * self._tone_gain for t in self._tones if t.end > a and t.start < b)
        if self.bed is not None:
            bound += self._bed_peak * db_to_gain(self.mix.background_level_db)
        return bound

    def render(self, a: int, n: int) -> np.ndarray:
        """Frames [a, a+n) of the raw mix: a pure function of the frame numbers."""
        b = a + n
        voice = np.zeros(n, dtype=np.float32)
        lo = bisect_left(self._short_starts, a - self._short_max)
        hi = bisect_left(self._short_starts, b)
        bell_gain = db_to_gain(BELL_PEAK_DB)
        for p in self._short[lo:hi]:
            if p.end <= a:
                continue
            s, e = max(p.start, a), min(p.end, b)
            src = self._clip(p.source) if p.kind == "speech" else self.bell
            chunk = np.asarray(src[s - p.start:e - p.start], dtype=np.float32)
            voice[s - a:e - a] += chunk if p.kind == "speech" else chunk * bell_gain
        for t in self._tones:
            if t.end > a and t.start < b:
                voice += self._tone_gain * render_tones(
                    t.source, self.breathing.style, stretch_start=t.start, stretch_end=t.end,
                    block_start=a, block_frames=n, sample_rate=self.timeline.sample_rate)
        out = voice[:, None] if self.channels == 1 else np.repeat(voice[:, None], self.channels, axis=1)
        if self.bed is not None:
            from compassion_audio.sound.beds import duck_gain

            level = db_to_gain(self.mix.background_level_db)
            duck = duck_gain(a, n, self._speech, sample_rate=self.timeline.sample_rate,
                             depth_db=self.mix.duck_db)
            out += self.bed.block(a, n) * (level * duck)[:, None]
        self._apply_fades(out, a)
        return out

    def _apply_fades(self, out: np.ndarray, a: int) -> None:
        n = out.shape[0]
        if a < self._fade_in:
            idx = np.arange(a, min(a + n, self._fade_in))
            out[: idx.size] *= (0.5 - 0.5 * np.cos(math.pi * idx / self._fade_in))[:, None]
        if self._fade_out_start is None:
            return
        total = self.timeline.frames
        span = total - self._fade_out_start
        if span > 0 and a + n > self._fade_out_start:
            first = max(a, self._fade_out_start)
            idx = np.arange(first, a + n)
            ramp = 0.5 + 0.5 * np.cos(math.pi * (idx - self._fade_out_start + 1) / span)
            out[first - a:] *= ramp[:, None]


CODEC_HEADROOM_DB = 0.7
"""Lossy encoders overshoot the PCM's true peak (measured up to 0.6 dB with LAME over a
bed, AAC similar): the limiter aims this much lower for them so the file holds -1 dBTP."""


class StreamMaster:
    """Gain and a look-ahead true-peak limiter over a mixer's blocks, rendered in order as far
    as the plan is settled; the mastered output is metered on the way (one pass does both)."""

    def __init__(self, mixer: TrackMixer, gain_db: float, *, lossy: bool = False,
                 meter: LoudnessMeter | None = None) -> None:
        self.mixer = mixer
        self.meter = meter
        ceiling = mixer.mix.true_peak_db - (CODEC_HEADROOM_DB if lossy else 0.0)
        self._limiter = PeakLimiter(mixer.timeline.sample_rate, mixer.channels, ceiling_db=ceiling)
        self._gain = db_to_gain(gain_db)
        self._skip = self._limiter.latency_frames
        self.done = 0
        """Frames rendered so far."""

    def advance(self) -> Iterator[np.ndarray]:
        """Mastered blocks for every whole block the mixer's plan has settled (all of it,
        the last block short, once the plan is complete)."""
        mixer, size = self.mixer, self.mixer.block_frames
        ready = mixer.ready_frames
        while self.done < ready and (self.done + size <= ready or mixer.timeline.complete):
            n = min(size, ready - self.done)
            out = self._process(self.done, mixer.render(self.done, n))
            self.done += n
            if out.shape[0]:
                yield out
        if mixer.timeline.complete and self.done >= mixer.timeline.frames and self._limiter is not None:
            tail = self._limiter.flush()[self._skip:]
            self._limiter = None
            if tail.shape[0]:
                if self.meter is not None:
                    self.meter.add(tail)
                yield tail

    def _process(self, a: int, block: np.ndarray) -> np.ndarray:
        latency = self._limiter.latency_frames
        bound = self.mixer.peak_bound(max(0, a - latency), block.shape[0] + latency)
        out = self._limiter.process(block * self._gain, peak_bound=bound * self._gain)
        if self._skip:
            drop = min(self._skip, out.shape[0])
            out, self._skip = out[drop:], self._skip - drop
        if self.meter is not None and out.shape[0]:
            self.meter.add(out)
        return out

