"""Turn one engine clip into a stored clip: trim the engine's padding, fade the cuts,
resample to the track rate, cap the peaks and match the loudness to CLIP_LUFS;
bound its true peak for the final limiter."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from compassion_audio.core.audio import Audio, audible_bounds, db_to_gain, fade_edges, gain_to_db, resample, seconds_to_frames
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.levels import CLIP_LUFS
from compassion_audio.core.loudness import fractional_taps, gated_lufs, k_weighting_sos, true_peak
from compassion_audio.speech.engines.base import SILENT_PEAK_DB

LEAD_SECONDS = 0.010
"""Kept before the first audible sample so soft onsets (f, h, s) are not clipped."""
TAIL_SECONDS = 0.040
"""Kept after the last audible sample: espeak's voiced endings decay slowly."""
FADE_SECONDS = 0.006
"""Raised-cosine fade at each cut edge, so joins never click."""
THRESHOLD_BELOW_PEAK_DB = 40.0
THRESHOLD_FLOOR_DB = -55.0
"""Audible means within 40 dB of the clip's peak, and never quieter than -55 dBFS."""
PEAK_CEILING_DB = -3.0
PEAK_TO_LOUDNESS_DB = 12.5
"""Speech peaks are limited to this far above CLIP_LUFS (espeak-ng clips reach 17-20 dB).

Done once per clip here (and cached) so that the final limiter has almost
nothing to do: then the loudness the mix is predicted to reach (mastering.py)
is the loudness the file has. Measured on a -16 LUFS MP3 (ceiling -1.7 dBTP),
the final limiter took 0.54 LU off at 13.5 dB, 0.22 at 13.0 and 0.02 at 12.5.
(The earlier rule - peaks 12 dB over the active RMS, then regained - left
about 13.5 dB on a 10 s espeak-ng phrase; 12.5 limits its peaks ~1 dB more.)"""
ACTIVE_WINDOW_SECONDS = 0.020
ACTIVE_BELOW_LOUDEST_DB = 30.0
"""Windows more than this below the loudest window are gaps, not speech, for the RMS."""
LIMIT_LOOKAHEAD_SECONDS = 0.005
LIMIT_RELEASE_SECONDS = 0.15
"""The peak cap's gain: reaches each peak's reduction over 5 ms, recovers over ~150 ms
(the envelope of loudness.PeakLimiter, computed on a 1 ms grid)."""
_LIMIT_MARGIN_DB = 0.05
"""The cap's limiter aims this far under it, so the level search's residual stays under it."""
_LEVEL_TOLERANCE_DB = 0.01
_LEVEL_SEARCH_STEPS = 6
_MAX_LIMITING_DB = 20.0
"""Never take more than this off the peaks (a lone click cannot meet the cap: see CLIP_LUFS)."""
_TRUE_PEAK_MARGIN = 1.0025
"""The stored true-peak bound's headroom over the computed peak (0.02 dB: float32 rounding)."""


@dataclass(frozen=True)
class ProcessedClip:
    """A trimmed, faded, level-matched clip at the track rate (CLIP_LUFS, peaks capped)."""

    samples: np.ndarray
    lead_frames: int
    tail_frames: int
    true_peak: float = 1.0
    """Upper bound of the 4x-oversampled peak of ``samples`` (loudness.true_peak), linear."""


def active_rms_db(samples: np.ndarray, sample_rate: int) -> float:
    """RMS over the windows that carry speech (gaps between words left out)."""
    window = max(1, seconds_to_frames(ACTIVE_WINDOW_SECONDS, sample_rate))
    count = samples.shape[0] // window
    if count == 0:
        return gain_to_db(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))) \
            if samples.size else -math.inf
    power = np.square(samples[: count * window], dtype=np.float64).reshape(count, window).mean(axis=1)
    loudest = float(power.max())
    if loudest <= 0.0:
        return -math.inf
    active = power[power >= loudest * 10.0 ** (-ACTIVE_BELOW_LOUDEST_DB / 10.0)]
    return 10.0 * math.log10(float(active.mean()))


def process_clip(audio: Audio, sample_rate: int, phrase: str) -> ProcessedClip:
    """Trim engine padding to short margins, fade the cuts, resample, cap the peaks and
    scale to CLIP_LUFS. Audio with no audible speech (silence, no frames, or a peak under
    SILENT_PEAK_DB) is a SpeechError naming ``phrase`` - a name for the phrase such as
    "phrase 3 of 12 (line 7 of calm.txt.j2)", never its text, which may hold a client's name.

    Trimming happens at the engine's rate; the one resampling then gives the
    stored clip, whose loudness is measured as the meter measures it (the match
    holds to ~0.005 LU). The per-frame work runs in short chunks over two arrays
    (the cut and the clip): large temporaries cost more than the arithmetic.
    """
    source = audio.mono()
    rate = source.sample_rate
    samples = np.asarray(source.samples, dtype=np.float32)
    peak = gain_to_db(max(float(samples.max()), -float(samples.min()))) if samples.size else -math.inf
    if not peak >= SILENT_PEAK_DB:
        raise SpeechError(f"the speech engine produced no audible speech for {phrase}")
    threshold = max(peak - THRESHOLD_BELOW_PEAK_DB, THRESHOLD_FLOOR_DB)
    first, end = _audible_span(samples, rate, threshold)
    start = max(0, first - seconds_to_frames(LEAD_SECONDS, rate))
    stop = min(samples.shape[0], end + seconds_to_frames(TAIL_SECONDS, rate))
    fade = seconds_to_frames(FADE_SECONDS, rate)
    cut = fade_edges(samples[start:stop], fade, fade)
    # Bring the peak to the cap first: the gating's absolute threshold (-70 LUFS)
    # then acts as it will on the stored clip, however quiet the engine is.
    cut *= np.float32(db_to_gain(CLIP_LUFS + PEAK_TO_LOUDNESS_DB - peak))
    padded = _resampled_padded(cut, rate, sample_rate, _PAD)
    clip = padded[_PAD:padded.shape[0] - _PAD]
    # Frame f at the engine's rate lies at f * sample_rate / rate in the resampled clip.
    scale = sample_rate / rate
    lead = int(round((first - start) * scale))
    tail = clip.shape[0] - int(round((end - start) * scale))
    if not _match_level(clip, sample_rate):
        raise SpeechError(f"the speech engine produced no audible speech for {phrase}")
    # The resampled clip holds nothing above the engine's Nyquist frequency (give or
    # take the resampler's transition band): that bounds its peaks between samples.
    band = 0.55 * min(rate, sample_rate) / sample_rate
    return ProcessedClip(clip, lead, tail, _true_peak_bound(padded, _PAD, band))


_CHUNK_FRAMES = 1 << 15
"""Frames per pass of the per-frame loops (small temporaries, reused)."""


def _audible_span(samples: np.ndarray, sample_rate: int, threshold_db: float) -> tuple[int, int]:
    """audible_bounds, scanning chunks from each end (speech starts and ends near them)."""
    n = samples.shape[0]
    for i in range(0, n, _CHUNK_FRAMES):
        bounds = audible_bounds(samples[i:i + _CHUNK_FRAMES], sample_rate, threshold_db=threshold_db)
        if bounds is not None:
            first = i + bounds[0]
            break
    for i in range(n, 0, -_CHUNK_FRAMES):
        low = max(0, i - _CHUNK_FRAMES)
        bounds = audible_bounds(samples[low:i], sample_rate, threshold_db=threshold_db)
        if bounds is not None:
            return first, low + bounds[1]
    raise AssertionError("a sample reaches the threshold")  # the peak is above it


@functools.lru_cache(maxsize=8)
def _upsampling_taps(factor: int) -> tuple[tuple[tuple[int, np.float32], ...], ...]:
    """scipy's resample_poly filter for ``factor``, split into phases of (offset, tap)."""
    from scipy.signal import firwin  # here: scipy.signal costs half a second to import

    taps = firwin(20 * factor + 1, 1.0 / factor, window=("kaiser", 5.0)).astype(np.float32)
    taps *= np.float32(factor)
    biggest = float(np.abs(taps).max())
    return tuple(tuple((k, t) for k, t in enumerate(taps[p::factor]) if abs(t) > 1e-7 * biggest)
                 for p in range(factor))


def _resampled_padded(samples: np.ndarray, from_rate: int, to_rate: int, pad: int) -> np.ndarray:
    """audio.resample, with ``pad`` zero frames either side; computed directly for
    whole-number factors (22050 -> 44100).

    The same filter as scipy's resample_poly (the output agrees to float32
    rounding) without its general machinery: at 2x, half the output frames are
    the input itself and the other half a 20-tap filter.
    """
    factor = to_rate // from_rate
    if to_rate % from_rate or not 2 <= factor <= 8:
        resampled = resample(samples, from_rate, to_rate)
        out = np.zeros(resampled.shape[0] + 2 * pad, dtype=np.float32)
        out[pad:pad + resampled.shape[0]] = resampled
        return out
    n = samples.shape[0]
    half = 10  # resample_poly's filter is 20 * factor + 1 taps: 10 input frames either side
    out = np.zeros(n * factor + 2 * pad, dtype=np.float32)
    frames = out[pad:pad + n * factor].reshape(n, factor)
    window = np.zeros(_CHUNK_FRAMES + 2 * half, dtype=np.float32)
    total = np.empty(_CHUNK_FRAMES, dtype=np.float32)
    term = np.empty(_CHUNK_FRAMES, dtype=np.float32)
    phases = _upsampling_taps(factor)
    for i in range(0, n, _CHUNK_FRAMES):
        m = min(_CHUNK_FRAMES, n - i)
        # window[j] = samples[i - half + j], zero beyond the ends
        low, high = max(0, i - half), min(n, i + m + half)
        part = window[:m + 2 * half]
        if low > i - half or high < i + m + half:
            part.fill(0.0)
        part[low - (i - half):high - (i - half)] = samples[low:high]
        for phase, taps in enumerate(phases):
            # frames[i + j, phase] = sum over taps of tap * samples[i + j + half - k]
            acc = total[:m]
            for index, (k, tap) in enumerate(taps):
                source = part[2 * half - k:2 * half - k + m]
                if index == 0:
                    np.multiply(source, tap, out=acc)
                else:
                    acc += np.multiply(source, tap, out=term[:m])
            frames[i:i + m, phase] = acc
    return out


@functools.lru_cache(maxsize=8)
def _grid_hop(step: int, sample_rate: int) -> int:
    """The divisor of the 100 ms loudness step closest to 1 ms (45 frames at 44.1 kHz)."""
    return min((d for d in range(1, step + 1) if step % d == 0), key=lambda d: abs(d - 0.001 * sample_rate))


class _LevelGrid:
    """A clip's sample peaks and K-weighted energy per ~1 ms block: the peak cap's gain and
    the loudness it leaves are worked out on this grid, not per frame."""

    def __init__(self, clip: np.ndarray, sample_rate: int) -> None:
        step = seconds_to_frames(0.1, sample_rate)  # the meter's 100 ms step
        self.hop = hop = _grid_hop(step, sample_rate)
        # A clip under one 400 ms gating block is measured followed by silence.
        frames = max(clip.shape[0], 4 * step)
        self.blocks = -(-frames // hop)
        self.steps = frames // step  # the meter ignores a last partial step
        self.per_step = step // hop
        self.step = step
        self.peaks = np.zeros(self.blocks, dtype=np.float32)
        self.energy = np.zeros(self.steps * self.per_step)
        from scipy.signal import sosfilt  # here, as a new clip is measured: it costs half a second to import

        sos = k_weighting_sos(sample_rate).astype(np.float32)  # float32 is ample for a level
        state = np.zeros((sos.shape[0], 2), dtype=np.float32)
        chunk = step * max(1, 2 * _CHUNK_FRAMES // step)  # sosfilt has a high cost per call
        part = np.zeros(chunk, dtype=np.float32)
        for i in range(0, frames, chunk):
            m = min(chunk, frames - i)
            used = -(-m // hop) * hop
            data = part[:used]
            held = max(0, min(m, clip.shape[0] - i))
            data[:held] = clip[i:i + held]
            data[held:] = 0.0
            first = i // hop
            self.peaks[first:first + used // hop] = np.abs(data).reshape(-1, hop).max(axis=1)
            filtered, state = sosfilt(sos, data, zi=state)
            energy = np.square(filtered, out=filtered).reshape(-1, hop).sum(axis=1, dtype=np.float64)
            keep = max(0, min(energy.size, self.energy.size - first))
            self.energy[first:first + keep] = energy[:keep]
        self.lookahead = max(1, math.ceil(LIMIT_LOOKAHEAD_SECONDS * sample_rate / hop))
        self.release_log = -hop / (LIMIT_RELEASE_SECONDS * sample_rate)

    def loudness(self, edges: np.ndarray | None = None) -> float:
        """Integrated loudness (LUFS) with the gains ``edges`` (at the block edges) applied."""
        energy = self.energy
        if edges is not None:
            # K-weighting of a slowly varying gain times the clip ~ the gain times its K-weighting.
            a, b = edges[:energy.size], edges[1:energy.size + 1]
            energy = energy * ((a * a + a * b + b * b) / 3.0)
        return gated_lufs(energy.reshape(self.steps, self.per_step).sum(axis=1) / self.step)

    def limiter(self, ceiling: float) -> np.ndarray | None:
        """Gain at each block edge (blocks + 1 values) that keeps every sample under ``ceiling``:
        a look-ahead minimum, released exponentially, then averaged over the look-ahead
        (loudness.PeakLimiter's envelope). None when nothing reaches the ceiling."""
        if float(self.peaks.max()) <= ceiling:
            return None
        from scipy.ndimage import minimum_filter1d

        w, blocks = self.lookahead, self.blocks
        required = np.ones(blocks + w + 1)
        over = self.peaks > ceiling
        required[:blocks][over] = ceiling / self.peaks[over]
        # Trailing minimum: index i covers required[i-w .. i].
        lowest = minimum_filter1d(required, size=w + 1, origin=w // 2, mode="constant", cval=1.0)
        # reduction[i] = max(1 - lowest[i], reduction[i-1] * k), in logs.
        steps = np.arange(required.size) * self.release_log
        with np.errstate(divide="ignore"):
            wanted = np.log(1.0 - lowest)
        released = 1.0 - np.exp(np.maximum.accumulate(wanted - steps) + steps)
        sums = np.concatenate([[0.0], np.cumsum(released)])
        gain = (sums[w + 1:w + 2 + blocks] - sums[:blocks + 1]) / (w + 1)  # mean of released[b .. b+w]
        # An edge is shared by two blocks: it takes the lower gain, so the linear ramp
        # between edges stays under every sample's requirement in the block.
        return np.minimum(gain, np.concatenate([[1.0], gain[:-1]]))

    def apply(self, clip: np.ndarray, edges: np.ndarray, gain: float) -> None:
        """Scale ``clip`` in place by ``gain`` times the edge gains, linear between edges."""
        hop, n = self.hop, clip.shape[0]
        edges = (edges * gain).astype(np.float32)
        slopes = np.diff(edges)
        ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
        per_chunk = max(1, _CHUNK_FRAMES // hop)
        curve = np.empty((per_chunk, hop), dtype=np.float32)
        for b in range(0, -(-n // hop), per_chunk):
            count = min(per_chunk, self.blocks - b)
            part = np.multiply(slopes[b:b + count, None], ramp, out=curve[:count])
            part += edges[b:b + count, None]
            low, high = b * hop, min(n, (b + count) * hop)
            clip[low:high] *= part.reshape(-1)[:high - low]


def _match_level(clip: np.ndarray, sample_rate: int) -> bool:
    """Limit the peaks to PEAK_TO_LOUDNESS_DB over the loudness they leave and scale to
    CLIP_LUFS, in place; False if the clip has no measurable loudness."""
    grid = _LevelGrid(clip, sample_rate)
    unlimited = grid.loudness()
    if not math.isfinite(unlimited):
        return False

    def limited(cap: float) -> tuple[np.ndarray | None, float]:
        edges = grid.limiter(db_to_gain(cap - _LIMIT_MARGIN_DB))
        return edges, (unlimited if edges is None else grid.loudness(edges))

    # The cap c (dB at the clip's present level) must sit PEAK_TO_LOUDNESS_DB over the
    # loudness it leaves, which limiting lowers: a secant search (2-3 steps for speech).
    lowest = gain_to_db(float(grid.peaks.max())) - _MAX_LIMITING_DB
    highest = max(unlimited + PEAK_TO_LOUDNESS_DB, lowest)
    cap, (edges, loudness) = highest, limited(highest)
    previous = None
    for _ in range(_LEVEL_SEARCH_STEPS):
        miss = cap - loudness - PEAK_TO_LOUDNESS_DB
        if edges is None or abs(miss) <= _LEVEL_TOLERANCE_DB:
            break
        slope = 1.0  # d(miss)/d(cap) while the loudness barely follows the cap
        if previous is not None and cap != previous[0] and miss != previous[1]:
            slope = (miss - previous[1]) / (cap - previous[0])
        target = cap - miss / slope if slope > 0 else cap - miss
        target = min(highest, max(lowest, target))
        if target == cap:
            break
        result = limited(target)
        if not math.isfinite(result[1]):
            break
        previous = (cap, miss)
        cap, (edges, loudness) = target, result
    if not math.isfinite(loudness):
        return False
    if edges is None:
        peak = float(grid.peaks.max())
    else:
        peak = float((grid.peaks * np.maximum(edges[:-1], edges[1:])).max())
    # The ceiling cannot bind on speech (the cap is 10 dB under it); it stops a click.
    gain = db_to_gain(min(CLIP_LUFS - loudness, PEAK_CEILING_DB - gain_to_db(peak)))
    if edges is None:
        clip *= np.float32(gain)
    else:
        grid.apply(clip, edges, gain)
    return True


_PHASES = fractional_taps()
"""(32, 3): the true-peak detector's interpolator, as weights of frames n-15 .. n+16."""
_QUARTER_TAPS = _PHASES.shape[0] // 2
_PAD = 2 * _QUARTER_TAPS
"""Zero frames kept either side of a clip while it is processed (the interpolator's reach)."""


def _true_peak_bound(padded: np.ndarray, pad: int, band: float) -> float:
    """An upper bound of loudness.true_peak of ``padded[pad:-pad]``, a clip holding nothing
    above ``band`` times its rate, interpolating only where a peak between samples
    could beat the highest sample.

    Bernstein's inequality: a signal band-limited to B with peak M bends at most
    (2 pi B)^2 M, so next to a peak P between samples (where the slope is zero)
    the nearer sample, at most half a frame off, exceeds P - c M, c = (pi B T)^2 / 2;
    and M itself is at most (highest sample) / (1 - c). So only an interval next to
    a sample above 1 - c / (1 - c) of the highest can hold a higher peak: 40 %
    (-8 dB) for 22.05 kHz speech at 44.1 kHz. A clip sampled at the track rate
    (no such band) is measured in full.
    """
    samples = padded[pad:padded.shape[0] - pad]
    n = samples.shape[0]
    c = (math.pi * band) ** 2 / 2.0
    if band >= 0.3 or n == 0:
        return true_peak(samples) * _TRUE_PEAK_MARGIN
    highest = max(float(samples.max()), -float(samples.min()))
    level = np.float32(highest * (1.0 - c / (1.0 - c)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * _QUARTER_TAPS)
    magnitude = np.empty(_CHUNK_FRAMES + 1, dtype=np.float32)
    between = 0.0
    for i in range(0, n, _CHUNK_FRAMES):
        m = min(_CHUNK_FRAMES, n - i)
        reach = min(m + 1, n - i)
        near = np.abs(samples[i:i + reach], out=magnitude[:reach]) >= level
        near[:-1] |= near[1:]  # the interval [f, f+1) when f or f+1 is near the top
        starts = np.flatnonzero(near[:m])
        if starts.size:
            # frames f-15 .. f+16 of the clip start at padded[f + pad - 15]
            # einsum, not @: a BLAS matmul wakes OpenBLAS's threads, which spin and took
            # more CPU than the whole clip (1.3 CPU-s per 97 phrases) from the encoder.
            values = np.einsum("kt,tp->kp", windows[i + starts + pad - _QUARTER_TAPS + 1], _PHASES)
            between = max(between, float(np.abs(values).max()))
    return max(highest, between) * _TRUE_PEAK_MARGIN
