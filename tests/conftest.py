"""Shared fixtures: a fake engine with exact sample counts, isolated cache and output folders."""
from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

from compassion_audio.core.audio import Audio
from compassion_audio.speech.engines.base import EngineVoice
from compassion_audio.core.tools import ffmpeg_exe

FAKE_RATE = 44100
FAKE_PAD = 2205           # 50 ms of engine silence before and after every phrase
FAKE_FRAMES_PER_WORD = 8820  # 200 ms of "speech" per word


class FakeEngine:
    """Speaks every phrase as a steady 220 Hz burst of exactly 200 ms per word, padded with silence.

    Timing tests use it to know every clip's audible length to the frame.
    """

    name = "fake"

    def __init__(self, sample_rate: int = FAKE_RATE) -> None:
        self.sample_rate = sample_rate
        self.calls: list[str] = []

    def identity(self) -> dict:
        return {"engine": "fake", "rate": self.sample_rate, "version": 1}

    @staticmethod
    def burst_frames(text: str) -> int:
        return FAKE_FRAMES_PER_WORD * max(1, len(text.split()))

    def synthesize(self, text: str) -> Audio:
        self.calls.append(text)
        n = self.burst_frames(text)
        t = np.arange(n) / self.sample_rate
        burst = 0.5 * np.sin(2 * math.pi * 220.0 * t)
        burst[0] = 0.5  # start audibly on the first frame so the audible bound is exact
        pad = np.zeros(FAKE_PAD)
        return Audio(np.concatenate([pad, burst, pad]).astype(np.float32), self.sample_rate)

    def voices(self) -> list[EngineVoice]:
        return [EngineVoice("fake", "Fake")]

    def close(self) -> None:
        pass


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache folder and never touches the user's."""
    monkeypatch.setenv("COMPASSION_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPASSION_AUDIO_EXERCISES", raising=False)


def decode(path, sample_rate: int = 44100) -> np.ndarray:
    """Decode any audio file the product wrote to mono float32 (independently of the product)."""
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
                           "-ar", str(sample_rate), "-"], capture_output=True, check=True)
    return np.frombuffer(proc.stdout, dtype=np.float32)


def sounding_runs(samples: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                  min_gap_seconds: float = 0.25, window_seconds: float = 0.005) -> list[tuple[float, float]]:
    """(start, end) seconds of stretches louder than ``threshold_db`` (peak per window),
    merging gaps shorter than ``min_gap_seconds`` (the silences inside speech)."""
    win = max(1, int(window_seconds * sample_rate))
    n = samples.size // win
    peaks = np.abs(samples[: n * win]).reshape(n, win).max(axis=1)
    loud = peaks >= 10 ** (threshold_db / 20)
    runs: list[list[float]] = []
    for i in np.flatnonzero(loud):
        start, end = i * win / sample_rate, (i + 1) * win / sample_rate
        if runs and start - runs[-1][1] < min_gap_seconds:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return [(a, b) for a, b in runs]


def ebur128(path) -> dict:
    """Integrated loudness and true peak by ffmpeg's own meter (independent of ours)."""
    proc = subprocess.run([ffmpeg_exe(), "-nostats", "-hide_banner", "-i", str(path), "-af",
                           "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True)
    text = proc.stderr[proc.stderr.rfind("Summary:"):]
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("I:"):
            out["integrated"] = float(line.split()[1])
        elif line.startswith("Peak:"):
            out["true_peak"] = float(line.split()[1])
    return out


def median_f0(x: np.ndarray, sr: int, *, min_windows: int = 0) -> float:
    """Median pitch by autocorrelation over 40 ms voiced windows (60-400 Hz); windows
    quieter than 1/40 of the loudest sample are skipped."""
    x = x.astype(np.float64)
    size, hop, low, high = int(0.04 * sr), int(0.01 * sr), int(sr / 400), int(sr / 60)
    loudest = np.abs(x).max()
    found = []
    for i in range(0, len(x) - size, hop):
        w = x[i:i + size] * np.hanning(size)
        if np.sqrt(np.mean(w * w)) < 0.025 * loudest:
            continue
        ac = np.correlate(w, w, "full")[size - 1:]
        ac = ac / ac[0]
        lag = low + int(np.argmax(ac[low:high]))
        if ac[lag] > 0.5:
            found.append(sr / lag)
    assert len(found) >= min_windows, "too few voiced windows to measure pitch"
    return float(np.median(found))
