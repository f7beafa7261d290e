"""The whole album as one file with a chapter per track: M4B (AAC in MP4), or MP3 when the album is MP3.

M4B is what audiobook players open as one book with chapters; an album made as MP3 stays
MP3 (ID3 chapters) for clients whose player plays nothing else. The tracks are decoded
one after another into one encode, so the file's chapters fall exactly where each track's
samples begin.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compassion_audio.album.names import safe_title
from compassion_audio.core.errors import AudioError
from compassion_audio.core.files import atomic_output
from compassion_audio.core.settings import ExportSettings
from compassion_audio.core.timeline import Chapter
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output.export import encode
from compassion_audio.output.tags import write_tags

_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class Part:
    """A track of the album: its title (the chapter's) and file."""

    title: str
    path: Path


def single_format(track_format: str) -> str:
    """mp3 for an MP3 album, else m4a (written as .m4b)."""
    return "mp3" if track_format == "mp3" else "m4a"


def single_name(album_title: str, track_format: str) -> str:
    return f"{safe_title(album_title)}.{'mp3' if single_format(track_format) == 'mp3' else 'm4b'}"


def single_key(track_keys: list[str], tags: dict[str, str], cover_sha256: str | None, fmt: str,
               bitrate: str | None, sample_rate: int, channels: int) -> str:
    """A hash of what decides the file: the tracks' own keys, in order, and its tags and encoding."""
    decided = {"tracks": track_keys, "tags": tags, "cover": cover_sha256, "format": fmt, "bitrate": bitrate,
               "sample_rate": sample_rate, "channels": channels, "single_format": 1}
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode("utf-8")).hexdigest()


def write_single_file(path: Path, parts: list[Part], *, tags: dict[str, str], cover: Path | None,
                      fmt: str, bitrate: str | None, sample_rate: int, channels: int, private: bool) -> float:
    """Decode the parts in order into one encode at ``path`` (atomically); return its seconds."""
    chapters: list[Chapter] = []
    position = 0

    def blocks():
        nonlocal position
        for part in parts:
            start = position
            for block in _decoded(part.path, sample_rate, channels):
                position += block.shape[0]
                yield block
            chapters.append(Chapter(title=part.title, start=start, end=position))

    with atomic_output(path, private=private) as tmp:
        encode(blocks(), tmp, sample_rate=sample_rate, channels=channels,
               settings=ExportSettings(format=fmt, bitrate=bitrate))
        write_tags(tmp, fmt, tags, chapters=chapters, sample_rate=sample_rate, cover=cover,
                   duration_frames=position)
    return position / sample_rate


def _decoded(path: Path, sample_rate: int, channels: int):
    """A file's samples as float32 (frames, channels) blocks, decoded by ffmpeg."""
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
           "-ac", str(channels), "-ar", str(sample_rate), "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    size = _BLOCK_FRAMES * channels * 4
    try:
        while chunk := proc.stdout.read(size):
            usable = len(chunk) - len(chunk) % (channels * 4)
            yield np.frombuffer(chunk[:usable], dtype="<f4").reshape(-1, channels)
    finally:
        proc.stdout.close()
        errors = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        last = errors.splitlines()[-1] if errors else f"exit {code}"
        raise AudioError(f"ffmpeg could not decode {path.name}: {last}")
