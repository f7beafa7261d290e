"""Recorded voice packs: a folder of numbered human recordings (001.wav ...) used as a speech engine."""
from __future__ import annotations

import wave
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from compassion_audio.core.audio import DEFAULT_RATE, Audio, decode_file, fade_edges, gain_to_db
from compassion_audio.core.errors import OutputError, SpeechError
from compassion_audio.core.files import atomic_open
from compassion_audio.core.input_files import file_sha256
from compassion_audio.speech.recording_sheet import MANIFEST, normalise_phrase, read_manifest
from compassion_audio.speech.engines.base import EngineVoice, SpeechEngine

_NOT_AUDIO = {".json", ".txt", ".html", ".md", ".toml", ".npy"}


def recording_for(pack_dir: Path, number: str) -> Path | None:
    """The recording named NUMBER.<any audio extension>, or None."""
    found = [p for p in sorted(pack_dir.glob(f"{number}.*"))
             if p.is_file() and p.suffix.lower() not in _NOT_AUDIO]
    if len(found) > 1:
        raise SpeechError(f"phrase {number} has {len(found)} recordings "
                          f"({', '.join(p.name for p in found)}): keep one")
    return found[0] if found else None


class PackEngine:
    """SpeechEngine that plays a person's recordings; phrases nobody recorded come from ``fallback``."""

    name = "pack"

    def __init__(self, pack_dir: str | Path, *, fallback: SpeechEngine | None = None,
                 sample_rate: int = DEFAULT_RATE) -> None:
        self.pack_dir = Path(pack_dir)
        self.fallback = fallback
        self.sample_rate = sample_rate
        self._manifest = read_manifest(self.pack_dir)
        self._numbers = {normalise_phrase(text): number for number, text in self._manifest.items()}

    def _recording(self, text: str) -> Path | None:
        number = self._numbers.get(normalise_phrase(text))
        return recording_for(self.pack_dir, number) if number else None

    def missing(self, sentences: Iterable[str]) -> list[str]:
        """The sentences with no recording in the pack (not in the manifest, or no file yet)."""
        return [s for s in sentences if self._recording(s) is None]

    def missing_report(self, sentences: Iterable[str]) -> str:
        """One message listing every missing phrase with its number (or 'new' when not on the sheet)."""
        gaps = self.missing(sentences)
        lines = [f"  {self._numbers.get(normalise_phrase(s), 'new')}  {s}" for s in gaps]
        return (f"the voice pack {self.pack_dir.name} has no recording for {len(gaps)} "
                f"phrase(s):\n" + "\n".join(lines) +
                "\n(record them, or add new phrases to the sheet with write_sheet, or use a fallback voice)")

    def synthesize(self, text: str) -> Audio:
        path = self._recording(text)
        if path is not None:
            return mute_room_noise(decode_file(path, self.sample_rate).mono())
        if self.fallback is not None:
            return self.fallback.synthesize(text)
        wanted = list(dict.fromkeys([*self._manifest.values(), text]))
        raise SpeechError(self.missing_report(wanted))

    def identity(self) -> dict:
        """Every recording's fingerprint: re-recording a phrase changes the identity."""
        files = {}
        for number in sorted(self._manifest):
            path = recording_for(self.pack_dir, number)
            if path is not None:
                files[number] = _fingerprint(path)
        return {"engine": "pack", "manifest_sha256": file_sha256(self.pack_dir / MANIFEST),
                "sample_rate": self.sample_rate, "files": files,
                "fallback": self.fallback.identity() if self.fallback else None}

    def identity_for(self, text: str) -> dict:
        """Identity of one phrase only, so a cache keyed on it re-renders just re-recorded phrases.

        (A change to mute_room_noise is a bump of cache.CACHE_FORMAT, which every key holds.)"""
        path = self._recording(text)
        if path is None:
            return {"engine": "pack", "fallback": self.fallback.identity() if self.fallback else None}
        return {"engine": "pack", "sample_rate": self.sample_rate, "file": _fingerprint(path)}

    def voices(self) -> list[EngineVoice]:
        return [EngineVoice(id=f"pack:{self.pack_dir}", name=self.pack_dir.name)]

    def close(self) -> None:
        if self.fallback is not None:
            self.fallback.close()


def _fingerprint(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns, file_sha256(path)]


def _window_db(samples: np.ndarray, sample_rate: int, window_seconds: float) -> np.ndarray:
    size = max(1, int(window_seconds * sample_rate))
    count = samples.shape[0] // size
    frames = samples[: count * size].reshape(count, size).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return np.array([gain_to_db(float(r)) for r in rms])


def find_parts(audio: Audio, *, min_gap_seconds: float = 0.7, below_db: float = 30.0,
               window_seconds: float = 0.02) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Spoken parts and the gaps between them, as (start, end) frames.

    A gap is at least ``min_gap_seconds`` of windows more than ``below_db`` under
    the take's speech level (the 95th percentile of window levels), so room noise
    well under the voice still counts as silence.
    """
    levels = _window_db(audio.samples, audio.sample_rate, window_seconds)
    size = max(1, int(window_seconds * audio.sample_rate))
    finite = levels[np.isfinite(levels)]
    if finite.size == 0:
        return [], []
    loud = levels > np.percentile(finite, 95) - below_db
    runs, start = [], None
    for i, flag in enumerate(np.append(loud, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append([start, i])
            start = None
    min_gap = int(round(min_gap_seconds / window_seconds))
    parts: list[list[int]] = []
    for run in runs:
        if parts and run[0] - parts[-1][1] < min_gap:
            parts[-1][1] = run[1]  # a short pause inside one phrase (a comma, a breath)
        else:
            parts.append(run)
    spans = [(a * size, b * size) for a, b in parts]
    gaps = [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]
    return spans, gaps


NOISE_MARGIN_SECONDS = 0.03


def mute_room_noise(audio: Audio) -> Audio:
    """Silence a recording's room noise before the first and after the last spoken part.

    The speech stage trims against the clip's own peak, which keeps a quiet
    take's hiss; here silence is judged against the take's speech level (as
    find_parts does), so pauses between recorded phrases stay exact.
    """
    spans, _ = find_parts(audio, min_gap_seconds=3600.0)
    if not spans:
        return audio
    margin = int(NOISE_MARGIN_SECONDS * audio.sample_rate)
    start = max(0, spans[0][0] - margin)
    end = min(audio.frames, spans[-1][1] + margin)
    samples = np.zeros_like(audio.samples)
    samples[start:end] = fade_edges(audio.samples[start:end], margin, margin)
    return Audio(samples, audio.sample_rate)


def split_take(path: str | Path, phrases: Sequence[str], *, min_gap_seconds: float = 0.7,
               margin_seconds: float = 0.25, sample_rate: int = DEFAULT_RATE) -> list[Audio]:
    """Cut one long take into one clip per phrase, in order; a count mismatch is a SpeechError report."""
    audio = decode_file(path, sample_rate).mono()
    spans, gaps = find_parts(audio, min_gap_seconds=min_gap_seconds)
    if len(spans) != len(phrases):
        raise SpeechError(_mismatch_report(spans, gaps, phrases, sample_rate, min_gap_seconds))
    margin = int(margin_seconds * sample_rate)
    clips = []
    for i, (start, end) in enumerate(spans):
        # Margins never reach past the middle of a gap, so no clip holds its neighbour's breath.
        low = max(0, start - margin) if i == 0 else max(start - margin, (spans[i - 1][1] + start) // 2)
        high = (min(audio.frames, end + margin) if i == len(spans) - 1
                else min(end + margin, (end + spans[i + 1][0]) // 2))
        clips.append(Audio(audio.samples[low:high].copy(), sample_rate))
    return clips


def _clock(frames: int, sample_rate: int) -> str:
    seconds = frames / sample_rate
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _mismatch_report(spans, gaps, phrases, sample_rate: int, min_gap_seconds: float) -> str:
    longest = sorted(gaps, key=lambda g: g[1] - g[0], reverse=True)[:5]
    where = ", ".join(f"{_clock(a, sample_rate)} ({(b - a) / sample_rate:.1f} s)" for a, b in longest)
    lengths = [(b - a) / sample_rate for a, b in spans]
    longest_part = max(range(len(spans)), key=lambda i: lengths[i]) if spans else None
    text = f"found {len(spans)} spoken parts for {len(phrases)} phrases"
    if where:
        text += f"; the longest gaps are at {where}"
    if longest_part is not None:
        text += (f"; the longest part starts at {_clock(spans[longest_part][0], sample_rate)} "
                 f"({lengths[longest_part]:.1f} s)")
    return text + (f" (leave at least {min_gap_seconds:g} s of silence between phrases and none "
                   "inside one, or record phrases as separate files)")


def import_take(path: str | Path, pack_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Split a long take of the whole sheet into 001.wav, 002.wav ... in the pack folder."""
    pack_dir = Path(pack_dir)
    manifest = read_manifest(pack_dir)
    numbers = sorted(manifest, key=lambda n: int(n) if n.isdigit() else 0)
    existing = [p for n in numbers for p in pack_dir.glob(f"{n}.*")
                if p.is_file() and p.suffix.lower() not in _NOT_AUDIO]
    if existing and not overwrite:
        raise OutputError(f"{pack_dir} already has {len(existing)} recordings (e.g. {existing[0].name}); "
                          "add --force to 'voices import-take' to replace them")
    clips = split_take(path, [manifest[n] for n in numbers])
    written = []
    for number, clip in zip(numbers, clips):
        target = pack_dir / f"{number}.wav"
        _write_wav(target, clip)
        written.append(target)
    # Only now, with every new take in place: a failure above leaves each phrase recorded (new or old).
    for old in existing:
        # samefile: on a case-blind disk 001.WAV is the 001.wav just written.
        if old.exists() and not any(old.samefile(new) for new in written):
            old.unlink()
    return written


def _write_wav(path: Path, clip: Audio) -> None:
    pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with atomic_open(path) as fh, wave.open(fh, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(clip.sample_rate)
        out.writeframes(pcm.tobytes())
