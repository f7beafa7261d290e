"""Ambient beds (generated or from a file) as seamless loops, and the ducking gain under speech."""
from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compassion_audio.core.audio import db_to_gain, decode_file
from compassion_audio.core.errors import AudioError, ParameterError
from compassion_audio.core.limits import MAX_SOUND_FILE_BYTES
from compassion_audio.core.input_files import input_file

BED_NAMES = ("pink", "brown", "rain", "waves")
REFERENCE_RMS_DB = -20.0
"""Every bed is scaled to this RMS, so the mixer can set it relative to speech."""
LOOP_SECONDS = 60.0
FILE_MAX_SECONDS = 180.0
"""Only this much of a user's bed file is read (and looped): memory stays small for long files."""
FILE_CROSSFADE_SECONDS = 3.0
_SOURCE = "background"


@dataclass(frozen=True, eq=False)
class Bed:
    """A seamless loop of float32 samples (frames, channels), played from absolute frame numbers."""

    name: str
    """A generated bed's name, or "file" (never the user's path: it may carry a name)."""
    sample_rate: int
    loop: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.loop.shape[1])

    @property
    def loop_frames(self) -> int:
        return int(self.loop.shape[0])

    @classmethod
    def generated(cls, name: str, sample_rate: int, channels: int, seed: int = 0) -> "Bed":
        """A synthesised bed; each channel from its own seed so stereo is decorrelated."""
        if name not in _GENERATORS:
            raise _unknown(name)
        frames = int(round(LOOP_SECONDS * sample_rate))
        columns = [_GENERATORS[name](np.random.default_rng([seed, ch]), frames, sample_rate)
                   for ch in range(channels)]
        loop = np.stack([_to_reference(c) for c in columns], axis=1).astype(np.float32)
        return cls(name, sample_rate, loop)

    @classmethod
    def from_file(cls, path: str | Path, sample_rate: int, channels: int) -> "Bed":
        """The user's recording, looped with an equal-power crossfade at the seam. It must be a
        regular file of at most MAX_SOUND_FILE_BYTES (else a ParameterError naming the limit)."""
        path = input_file(path, what="background file", limit_bytes=MAX_SOUND_FILE_BYTES)
        data = decode_file(path, sample_rate, 2 if channels > 1 else 1, max_seconds=FILE_MAX_SECONDS).samples
        if data.ndim == 1:
            data = data[:, None]
        if data.shape[0] < sample_rate or not np.any(data):
            raise AudioError(f"{path}: a background file needs at least one second of sound")
        loop = _crossfade_loop(data, int(round(FILE_CROSSFADE_SECONDS * sample_rate)))
        if channels > 1 and np.array_equal(loop[:, 0], loop[:, 1]):
            # A mono source: the second channel plays the loop half a turn later, so the
            # channels are unrelated moment to moment (a short delay would comb-filter).
            loop[:, 1] = np.roll(loop[:, 0], loop.shape[0] // 2)
        gain = db_to_gain(REFERENCE_RMS_DB) / math.sqrt(float(np.mean(np.square(loop, dtype=np.float64))))
        return cls("file", sample_rate, (loop * gain).astype(np.float32))

    @classmethod
    def from_setting(cls, value: str, sample_rate: int, channels: int, seed: int = 0) -> "Bed":
        """A bed named in settings: one of BED_NAMES, or a path to an audio file (anything at
        that path that is not a regular file - a FIFO, a folder - is refused as such)."""
        if value in BED_NAMES:
            return cls.generated(value, sample_rate, channels, seed)
        if os.path.lexists(Path(value).expanduser()):
            return cls.from_file(Path(value).expanduser(), sample_rate, channels)
        raise _unknown(value)

    def block(self, start_frame: int, frames: int) -> np.ndarray:
        """Frames [start_frame, start_frame + frames) of the endless loop, (frames, channels)."""
        out = np.empty((frames, self.channels), dtype=np.float32)
        done, at = 0, start_frame % self.loop_frames
        while done < frames:  # copy whole runs up to the loop end, then wrap
            run = min(frames - done, self.loop_frames - at)
            out[done:done + run] = self.loop[at:at + run]
            done, at = done + run, 0
        return out


def _unknown(name: str) -> ParameterError:
    return ParameterError(f"unknown background {name!r}", source=_SOURCE,
                          hint=f"choose one of {', '.join(BED_NAMES)}, or give the path of an audio file")


def _to_reference(samples: np.ndarray) -> np.ndarray:
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return samples * (db_to_gain(REFERENCE_RMS_DB) / rms)


def _shaped_noise(rng: np.random.Generator, frames: int, sample_rate: int, magnitude) -> np.ndarray:
    """Gaussian noise with spectrum ``magnitude(hz)``, made in the frequency domain.

    The result is circular - its end runs straight into its start - so a
    generated loop needs no crossfade and has no seam at all.
    """
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    hz = np.fft.rfftfreq(frames, 1.0 / sample_rate)
    spectrum *= magnitude(np.maximum(hz, 1e-3))
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, frames)


def _band(hz: np.ndarray, low: float, high: float) -> np.ndarray:
    """Second-order-like band shape: gentle slopes outside [low, high]."""
    return 1.0 / np.sqrt((1.0 + (low / hz) ** 4) * (1.0 + (hz / high) ** 4))


def _pink(rng, frames, sample_rate):
    return _shaped_noise(rng, frames, sample_rate, lambda hz: _band(hz, 20.0, 16000.0) / np.sqrt(hz))


def _brown(rng, frames, sample_rate):
    return _shaped_noise(rng, frames, sample_rate, lambda hz: _band(hz, 25.0, 8000.0) / hz)


def _rain(rng, frames, sample_rate):
    """Soft broadband patter (pink, 300 Hz - 6 kHz) with sparse, quiet droplets."""
    hiss = _shaped_noise(rng, frames, sample_rate, lambda hz: _band(hz, 300.0, 6000.0) / np.sqrt(hz))
    hiss /= np.sqrt(np.mean(np.square(hiss)))
    drops = np.zeros(frames)
    count = rng.poisson(5.0 * frames / sample_rate)
    length = int(0.06 * sample_rate)
    t = np.arange(length) / sample_rate
    attack = 0.5 - 0.5 * np.cos(np.pi * np.minimum(t / 0.0015, 1.0))
    for start, hz, decay, level in zip(rng.integers(0, frames, count), rng.uniform(1500, 4200, count),
                                       rng.uniform(0.004, 0.012, count), 10 ** rng.uniform(-1.0, -0.2, count)):
        drop = level * attack * np.exp(-t / decay) * np.sin(2 * np.pi * hz * t * (1.0 - 2.0 * t))
        index = (start + np.arange(length)) % frames  # wrap, so the loop stays circular
        drops[index] += drop
    return hiss + drops


def _swell(rng, frames, sample_rate) -> np.ndarray:
    """0..1 envelope of waves of 7-12 s, scaled to fill the loop exactly (so it is circular)."""
    lengths = []
    while sum(lengths) < frames / sample_rate:
        lengths.append(rng.uniform(7.0, 12.0))
    bounds = np.round(np.cumsum([0.0] + lengths) * frames / sum(lengths)).astype(int)
    envelope = np.empty(frames)
    for (a, b), height in zip(zip(bounds[:-1], bounds[1:]), rng.uniform(0.7, 1.0, len(lengths))):
        u = np.arange(b - a) / (b - a)
        rise = 0.4  # a wave builds for 40 % of its length, then washes back out
        shape = np.where(u < rise, 0.5 - 0.5 * np.cos(np.pi * u / rise),
                         0.5 + 0.5 * np.cos(np.pi * (u - rise) / (1.0 - rise)))
        envelope[a:b] = height * shape
    return envelope


def _waves(rng, frames, sample_rate):
    """A calm shore: a low rumble and a brighter wash, both swelling with each wave."""
    swell = _swell(rng, frames, sample_rate)
    body = _shaped_noise(rng, frames, sample_rate, lambda hz: _band(hz, 40.0, 500.0) / np.sqrt(hz))
    wash = _shaped_noise(rng, frames, sample_rate, lambda hz: _band(hz, 400.0, 3500.0) / np.sqrt(hz))
    body /= np.sqrt(np.mean(np.square(body)))
    wash /= np.sqrt(np.mean(np.square(wash)))
    return body * (0.35 + 0.65 * swell) + 0.6 * wash * (0.1 + 0.9 * swell ** 2)


_GENERATORS = {"pink": _pink, "brown": _brown, "rain": _rain, "waves": _waves}


def _crossfade_loop(data: np.ndarray, crossfade_frames: int) -> np.ndarray:
    """Fold the end into the start with an equal-power crossfade; the result loops seamlessly.

    loop[0] equals data[len - crossfade], the frame that followed loop[-1] in the file.
    """
    overlap = min(crossfade_frames, data.shape[0] // 4)
    length = data.shape[0] - overlap
    loop = np.array(data[:length], dtype=np.float64)
    theta = (np.arange(overlap) / overlap * (np.pi / 2))[:, None]
    loop[:overlap] = data[:overlap] * np.sin(theta) + data[length:] * np.cos(theta)
    return loop


def duck_gain(block_start: int, block_frames: int, speech: Sequence[tuple[int, int]], *, sample_rate: int,
              depth_db: float, attack_seconds: float = 0.25, release_seconds: float = 0.6) -> np.ndarray:
    """Linear bed gain for a block: ``depth_db`` down while the voice speaks, 1.0 away from it.

    The dip starts ``attack_seconds`` before each utterance (so it is complete
    when the voice begins) and recovers over ``release_seconds`` after it; gaps
    too short for both stay down, so the bed does not pump between sentences.
    ``speech`` is sorted, non-overlapping (start, end) frames.
    """
    attack = max(1, int(round(attack_seconds * sample_rate)))
    release = max(1, int(round(release_seconds * sample_rate)))
    reach = attack + release
    end = block_start + block_frames
    # Only utterances within two ramps of the block can shape it (bisect, not a scan).
    first = bisect.bisect_left(speech, block_start - 2 * reach, key=lambda iv: iv[1])
    last = bisect.bisect_right(speech, end + 2 * reach, key=lambda iv: iv[0])
    depth = np.zeros(block_frames)
    for start, stop in _merged(speech[first:last], reach):
        _ramp(depth, block_start, start - attack, start, rising=True)
        lo, hi = max(start, block_start) - block_start, min(stop, end) - block_start
        if lo < hi:
            depth[lo:hi] = 1.0
        _ramp(depth, block_start, stop, stop + release, rising=False)
    return np.power(10.0, -depth_db * depth / 20.0).astype(np.float32)


def _ramp(depth: np.ndarray, block_start: int, begin: int, finish: int, *, rising: bool) -> None:
    """Raise ``depth`` to a raised-cosine ramp over absolute frames [begin, finish) where it overlaps."""
    lo, hi = max(begin, block_start), min(finish, block_start + depth.size)
    if lo >= hi:
        return
    u = (np.arange(lo, hi, dtype=np.float64) - begin) / (finish - begin)
    shape = 0.5 - 0.5 * np.cos(np.pi * u) if rising else 0.5 + 0.5 * np.cos(np.pi * u)
    view = depth[lo - block_start:hi - block_start]
    np.maximum(view, shape, out=view)


def _merged(intervals: Sequence[tuple[int, int]], min_gap: int) -> list[tuple[int, int]]:
    """Join intervals separated by less than ``min_gap`` frames."""
    out: list[tuple[int, int]] = []
    for start, stop in intervals:
        if out and start - out[-1][1] < min_gap:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((int(start), int(stop)))
    return out
