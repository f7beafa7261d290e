"""Encode a stream of sample blocks with ffmpeg into a temp file and check it, and publish a
track with its sidecars as one set (the paths are checked first by ``targets``)."""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import struct
import subprocess
import queue
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from compassion_audio.core.settings import FORMATS, ExportSettings
from compassion_audio.core.errors import AudioError, OutputError
from compassion_audio.core.files import atomic_output, keep_beside, release_kept
from compassion_audio.core.ffmpeg_run import StderrReader, Watchdog, ffmpeg_failure, run_ffmpeg
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output.targets import folder_label

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
    """Pipe float32 blocks into ffmpeg, writing ``path`` (a temp name the caller renames).

    ffmpeg runs under a watchdog (core.ffmpeg_run.STALL_SECONDS): one that stops taking input, or
    never exits after its input ends, is killed and reported. A failure is an AudioError with
    ffmpeg's last meaningful line - or an OutputError when the disk is full or a file-size
    limit is reached - and ffmpeg is always waited for.
    """
    fmt = settings.format
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y", *input_args(fmt)]
    cmd += _CODECS[fmt]
    if fmt in _BITRATE:
        cmd += _quality(fmt, settings.bitrate)
    cmd.append(str(path))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with Watchdog(proc, (path,)) as watchdog, StderrReader(proc, watchdog) as errors:
        try:
            try:
                _feed(proc.stdin, itertools.chain([wav_header(sample_rate, channels)], blocks), watchdog)
            finally:
                with contextlib.suppress(OSError):  # BrokenPipeError: ffmpeg stopped; it says why
                    proc.stdin.close()
            with watchdog.owing():
                code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        raise _write_failure(f"ffmpeg could not write {fmt}", code, errors.text, watchdog, path)
    return path


def _write_failure(action: str, code: int, stderr: bytes, watchdog: Watchdog, path: Path) -> Exception:
    """An OutputError when the disk was full or a file-size limit was reached (ffmpeg says
    so, or - as Python starts children with SIGXFSZ at its default - dies of SIGXFSZ);
    otherwise ffmpeg_failure's AudioError."""
    text = stderr.decode("utf-8", "replace")
    if code == -signal.SIGXFSZ:
        text += "\nFile too large"
    for reason, marker in (("the disk is full", "No space left on device"),
                           ("a file-size limit was reached", "File too large")):
        if marker in text:
            return OutputError(f"cannot write the track in {folder_label(path)}: {reason} (nothing was written)")
    return ffmpeg_failure(action, code, stderr, watchdog, hide={str(path): "the output", path.name: "the output"})


def remux_m4a(path: Path, ffmetadata: str) -> None:
    """Replace an M4A's tags and chapters with those of ``ffmetadata`` (FFMETADATA1 text),
    copying its audio (no re-encoding). (The streamed encode starts before the chapters
    are known, and mutagen cannot write M4A chapters.) The copy is written to a temp name
    beside ``path`` and renamed over it only when ffmpeg succeeded: in a render ``path`` is
    itself the output's temp name, so no step of the remux ever writes the final name, and a
    remux killed half-way leaves only hidden ``.partial`` names. Runs under the watchdog."""
    with atomic_output(path) as scratch:
        args = ["-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(path),
                "-f", "ffmetadata", "-i", "pipe:0", "-map", "0:a", "-map_metadata", "1",
                "-map_chapters", "1", "-c", "copy", *_CODECS["m4a"][2:], str(scratch)]
        # Not named: in a render ``path`` is itself the output's temp name.
        run_ffmpeg(args, "ffmpeg could not add chapters to the M4A file", stdin=ffmetadata.encode("utf-8"),
                   output=scratch, hide={name: "the output" for name in (str(path), str(scratch), path.name,
                                                                         scratch.name)})
        os.chmod(scratch, stat.S_IMODE(path.stat().st_mode))  # the temp name is private


_LENGTH_SLACK_SECONDS = {"mp3": 0.08, "m4a": 0.05, "ogg": 0.03, "opus": 0.03, "flac": 0.002, "wav": 0.002}
"""How much longer than its samples an encoded file may read: the format's padding. MP3
carries the encoder delay and pads to its 1,152-sample frames (measured +2,016 samples on
a 30-minute track), AAC its 1,024 priming samples plus padding to a 1,024 frame (+1,024),
Opus is exact at 48 kHz (20 ms frames at most); FLAC and WAV are exact."""
_SHORT_SLACK_SECONDS = 0.03
"""How much shorter: resampling to 48 kHz (Opus) and back may round off a few samples."""
VERIFY_TAIL_SECONDS = 3.0


def verify(path: Path, fmt: str, *, frames: int, sample_rate: int) -> None:
    """Check, before it takes its final name, that the encoded file reads back as ``fmt``
    audio of ``frames`` samples (within the format's padding), and that its end decodes.

    Not a full decode: on a 30-minute mono track (2 cores) a full decode by ffmpeg took 2.3 s
    against a 3.9 s MP3 encode, 1.8 s against 6.7 s for M4A, 2.6 s against 8.5 s for Opus,
    1.2 s against 1.3 s for FLAC - 20 to 90 % of the encode, where this check must cost a few
    per cent. Instead two independent readers: mutagen reads the length the container
    states (MP3's Xing/LAME frame count, Ogg's last granule, the MP4 and FLAC headers, the
    WAV data size), and ffmpeg decodes the last VERIFY_TAIL_SECONDS, which a file truncated
    or garbled at the end does not give (measured: 0.02-0.05 s in all, under 1.5 % of the
    encode). A file with nothing, garbage, a wrong length or an unreadable end is an AudioError.
    """
    import mutagen

    from compassion_audio.core.audio import decode_part

    expected = frames / sample_rate
    try:
        info = getattr(mutagen.File(path), "info", None)
    except (mutagen.MutagenError, OSError, ValueError):
        info = None
    length = getattr(info, "length", None)
    if not length:
        raise AudioError(f"ffmpeg could not write {fmt}: what it wrote does not read back as "
                         f"{fmt} audio ({path.stat().st_size} bytes)")
    if not -_SHORT_SLACK_SECONDS <= length - expected <= _LENGTH_SLACK_SECONDS[fmt]:
        raise AudioError(f"ffmpeg could not write {fmt}: the file it wrote lasts {length:.3f} s, "
                         f"not {expected:.3f} s")
    tail = min(VERIFY_TAIL_SECONDS, expected)
    try:
        got = decode_part(path, sample_rate, from_end_seconds=tail).seconds
    except AudioError:
        got = 0.0
    if got < tail - 0.25:
        raise AudioError(f"ffmpeg could not write {fmt}: the end of the file it wrote does not decode "
                         f"({got:.2f} s of the last {tail:.2f} s)")


def sidecar_texts(timeline, path: Path, export: ExportSettings) -> dict[Path, str]:
    """The sidecars a render writes beside ``path``, by path: captions and the timeline JSON."""
    import json

    from compassion_audio.output.captions import caption_texts

    texts: dict[Path, str] = {}
    if export.captions:
        texts.update(caption_texts(timeline, path))
    if export.timeline_json:
        texts[path.with_suffix(".timeline.json")] = json.dumps(timeline.to_json(), indent=2,
                                                               ensure_ascii=False) + "\n"
    return texts


@contextlib.contextmanager
def published_together(paths: Sequence[Path]) -> Iterator[set[Path]]:
    """Publish a track and its sidecars as one set: all new, or - if any step fails - all as before.

    The block publishes each file (an atomic rename of its temp file) and adds its path to
    the yielded set. Before the block, each existing file is kept under a hidden temp name (a
    hard link: nothing is copied); if the block raises, every path it published is put back
    as it was (the kept file restored, or the new one removed where there was none) and paths
    it did not publish are left alone - a file a concurrent render published is not ours to
    remove. The render publishes the track first (``exclusive`` without --force: the race
    between two renders is decided there, before any sidecar is touched), then its sidecars.
    """
    kept: dict[Path, Path] = {}
    done: set[Path] = set()
    try:
        for path in paths:
            backup = keep_beside(path)
            if backup is not None:
                kept[path] = backup
        yield done
    except BaseException:
        for path in done:
            with contextlib.suppress(OSError):
                if path in kept:
                    backup = kept.pop(path)
                    os.replace(backup, path)
                    release_kept(backup)
                else:
                    os.unlink(path)
        raise
    finally:
        for backup in kept.values():
            with contextlib.suppress(OSError):
                os.unlink(backup)
            release_kept(backup)


_QUEUED_BLOCKS = 8
"""Blocks the mixer may run ahead of the encoder (8 x 64k frames: ~2 MB of float32 mono)."""


def _feed(pipe, blocks: Iterable[np.ndarray], watchdog: Watchdog) -> None:
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
                with watchdog.owing():  # ffmpeg owes us progress while a block waits for it
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
