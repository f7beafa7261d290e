"""Run ffmpeg under a watchdog: a stalled ffmpeg is killed, a failure is one line of its own words."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from compassion_audio.core.errors import AudioError
from compassion_audio.core.tools import ffmpeg_exe


STALL_SECONDS = 15.0
"""ffmpeg is stopped when it has work in hand (input waiting in its pipe, or the input
closed and its exit awaited) yet shows no sign of progress - no input taken, no output or
message written - for this long. A healthy ffmpeg takes a block in milliseconds, and even on a
busy 2-core machine finishes a 30-minute track seconds after its input ends; a hung one
would otherwise hang the render for ever. Signs of progress are the input it takes, the
output and messages it writes and (on Linux) its CPU time and I/O counts, so a slow disk
or a long closing rewrite is not a stall; an ffmpeg spinning without end would be one, and
is not caught."""


class Watchdog:
    """Kills a process that stalls while it owes us work; see STALL_SECONDS.

    The caller says when work is owed (``owing``) and when progress is seen (``progress``);
    the files given (ffmpeg's output and stderr) count as progress when they grow. After the
    process has ended, ``stalled`` says whether the watchdog killed it.
    """

    def __init__(self, proc: subprocess.Popen, files: tuple[Path | None, ...] = (),
                 stall_seconds: float | None = None) -> None:
        self.proc = proc
        self.files = [f for f in files if f is not None]
        self.stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
        self.stalled = False
        self._owed = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="compassion-audio-ffmpeg-watchdog",
                                        daemon=True)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def progress(self) -> None:
        self._last = time.monotonic()

    @contextlib.contextmanager
    def owing(self) -> Iterator[None]:
        """Within the block the process owes work (a write to it pending, its exit awaited)."""
        with self._lock:
            if self._owed == 0:
                self._last = time.monotonic()
            self._owed += 1
        try:
            yield
        finally:
            with self._lock:
                self._owed -= 1
            self.progress()

    def _sizes(self) -> list[int]:
        """Signs of life: the sizes of the files it writes and, where Linux shows them, its CPU
        time and I/O counts (an M4A's closing rewrite, in place, changes no size)."""
        sizes = []
        for path in self.files:
            try:
                sizes.append(os.stat(path).st_size)
            except OSError:
                sizes.append(-1)
        for name in ("stat", "io"):
            try:
                sizes.append(hash(Path(f"/proc/{self.proc.pid}/{name}").read_bytes()))
            except OSError:
                sizes.append(-1)
        return sizes

    def _watch(self) -> None:
        sizes = self._sizes()
        tick = min(0.25, self.stall_seconds / 4)
        while not self._done.wait(tick):
            now_sizes = self._sizes()
            if now_sizes != sizes:
                sizes = now_sizes
                self.progress()
            if self._owed and time.monotonic() - self._last > self.stall_seconds \
                    and self.proc.poll() is None:
                self.stalled = True
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                return


def ffmpeg_failure(action: str, code: int, stderr: bytes, watchdog: Watchdog | None = None,
                   hide: Mapping[str, str] | None = None) -> AudioError:
    """The error for an ffmpeg that failed: ``action`` ("ffmpeg could not write mp3"), then its
    last meaningful stderr line (each key of ``hide`` - a temp path that may carry a client's
    name, a path the action names already - replaced by its value), or how it ended when it
    said nothing."""
    if watchdog is not None and watchdog.stalled:
        return AudioError(f"{action}: ffmpeg made no progress for {watchdog.stall_seconds:g} s "
                          "and was stopped")
    line = last_line(stderr, hide)
    if line:
        return AudioError(f"{action}: {line}")
    if code < 0:
        with contextlib.suppress(ValueError):
            return AudioError(f"{action}: ffmpeg was killed ({signal.Signals(-code).name})")
    return AudioError(f"{action}: ffmpeg exited with code {code} and gave no reason")


_NOISE = ("size=", "frame=", "video:", "Press [q]", "Conversion failed!")
"""ffmpeg's stderr lines that say nothing about what went wrong (progress, its closing words)."""


def last_line(stderr: bytes, hide: Mapping[str, str] | None = None) -> str:
    """ffmpeg's last meaningful stderr line: not blank, progress or a closing word, without the
    ``[muxer @ 0x55...]`` prefix, and with each key of ``hide`` replaced by its value."""
    text = stderr.decode("utf-8", "replace")
    for name in sorted(hide or {}, key=len, reverse=True):
        if name:
            text = text.replace(name, hide[name])
    lines = [re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\] ", "", ln.strip())
             for ln in text.replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    return lines[-1][:300] if lines else ""


def run_ffmpeg(args: list[str], action: str, *, stdin: bytes | None = None,
               output: Path | None = None, hide: Mapping[str, str] | None = None,
               stall_seconds: float | None = None) -> bytes:
    """Run ffmpeg with ``args`` (after the program name) under a Watchdog; return its stdout.

    ``output``: a file it writes (its growth is progress). Any failure is an AudioError from
    ffmpeg_failure; the process is always waited for, never left behind.
    """
    proc = subprocess.Popen([ffmpeg_exe(), *args], stdin=subprocess.DEVNULL if stdin is None
                            else subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    with Watchdog(proc, (output,), stall_seconds) as watchdog, StderrReader(proc, watchdog) as errors:
        try:
            with watchdog.owing():
                if stdin is not None:
                    threading.Thread(target=_write_all, args=(proc.stdin, stdin), daemon=True).start()
                while chunk := proc.stdout.read(1 << 16):
                    chunks.append(chunk)
                    watchdog.progress()
                code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
    if code != 0:
        raise ffmpeg_failure(action, code, errors.text, watchdog, hide)
    return b"".join(chunks)


class StderrReader:
    """Reads a child's stderr on a thread (keeping its last 64 KB), each read a sign of progress."""

    KEEP = 1 << 16

    def __init__(self, proc: subprocess.Popen, watchdog: Watchdog) -> None:
        self._pipe = proc.stderr
        self._watchdog = watchdog
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, name="compassion-audio-ffmpeg-stderr",
                                        daemon=True)

    def __enter__(self) -> "StderrReader":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(timeout=5.0)  # at EOF as the process ends; a grandchild may hold the pipe
        if not self._thread.is_alive():
            self._pipe.close()

    @property
    def text(self) -> bytes:
        return bytes(self._data)

    def _read(self) -> None:
        while chunk := self._pipe.read1(4096) if hasattr(self._pipe, "read1") else self._pipe.read(4096):
            self._data += chunk
            del self._data[:-self.KEEP]
            self._watchdog.progress()


def _write_all(pipe, data: bytes) -> None:
    with contextlib.suppress(OSError):
        pipe.write(data)
    with contextlib.suppress(OSError):
        pipe.close()
