"""Encode a stream of sample blocks with ffmpeg into a temp file, tag it, then rename it into place."""
from __future__ import annotations

import contextlib
import itertools
import os
import struct
import subprocess
import queue
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from compassion_audio.core.settings import FORMATS, ExportSettings
from compassion_audio.core.errors import AudioError, OutputError
from compassion_audio.core.files import atomic_output
from compassion_audio.core.tools import ffmpeg_exe

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


_PACKET_BYTES = 1 << 18
"""For encoders with a fixed frame size (MP3, Opus, AAC) ffmpeg reads the stream in packets
this large (its PCM demuxers use 4 KB): fewer hand-overs between its threads - 0.4
CPU-seconds less per 30 minutes of mono MP3, same output. FLAC takes each packet as one
frame, so it keeps the default."""
_FIXED_FRAMES = {"mp3", "ogg", "opus", "m4a"}


def input_args(fmt: str) -> list[str]:
    """ffmpeg's input options for the stream ``encode`` writes: float WAV of unknown length."""
    packets = ["-max_size", str(_PACKET_BYTES)] if fmt in _FIXED_FRAMES else []
    return ["-f", "wav", *packets, "-i", "pipe:0"]


def wav_header(sample_rate: int, channels: int) -> bytes:
    """A float32 WAV header whose sizes say "unknown" (0xFFFFFFFF): ffmpeg reads to the end."""
    fmt = struct.pack("<HHIIHH", 3, channels, sample_rate, sample_rate * channels * 4, channels * 4, 32)
    unknown = struct.pack("<I", 0xFFFFFFFF)
    return b"RIFF" + unknown + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + unknown


def encode(blocks: Iterable[np.ndarray], path: Path, *, sample_rate: int, channels: int,
           settings: ExportSettings) -> Path:
    """Pipe float32 blocks into ffmpeg, writing ``path`` (a temp name the caller renames)."""
    fmt = settings.format
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y", *input_args(fmt)]
    cmd += _CODECS[fmt]
    if fmt in _BITRATE:
        cmd += _quality(fmt, settings.bitrate)
    cmd.append(str(path))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errors)
        try:
            _feed(proc.stdin, itertools.chain([wav_header(sample_rate, channels)], blocks))
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


def remux_m4a(path: Path, ffmetadata: str) -> None:
    """Replace an M4A's tags and chapters with those of ``ffmetadata`` (FFMETADATA1 text),
    copying its audio (no re-encoding). (The streamed encode starts before the chapters
    are known, and mutagen cannot write M4A chapters.) The copy is written beside ``path``
    and renamed over it, so ``path`` is never half-written."""
    with atomic_output(path) as scratch:
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(path),
               "-f", "ffmetadata", "-i", "pipe:0", "-map", "0:a", "-map_metadata", "1",
               "-map_chapters", "1", "-c", "copy", *_CODECS["m4a"][2:], str(scratch)]
        proc = subprocess.run(cmd, input=ffmetadata, capture_output=True, text=True, encoding="utf-8")
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            # Not named: in a render ``path`` is itself the output's temp name.
            raise AudioError("ffmpeg could not add chapters to the M4A file: "
                             f"{lines[-1] if lines else f'exit {proc.returncode}'}")
        os.chmod(scratch, stat.S_IMODE(path.stat().st_mode))  # the temp name is private


_QUEUED_BLOCKS = 8
"""Blocks the mixer may run ahead of the encoder (8 x 64k frames: ~2 MB of float32 mono)."""


def _feed(pipe, blocks: Iterable[np.ndarray]) -> None:
    """Write blocks to ffmpeg from a helper thread, so mixing and encoding run side by side.

    Writing from this thread would make them take turns: a pipe holds only 64 KB,
    so the mixer would wait for the encoder on every block and the encoder for
    the mixer between blocks.
    """
    pending: queue.Queue = queue.Queue(maxsize=_QUEUED_BLOCKS)
    failed: list[BaseException] = []

    def write() -> None:
        while (data := pending.get()) is not None:
            if failed:
                continue  # drain so the producer never blocks
            try:
                pipe.write(data)
            except BaseException as exc:  # BrokenPipeError: ffmpeg stopped; it says why
                failed.append(exc)

    writer = threading.Thread(target=write, name="compassion-audio-encode", daemon=True)
    writer.start()
    try:
        for block in blocks:
            data = block if isinstance(block, bytes) else np.ascontiguousarray(block, dtype="<f4").tobytes()
            pending.put(data)
            if failed:
                break
    finally:
        pending.put(None)
        writer.join()
    if failed and not isinstance(failed[0], BrokenPipeError):
        raise failed[0]


def _quality(fmt: str, bitrate: str | None) -> list[str]:
    if bitrate:
        return ["-b:a", bitrate]
    return {"mp3": ["-q:a", "3"], "m4a": ["-b:a", "160k"]}.get(fmt, ["-b:a", "96k"])
