"""Audio values (float32 samples + rate) and the small DSP helpers every stage shares."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compassion_audio.core.ffmpeg_run import run_ffmpeg

DEFAULT_RATE = 44100


@dataclass(frozen=True, eq=False)
class Audio:
    """Immutable audio: float32 samples in [-1, 1], shape (frames,) or (frames, channels)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def mono(self) -> "Audio":
        if self.samples.ndim == 1:
            return self
        return Audio(self.samples.mean(axis=1).astype(np.float32), self.sample_rate)

    def resampled(self, sample_rate: int) -> "Audio":
        return Audio(resample(self.samples, self.sample_rate, sample_rate), sample_rate)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def seconds_to_frames(seconds: float, sample_rate: int) -> int:
    """Round a duration to whole frames (the one rounding rule used everywhere)."""
    return int(round(seconds * sample_rate))


def frames_to_ms(frames: int, sample_rate: int) -> int:
    """Frames to whole milliseconds, rounding half up in integers (no float drift), as
    chapters and captions store times."""
    return (2 * frames * 1000 + sample_rate) // (2 * sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited polyphase resampling; a no-op when the rates match."""
    if from_rate == to_rate or samples.shape[0] == 0:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(from_rate, to_rate)
    out = resample_poly(samples, to_rate // g, from_rate // g, axis=0)
    return out.astype(np.float32)


def fade_edges(samples: np.ndarray, fade_in: int, fade_out: int) -> np.ndarray:
    """Return a copy with raised-cosine fades of the given frame counts at each end."""
    out = np.array(samples, dtype=np.float32, copy=True)
    n = out.shape[0]
    for count, at_start in ((min(fade_in, n), True), (min(fade_out, n), False)):
        if count <= 0:
            continue
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, count, dtype=np.float64))).astype(np.float32)
        if out.ndim == 2:
            ramp = ramp[:, None]
        if at_start:
            out[:count] *= ramp
        else:
            out[n - count:] *= ramp[::-1]
    return out


def audible_bounds(samples: np.ndarray, sample_rate: int,
                   threshold_db: float = -45.0) -> tuple[int, int] | None:
    """First and one-past-last frame whose magnitude reaches ``threshold_db`` dBFS.

    Returns None when nothing is audible.
    """
    mono = samples if samples.ndim == 1 else np.abs(samples).max(axis=1)
    if mono.size == 0:
        return None
    loud = np.flatnonzero(np.abs(mono) >= db_to_gain(threshold_db))
    if loud.size == 0:
        return None
    return int(loud[0]), int(loud[-1]) + 1


def rms_db(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -math.inf
    value = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return gain_to_db(value)


def peak_db(samples: np.ndarray) -> float:
    return gain_to_db(float(np.max(np.abs(samples)))) if samples.size else -math.inf


def decode_file(path: str | Path, sample_rate: int = DEFAULT_RATE, channels: int = 1,
                max_seconds: float | None = None) -> Audio:
    """Decode any file ffmpeg reads, by content (not by name), to float32 at ``sample_rate``.

    ``max_seconds`` decodes only the start (a long bed file need not be held whole).
    ``from_end_seconds`` decodes only the end. ffmpeg runs under a watchdog (ffmpeg_run.STALL_SECONDS):
    a hung decoder is an AudioError, not a hung render.
    """
    return decode_part(path, sample_rate, channels, max_seconds=max_seconds)


def decode_part(path: str | Path, sample_rate: int = DEFAULT_RATE, channels: int = 1, *,
                max_seconds: float | None = None, from_end_seconds: float | None = None) -> Audio:
    """decode_file, optionally only the first ``max_seconds`` or the last ``from_end_seconds``."""
    tail = ["-sseof", f"-{from_end_seconds:.3f}"] if from_end_seconds else []
    limit = ["-t", f"{max_seconds:.3f}"] if max_seconds else []
    args = ["-nostdin", "-v", "error", *tail, "-i", str(path), *limit, "-f", "f32le",
            "-acodec", "pcm_f32le", "-ac", str(channels), "-ar", str(sample_rate), "-"]
    out = run_ffmpeg(args, f"{path}: cannot decode audio", hide={f"{path}: ": ""})
    data = np.frombuffer(out, dtype=np.float32)
    if channels > 1:
        data = data.reshape(-1, channels)
    return Audio(data.copy(), sample_rate)
