"""Render a timeline to samples block by block, then master it (loudness gain + true-peak limiter).

Nothing here holds the whole track: clips are read from the cache as they are
needed, tones and beds are pure functions of the absolute frame number, and
the track comes out as an iterator of blocks, so memory does not grow with
track length.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import db_to_gain, seconds_to_frames
from .config import BreathingSettings, MixSettings
from .loudness import LoudnessMeter, PeakLimiter, true_peak
from .speech import TARGET_RMS_DB
from .tones import BreathPattern, render_tones
from .timeline import Timeline

SPEECH_RMS_DB = TARGET_RMS_DB
"""Active-speech RMS of every clip after level matching (speech.py) - the mix's reference."""
BELL_PEAK_DB = -12.0
"""Bell peak before mastering: soft, well under the voice's peaks."""
BLOCK_FRAMES = 1 << 16
TONE_PEAK = 1.25
"""Bound of a pacing tone's true peak before its gain (tones.py keeps peaks near 1.0)."""


@dataclass(frozen=True)
class _Placed:
    start: int
    end: int
    kind: str
    source: object
    peak: float = 1.0
    """Upper bound of this source's true peak in the mix, linear."""


class TrackMixer:
    """Mixes one timeline. ``blocks()`` may be called more than once (two-pass mastering)."""

    def __init__(self, timeline: Timeline, *, mix: MixSettings, breathing: BreathingSettings,
                 bell: np.ndarray | None = None, bed=None, block_frames: int = BLOCK_FRAMES) -> None:
        self.timeline = timeline
        self.mix = mix
        self.breathing = breathing
        self.bell = bell
        self.bed = bed
        self._bed_peak = true_peak(bed.loop) if bed is not None else 0.0
        self.block_frames = block_frames
        self.channels = mix.channels
        self._bell_peak = db_to_gain(BELL_PEAK_DB) * true_peak(bell) if bell is not None and bell.size else 0.0
        self._short = self._placements(timeline)
        self._short_starts = [p.start for p in self._short]
        self._short_max = max((p.end - p.start for p in self._short), default=0)
        self._tones = self._tone_stretches(timeline)
        # Tones peak near 1.0 (a sine's RMS is 3 dB under its peak): set their RMS
        # level_db under the speech's.
        self._tone_gain = db_to_gain(SPEECH_RMS_DB + breathing.level_db + 3.0)
        self._speech = [(e.start, e.end) for e in timeline.events if e.kind == "speech"]
        self.speech_intervals = tuple(self._speech)
        self._clip_cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        sr = timeline.sample_rate
        sounding = [p.start for p in self._short] + [t.start for t in self._tones]
        first = min(sounding, default=timeline.frames)
        self._fade_in = min(seconds_to_frames(mix.fade_in_seconds, sr), first)
        last_speech = max((end for _, end in self._speech), default=0)
        self._fade_out_start = max(timeline.frames - seconds_to_frames(mix.fade_out_seconds, sr), last_speech)

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

    def _clip(self, path: Path) -> np.ndarray:
        clip = self._clip_cache.get(path)
        if clip is None:
            clip = np.load(path, mmap_mode="r")
            self._clip_cache[path] = clip
            if len(self._clip_cache) > 8:
                self._clip_cache.popitem(last=False)
        return clip

    def blocks(self) -> Iterator[np.ndarray]:
        """The raw mix, ``(frames, channels)`` float32 blocks covering the whole track."""
        for a in range(0, self.timeline.frames, self.block_frames):
            yield self.render(a, min(self.block_frames, self.timeline.frames - a))

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
        out = np.repeat(voice[:, None], self.channels, axis=1)
        if self.bed is not None:
            from .beds import duck_gain

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
        total = self.timeline.frames
        span = total - self._fade_out_start
        if span > 0 and a + n > self._fade_out_start:
            first = max(a, self._fade_out_start)
            idx = np.arange(first, a + n)
            ramp = 0.5 + 0.5 * np.cos(math.pi * (idx - self._fade_out_start + 1) / span)
            out[first - a:] *= ramp[:, None]


@dataclass(frozen=True)
class Mastering:
    """What mastering measured and applied."""

    measured_lufs: float
    """The raw mix, BS.1770 integrated."""
    gain_db: float
    voice_lufs: float = math.nan
    """The raw mix where the voice speaks (dialogue-gated)."""


VOICE_HEADROOM_LU = 2.0
"""The voice may end up at most this far above the target. Normally the whole mix
sets the gain (bells, bed and tones count, as BS.1770 measures them); but a track
that is mostly quiet breathing tones would otherwise be pushed up until its voice
is crushed by the limiter - there the voice sets the gain, and the file measures
quieter than the target by design."""


def measure(mixer: TrackMixer, progress=None) -> tuple[float, float]:
    """Integrated loudness (LUFS) of the raw mix, and of the blocks where the voice speaks.

    The second figure (dialogue gating) anchors the gain on the voice; without
    speech it equals the first.
    """
    meter = LoudnessMeter(mixer.timeline.sample_rate, mixer.channels, true_peak=False)
    done = 0
    for block in mixer.blocks():
        meter.add(block)
        done += block.shape[0]
        if progress is not None:
            progress(done, mixer.timeline.frames)
    step = meter.step_frames
    voiced = np.zeros(mixer.timeline.frames // step + 1, dtype=bool)
    for start, end in mixer.speech_intervals:
        voiced[start // step: end // step + 1] = True
    whole = meter.integrated_lufs()
    return whole, meter.integrated_lufs(select=voiced) if voiced.any() else whole


CODEC_HEADROOM_DB = 0.7
"""Lossy encoders overshoot the PCM's true peak (measured up to 0.6 dB with LAME over a
bed, AAC similar): the limiter aims this much lower for them so the file holds -1 dBTP."""


def mastered_blocks(mixer: TrackMixer, mastering: Mastering, *,
                    lossy: bool = False) -> Iterator[np.ndarray]:
    """The mix with gain applied and a look-ahead true-peak limiter, delay compensated."""
    ceiling = mixer.mix.true_peak_db - (CODEC_HEADROOM_DB if lossy else 0.0)
    limiter = PeakLimiter(mixer.timeline.sample_rate, mixer.channels, ceiling_db=ceiling)
    gain = db_to_gain(mastering.gain_db)
    skip = limiter.latency_frames
    for a, block in zip(range(0, mixer.timeline.frames, mixer.block_frames), mixer.blocks()):
        bound = mixer.peak_bound(max(0, a - limiter.latency_frames), block.shape[0] + limiter.latency_frames)
        out = limiter.process(block * gain, peak_bound=bound * gain)
        if skip:
            drop = min(skip, out.shape[0])
            out, skip = out[drop:], skip - drop
        if out.shape[0]:
            yield out
    tail = limiter.flush()
    if skip:
        tail = tail[skip:]
    if tail.shape[0]:
        yield tail


def plan_mastering(mixer: TrackMixer, progress=None) -> Mastering:
    """Pass one: measure, then choose the gain that meets the loudness target."""
    target = mixer.mix.loudness_lufs
    if target is None:
        return Mastering(math.nan, 0.0)
    whole, voice = measure(mixer, progress)
    if not math.isfinite(whole):
        return Mastering(whole, 0.0, voice)
    gain = target - whole
    if math.isfinite(voice):
        gain = min(gain, target + VOICE_HEADROOM_LU - voice)
    return Mastering(whole, float(np.clip(gain, -30.0, 30.0)), voice)
