"""Shared fixtures: a fake engine with exact sample counts, isolated cache and output folders."""
from __future__ import annotations

import base64
import inspect
import math
import re
import subprocess
import typing
from pathlib import Path

import mutagen

import numpy as np
import pytest
from mutagen.flac import Picture
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from scipy.signal import resample_poly

from compassion_audio.core.audio import Audio
from compassion_audio.sound.mastering import TOLERANCE_DB
from compassion_audio.speech.clip_source import ClipSource
from compassion_audio.speech.engines.base import EngineVoice, SpeechEngine
from compassion_audio.core.tools import ffmpeg_exe

FILE_LOUDNESS_LU = TOLERANCE_DB + 0.1
"""How far ffmpeg may read a mastered file from its loudness target: what mastering promises
(a pass within TOLERANCE_DB of the target is kept; one further off is written again, with the
gain corrected) plus ffmpeg's meter on the encoded file - within 0.02 LU of the product's on
MP3, Opus, AAC, FLAC and WAV - printed to one decimal."""

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


def spoken_clips(sentences, engine, cache, *, sample_rate: int, lexicon=None) -> dict:
    """Sentence -> clip, as render.py gets them: the cache hits, then ClipSource.ahead()."""
    source = ClipSource(sentences, engine, cache, sample_rate=sample_rate, lexicon=lexicon)
    clips = dict(source.ready)
    clips.update(source.ahead())
    return {s: clips[s] for s in source.distinct}


def protocol_problems(cls: type, protocol: type = SpeechEngine) -> list[str]:
    """What ``cls`` lacks of ``protocol``: each attribute, and each method with the protocol's
    parameter names and return annotation (isinstance on a runtime-checkable protocol
    only checks that the names exist)."""
    problems = []
    for attr, kind in typing.get_type_hints(protocol).items():
        value = getattr(cls, attr, None)
        if not isinstance(value, kind):
            problems.append(f"{attr}: {value!r} is not a {kind.__name__}")
    for name, wanted in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(wanted):
            continue
        got = getattr(cls, name, None)
        if not inspect.isfunction(got):
            problems.append(f"{name}: missing")
            continue
        want_sig, got_sig = inspect.signature(wanted), inspect.signature(got)
        if list(got_sig.parameters) != list(want_sig.parameters):
            problems.append(f"{name}{got_sig} != {name}{want_sig}")
        elif got_sig.return_annotation not in (want_sig.return_annotation, inspect.Signature.empty):
            problems.append(f"{name} returns {got_sig.return_annotation}, not {want_sig.return_annotation}")
    return problems


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache folder and never touches the user's."""
    monkeypatch.setenv("COMPASSION_AUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COMPASSION_AUDIO_EXERCISES", raising=False)


@pytest.fixture
def isolated_voices(tmp_path, monkeypatch):
    """Only the shipped profiles and hibari's bundled voice: no user voices folder, no hibari cache."""
    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "hibari-home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("COMPASSION_AUDIO_VOICES", raising=False)


@pytest.fixture
def started_workers(monkeypatch) -> list[int]:
    """The pids of every pyttsx3 speech worker started while the test runs, in order."""
    from compassion_audio.speech.engines import pyttsx3_engine

    started: list[int] = []
    real_init = pyttsx3_engine._Worker.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self.pid)

    monkeypatch.setattr(pyttsx3_engine._Worker, "__init__", recording_init)
    return started


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


def independent_true_peak_db(x: np.ndarray) -> float:
    """4x oversampled peak in dBTP by scipy's polyphase resampler: a Kaiser FIR of its own
    design (81 taps at 4x against the product's 33-tap phases), not the product's detector."""
    up = resample_poly(np.asarray(x, dtype=np.float64), 4, 1, axis=0, window=("kaiser", 8.0))
    return float(20 * np.log10(np.abs(up).max()))


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


def ffmetadata_view(path) -> tuple[dict, list[tuple[str, float, float]]]:
    """Tags and chapters (title, start s, end s) as ffmpeg reads them from a file, via
    ``-f ffmetadata`` (imageio-ffmpeg ships no ffprobe); -copyts: no shift by the encoder delay."""
    path = Path(path)
    # ffmpeg files Ogg comments under the stream, not the container.
    stream_tags = ["-map_metadata", "0:s:0"] if path.suffix in (".ogg", ".opus") else []
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-copyts", "-i", str(path), *stream_tags,
                           "-f", "ffmetadata", "-"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    head, *sections = re.split(r"^\[CHAPTER\]\n", proc.stdout, flags=re.M)
    unescape = lambda v: re.sub(r"\\(.)", r"\1", v)  # noqa: E731
    found = {}
    for line in head.splitlines()[1:]:
        key, _, value = line.partition("=")
        found[key.lower()] = unescape(value)
    chapters = []
    for section in sections:
        fields = dict(line.split("=", 1) for line in section.splitlines() if "=" in line)
        num, den = map(int, fields["TIMEBASE"].split("/"))
        chapters.append((unescape(fields["title"]), int(fields["START"]) * num / den,
                         int(fields["END"]) * num / den))
    return found, sorted(chapters, key=lambda c: c[1])


def embedded_pictures(path) -> list[bytes]:
    """The image bytes of every picture in a file, read by mutagen directly (ID3 APIC,
    MP4 covr, FLAC picture blocks, Ogg METADATA_BLOCK_PICTURE)."""
    audio = mutagen.File(path)
    tags = audio.tags
    if isinstance(tags, ID3):
        return [apic.data for apic in tags.getall("APIC")]
    if isinstance(audio, MP4):
        return [bytes(c) for c in (tags or {}).get("covr", [])]
    pictures = [p.data for p in getattr(audio, "pictures", [])]
    blocks = tags.get("METADATA_BLOCK_PICTURE", []) if tags is not None else []
    return pictures + [Picture(base64.b64decode(b)).data for b in blocks]


def processes_where(field: int, value: int) -> list[int]:
    """Running pids whose /proc/PID/stat field (after the command name: 1 = parent, 3 = session)
    is ``value``; zombies, which have stopped, are left out."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
