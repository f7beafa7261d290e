"""Encode a stream of sample blocks with ffmpeg into a temp file, tag it, then rename it into place."""
from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .config import FORMATS, ExportSettings
from .errors import AudioError, OutputError
from .tools import ffmpeg_exe

_CODECS = {
    "mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
    "ogg": ["-c:a", "libopus", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-f", "opus"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    "m4a": ["-c:a", "aac", "-movflags", "+faststart", "-f", "ipod"],
}
_BITRATE = {"mp3", "ogg", "opus", "m4a"}


def format_for(path: Path | None, requested: str | None) -> str:
    """The output format: ``requested`` if given, else the file's suffix, else mp3."""
    fmt = (requested or (path.suffix.lstrip(".").lower() if path and path.suffix else "mp3")).lower()
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def check_writable(path: Path, force: bool) -> None:
    """Fail early - before any synthesis - if ``path`` exists (without force) or cannot be written."""
    if path.exists() and not force:
        raise OutputError(f"{path} already exists: choose another -o or add --force to replace it")
    if path.is_dir():
        raise OutputError(f"{path} is a folder: give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {folder}: choose another -o")


def encode(blocks: Iterable[np.ndarray], path: Path, *, sample_rate: int, channels: int,
           settings: ExportSettings, extra_input: Path | None = None) -> Path:
    """Pipe float32 blocks into ffmpeg, writing ``path`` (a temp name the caller renames)."""
    fmt = settings.format
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y",
           "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0"]
    if extra_input is not None:
        cmd += ["-i", str(extra_input), "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
    cmd += _CODECS[fmt]
    if fmt in _BITRATE:
        cmd += _quality(fmt, settings.bitrate)
    cmd.append(str(path))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errors)
        try:
            for block in blocks:
                proc.stdin.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            lines = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise AudioError(f"ffmpeg could not write {fmt}: {lines[-1] if lines else f'exit {code}'}")
    return path


def _quality(fmt: str, bitrate: str | None) -> list[str]:
    if bitrate:
        return ["-b:a", bitrate]
    return {"mp3": ["-q:a", "3"], "m4a": ["-b:a", "160k"]}.get(fmt, ["-b:a", "96k"])


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it into place, on failure remove it."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
