"""Streaming loudness (ITU-R BS.1770-4 / EBU R128), true peak, and a look-ahead peak limiter."""
from __future__ import annotations

import functools
import math

import numpy as np

from compassion_audio.core.audio import db_to_gain

OVERSAMPLE = 4
_HALF_TAPS = 16
"""Interpolation filter half-length in input frames (the true-peak detector's look-ahead)."""
_LIMITER_MARGIN_DB = 0.1
"""The limiter aims this far under its ceiling so inter-sample overshoot stays under it too."""
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """BS.1770 K-weighting (shelf + RLB high-pass) as two biquads for any rate.

    The analogue prototypes and bilinear mapping are libebur128's, so at 48 kHz
    the coefficients equal the ones tabulated in BS.1770-4.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


_K_TAPS = 1 << 12
"""Length of the K-filter's impulse response kept: past it, what the slowest pole (the 38 Hz
high-pass) still holds is under 10**-19 of the response's energy at 44.1 and 48 kHz, so
the truncated response filters as the recursion does, to float32 precision."""


@functools.lru_cache(maxsize=4)
def _k_response(sample_rate: int) -> np.ndarray:
    """The first _K_TAPS samples of the K-filter's impulse response, float64.

    Read off the exact frequency response on a grid four times longer than the taps
    kept: the inverse transform folds in only the response past that length, which
    is far below float precision.
    """
    size = 4 * _K_TAPS
    z = np.exp(-1j * np.pi * np.arange(size // 2 + 1) / (size // 2))
    response = np.ones_like(z)
    for b0, b1, b2, _, a1, a2 in k_weighting_sos(sample_rate):
        response *= (b0 + b1 * z + b2 * z * z) / (1.0 + a1 * z + a2 * z * z)
    return np.fft.irfft(response, n=size)[:_K_TAPS]


@functools.lru_cache(maxsize=16)
def _k_spectrum(sample_rate: int, size: int) -> np.ndarray:
    """The K-filter's truncated response at one transform size (block sizes repeat: cached)."""
    import scipy.fft  # imported here: scipy costs time at start-up; scipy.fft is its light part

    return scipy.fft.rfft(_k_response(sample_rate).astype(np.float32), n=size)


class KWeighting:
    """BS.1770 K-weighting of a stream fed in blocks of any size, one block at a time.

    The two biquads run as one convolution with their impulse response (overlap-save,
    float32 FFTs), so the filter costs what scipy's ``sosfilt`` does without importing
    ``scipy.signal`` (half a second at every start): the result matches ``sosfilt`` to
    float32 precision (tests/test_loudness.py).
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self._history = np.zeros((_K_TAPS - 1, channels), dtype=np.float32)
        self._quiet = True

    @property
    def settled(self) -> bool:
        """True when the filter has rung out: only zeros in its memory."""
        return self._quiet

    def process(self, data: np.ndarray) -> np.ndarray:
        """Filter (frames, channels) and return as many frames, float32."""
        import scipy.fft

        frames = data.shape[0]
        joined = np.concatenate([self._history, data.astype(np.float32, copy=False)])
        # A multiple of 8192 keeps the transform on fast sizes (and the spectra cache small).
        size = scipy.fft.next_fast_len(-(-joined.shape[0] // 8192) * 8192, real=True)
        spectrum = scipy.fft.rfft(joined, n=size, axis=0)
        spectrum *= _k_spectrum(self.sample_rate, size)[:, None]
        out = scipy.fft.irfft(spectrum, n=size, axis=0)[_K_TAPS - 1:_K_TAPS - 1 + frames]
        self._history = joined[-(_K_TAPS - 1):].copy()
        self._quiet = not np.any(self._history)
        return out.astype(np.float32, copy=False)


def _interpolation_phases() -> np.ndarray:
    """Polyphase taps (OVERSAMPLE, 2*_HALF_TAPS+1) of a Kaiser-windowed sinc.

    Phase 0 is an exact unit impulse, so sample values pass through unchanged
    and the true peak is never below the sample peak.
    """
    half = _HALF_TAPS * OVERSAMPLE
    n = np.arange(-half, half + 1)
    taps = np.sinc(n / OVERSAMPLE) * np.kaiser(2 * half + 1, 8.0)
    taps[(n % OVERSAMPLE == 0) & (n != 0)] = 0.0
    taps[half] = 1.0
    phases = np.zeros((OVERSAMPLE, 2 * _HALF_TAPS + 1))
    for p in range(OVERSAMPLE):
        row = taps[p::OVERSAMPLE]
        phases[p, :row.size] = row
    return phases


_PHASES = _interpolation_phases()


def fractional_taps() -> np.ndarray:
    """(2 * _HALF_TAPS, 3) float32: the weights of frames n-15 .. n+16 that give the values a
    quarter, half and three quarters of a frame past frame n (the detector's own
    interpolator, for code that interpolates only where a peak could hide)."""
    return np.ascontiguousarray(_PHASES[3:0:-1, :2 * _HALF_TAPS].T, dtype=np.float32)


_OVERSHOOT_BOUND = float(np.abs(_PHASES).sum(axis=1).max())
"""No interpolated value can exceed the largest input magnitude in its window by more
than this factor (the filter's largest L1 norm): blocks quieter than target/bound
cannot need limiting, and the limiter skips its detector for them."""
_CHUNK_FRAMES = 1 << 16
"""Detector transform length for long arrays: equal sizes reuse the cached phase spectra."""


@functools.lru_cache(maxsize=8)
def _phase_spectra(size: int) -> np.ndarray:
    """FFT of interpolation phases 1.. at one transform size (cached: block sizes repeat)."""
    import scipy.fft  # imported here: scipy costs ~0.6 s at start-up
    return scipy.fft.rfft(_PHASES[1:].astype(np.float32), n=size, axis=1)


def _as_frames(block: np.ndarray, channels: int) -> np.ndarray:
    """View a block as (frames, channels) float64."""
    data = np.asarray(block, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[1] != channels:
        raise ValueError(f"expected {channels} channel(s), got {data.shape[1]}")
    return data


def gated_lufs(steps: np.ndarray, select: np.ndarray | None = None) -> float:
    """BS.1770 gated integrated loudness of a run of 100 ms step powers (see LoudnessMeter).

    Gating blocks are four steps (400 ms, 75 % overlap); ``select`` keeps only
    the blocks touching a selected step. -inf for silence or under 400 ms.
    """
    steps = np.asarray(steps, dtype=np.float64)
    if steps.size < 4:
        return -math.inf
    blocks = (steps[:-3] + steps[1:-2] + steps[2:-1] + steps[3:]) / 4.0
    if select is not None:
        chosen = np.zeros(steps.size, dtype=bool)
        chosen[: min(select.size, steps.size)] = select[: steps.size]
        touch = chosen[:-3] | chosen[1:-2] | chosen[2:-1] | chosen[3:]
        if touch.any():
            blocks = blocks[touch]
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10.0 * np.log10(blocks)
    kept = blocks[loudness > _ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return -math.inf
    relative = -0.691 + 10.0 * math.log10(kept.mean()) + _RELATIVE_GATE_LU
    with np.errstate(divide="ignore"):
        kept = kept[-0.691 + 10.0 * np.log10(kept) > relative]
    if kept.size == 0:
        return -math.inf
    return -0.691 + 10.0 * math.log10(kept.mean())


def lufs_to_power(lufs: float) -> float:
    """The mean K-weighted power that measures ``lufs``."""
    return 10.0 ** ((lufs + 0.691) / 10.0)


class _PeakDetector:
    """Streaming 4x-oversampled peak per frame; output lags input by ``_HALF_TAPS`` frames.

    Output value j of a call covers the interval [f, f+1) of input frame
    f = (first frame of the call) + j - _HALF_TAPS.
    """

    def __init__(self, channels: int) -> None:
        # Time runs along the last axis here: reductions over channels and
        # phases are then fast row-wise maxima. float32 is ample for a peak.
        self.history = np.zeros((channels, _PHASES.shape[1] - 1), dtype=np.float32)

    def process(self, data: np.ndarray) -> np.ndarray:
        import scipy.fft  # imported here: scipy costs ~0.6 s at start-up
        if data.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        ext = np.concatenate([self.history, data.T.astype(np.float32)], axis=1)
        self.history = ext[:, -self.history.shape[1]:].copy()
        length, taps = ext.shape[1], _PHASES.shape[1]
        size = scipy.fft.next_fast_len(length, real=True)
        spectrum = scipy.fft.rfft(ext, n=size, axis=1)
        # Phases 1.. only: phase 0 is the input itself, delayed by _HALF_TAPS.
        interp = scipy.fft.irfft(spectrum[:, None, :] * _phase_spectra(size), n=size, axis=-1)
        rows = np.abs(interp[:, :, taps - 1:length]).reshape(-1, length - taps + 1)
        on_samples = np.abs(ext[:, taps - 1 - _HALF_TAPS:length - _HALF_TAPS])
        return np.maximum(rows.max(axis=0), on_samples.max(axis=0))

    def skip(self, data: np.ndarray) -> None:
        """Advance over frames whose peaks are not needed (keeps the history right)."""
        ext = np.concatenate([self.history, data.T.astype(np.float32)], axis=1)
        self.history = ext[:, -self.history.shape[1]:].copy()

    def pending(self) -> np.ndarray:
        """Peaks of the last frames, as if the stream ended with silence (state unchanged)."""
        probe = _PeakDetector(self.history.shape[0])
        probe.history = self.history.copy()
        return probe.process(np.zeros((_HALF_TAPS, self.history.shape[0])))


class LoudnessMeter:
    """Integrated loudness of a stream fed in blocks of any size (true peak: ``true_peak()``)."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._filter = KWeighting(sample_rate, channels)
        # Surround weights per BS.1770 for 5.1 (L R C LFE Ls Rs); 1.0 otherwise.
        weights = [1.0, 1.0, 1.0, 0.0, 1.41, 1.41] if channels == 6 else [1.0] * channels
        self._weights = np.array(weights)
        self._step_frames = int(round(sample_rate * 0.1))
        self._steps: list[float] = []
        self._partial = 0.0
        self._partial_frames = 0

    def add(self, block: np.ndarray) -> None:
        """Feed the next frames, (frames,) for mono or (frames, channels)."""
        data = _as_frames(block, self.channels)
        if data.shape[0] == 0:
            return
        if self._filter.settled and not np.any(data):
            # Digital silence after the filter has rung out (a pause with nothing under
            # it): its K-weighted power is zero - skip the filter (most of the cost).
            self._add_silence(data.shape[0])
            return
        filtered = self._filter.process(data)
        if self.channels == 1:
            self._add_power(np.square(filtered[:, 0], dtype=np.float64))
            return
        self._add_power(np.einsum("fc,c->f", np.square(filtered, dtype=np.float64), self._weights))  # no BLAS threads

    def _add_silence(self, frames: int) -> None:
        """As _add_power(np.zeros(frames)), without the array."""
        step = self._step_frames
        take = min(step - self._partial_frames, frames)
        self._partial_frames += take
        if self._partial_frames < step:
            return
        self._steps.append(self._partial / step)
        rest = frames - take
        self._steps.extend([0.0] * (rest // step))
        self._partial = 0.0
        self._partial_frames = rest % step

    def _add_power(self, power: np.ndarray) -> None:
        """Sum weighted power into 100 ms steps (a gating block is four steps)."""
        step = self._step_frames
        take = min(step - self._partial_frames, power.size)
        self._partial += float(power[:take].sum())
        self._partial_frames += take
        rest = power[take:]
        if self._partial_frames < step:
            return
        self._steps.append(self._partial / step)
        whole = rest.size // step * step
        self._steps.extend((rest[:whole].reshape(-1, step).mean(axis=1)).tolist())
        self._partial = float(rest[whole:].sum())
        self._partial_frames = rest.size - whole

    @property
    def step_frames(self) -> int:
        """Frames per 100 ms step; gating block j covers steps j..j+3."""
        return self._step_frames

    def integrated_lufs(self, select: np.ndarray | None = None) -> float:
        """Gated integrated loudness; -inf for silence or under 400 ms of audio.

        ``select`` (one bool per 100 ms step) keeps only the gating blocks that
        touch a selected step - e.g. the steps where the voice speaks, so the
        loudness is anchored on the voice (dialogue gating) rather than on long
        quiet stretches of tones or bed.
        """
        return gated_lufs(np.array(self._steps), select)

    def step_powers(self) -> np.ndarray:
        """Mean weighted K-filtered power of each complete 100 ms step so far."""
        return np.array(self._steps)


class PeakLimiter:
    """Streaming look-ahead true-peak limiter with a smooth gain curve.

    Gain per frame is the minimum required over the look-ahead window, released
    exponentially, then averaged over the window: the average can only reach a
    peak's required gain when the whole window is already down, so peaks are
    caught without a hard edge and the gain never steps.
    """

    def __init__(self, sample_rate: int, channels: int, ceiling_db: float = -1.0,
                 lookahead_seconds: float = 0.005, release_seconds: float = 0.15) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.ceiling_db = ceiling_db
        self._ceiling = db_to_gain(ceiling_db)
        self._target = db_to_gain(ceiling_db - _LIMITER_MARGIN_DB)
        self._window = max(1, int(round(lookahead_seconds * sample_rate)))
        self._release_log = -1.0 / max(release_seconds * sample_rate, 1.0)
        self.latency_frames = self._window + _HALF_TAPS
        self._detector = _PeakDetector(channels)
        self._required = np.ones(self._window)
        self._released = np.ones(self._window)
        self._reduction = 0.0
        self._delay = np.zeros((self.latency_frames, channels))
        self._one_dimensional = False

    def process(self, block: np.ndarray, peak_bound: float | None = None) -> np.ndarray:
        """Limit the next frames; returns as many frames, ``latency_frames`` late.

        ``peak_bound``, when the caller knows one, is an upper bound of the block's
        true peak (e.g. from its sources' measured peaks): under the target, the
        4x detector is skipped.
        """
        mono_in = self._one_dimensional = np.ndim(block) == 1
        data = _as_frames(block, self.channels)
        n = data.shape[0]
        if n == 0:
            return np.zeros((0,) if mono_in else (0, self.channels), dtype=np.float32)
        if peak_bound is None:
            peak_bound = float(np.abs(data).max()) * _OVERSHOOT_BOUND
        if self._idle() and peak_bound < self._target:
            # Nothing here can reach the ceiling and no earlier peak is still
            # releasing: the output is the delayed input, exactly as the full
            # path would compute it (required gain 1 everywhere).
            self._detector.skip(data)
            gain = np.ones(n)
        else:
            peaks = self._detector.process(data)
            with np.errstate(divide="ignore"):
                required = np.minimum(1.0, self._target / peaks)
            gain = self._smooth(required)
        ext = np.concatenate([self._delay, data])
        self._delay = ext[n:]
        out = np.clip(ext[:n] * gain[:, None], -self._ceiling, self._ceiling).astype(np.float32)
        return out[:, 0] if mono_in else out

    def flush(self) -> np.ndarray:
        """The last ``latency_frames`` frames still held in the delay line (shaped like the input)."""
        silence = np.zeros((self.latency_frames, self.channels))
        return self.process(silence[:, 0] if self._one_dimensional else silence)

    def _idle(self) -> bool:
        """No gain reduction in force or pending."""
        return self._reduction == 0.0 and bool(np.all(self._required == 1.0)) \
            and bool(np.all(self._released == 1.0))

    def _smooth(self, required: np.ndarray) -> np.ndarray:
        from scipy.ndimage import minimum_filter1d  # imported here: scipy costs ~0.6 s at start-up
        w = self._window
        ext = np.concatenate([self._required, required])
        self._required = ext[-w:]
        # Trailing minimum over w+1 frames: index i covers ext[i-w .. i].
        lowest = minimum_filter1d(ext, size=w + 1, origin=w // 2, mode="nearest")[w:]
        released = self._release(lowest)
        ext = np.concatenate([self._released, released])
        self._released = ext[-w:]
        sums = np.cumsum(np.concatenate([[0.0], ext]))
        return (sums[w + 1:] - sums[:-(w + 1)]) / (w + 1)

    def _release(self, lowest: np.ndarray) -> np.ndarray:
        """Gain reduction held and decayed exponentially: r[n] = max(1-lowest[n], r[n-1]*k)."""
        if self._reduction == 0.0 and bool(np.all(lowest >= 1.0)):
            return np.ones(lowest.size)  # nothing to reduce, nothing still releasing
        n = np.arange(lowest.size, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_wanted = np.log(np.maximum(1.0 - lowest, 0.0))
            carried = (math.log(self._reduction) if self._reduction > 0 else -math.inf)
        # log r[n] = max(carried + (n+1)log k, max_{j<=n} log u[j] + (n-j) log k)
        log_k = self._release_log
        best = np.maximum.accumulate(log_wanted - n * log_k) + n * log_k
        best = np.maximum(best, carried + (n + 1) * log_k)
        reduction = np.exp(best)
        # A reduction decayed below -120 dB is over; ending it lets the idle fast path resume.
        self._reduction = float(reduction[-1]) if reduction[-1] > 1e-6 else 0.0
        return 1.0 - reduction


def true_peak(samples: np.ndarray) -> float:
    """4x-oversampled peak of a whole array, linear (the same detector as the meter's)."""
    data = np.asarray(samples, dtype=np.float32)
    channels = 1 if data.ndim == 1 else data.shape[1]
    detector = _PeakDetector(channels)
    peak = 0.0
    for i in range(0, data.shape[0], _CHUNK_FRAMES):
        chunk = _as_frames(data[i:i + _CHUNK_FRAMES], channels)
        peak = max(peak, float(detector.process(chunk).max(initial=0.0)))
    pending = detector.pending()
    return max(peak, float(pending.max()) if pending.size else 0.0)
