"""How processes sharing one phrase cache keep out of each other's way: a lock per phrase
being spoken, and a record of the entries each running render uses. (Temp folders a killed
process left behind are told from live ones by core/files.py's held folders.)

All are advisory ``fcntl.flock`` locks, which the kernel drops when a process dies, so a
killed render never leaves anything locked. Where fcntl is missing (Windows) they do
nothing: the cache then rests on atomic, verified entries alone.
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Iterator

from compassion_audio.core.files import create_locked, names_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCKING = fcntl is not None
WAIT_SECONDS = 30.0
"""How long a render waits for another to finish speaking a phrase before speaking it
itself (the pyttsx3 engine's own limit for one phrase; a stopped process must not stall
the others for good)."""
_FIRST_POLL, _LAST_POLL = 0.002, 0.05


def _poll_flock(fd: int, operation: int, deadline: float, stop: threading.Event | None = None) -> bool:
    """flock with a deadline (flock itself has none): poll, backing off to 50 ms; give up
    at the deadline or when ``stop`` is set."""
    delay = _FIRST_POLL
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)


def _open_private(path: Path) -> int:
    """Open (or create, 0600) ``path``, making its folder (0700) when it is missing - not the
    folders above it: the cache makes its own root, private."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


class PhraseLock:
    """The right to speak one phrase into the cache, held from synthesis until its entry is
    written; another render that needs the phrase waits for it, then reads the entry.

    The lock file is removed by its holder before the lock is dropped, so lock files do not
    pile up; a waiter that then wins the lock of a removed file notices (the name no longer
    leads to its file) and locks the new one instead.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = WAIT_SECONDS, stop: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds (or until ``stop`` is set); False if another
        process kept it, or there is no locking here."""
        if not LOCKING:
            return False
        deadline = time.monotonic() + timeout
        while True:
            fd = _open_private(self.path)
            if not _poll_flock(fd, fcntl.LOCK_EX, deadline, stop):
                os.close(fd)
                return False
            if names_file(fd, self.path):
                self._fd = fd
                return True
            os.close(fd)  # its holder removed it as it finished: lock the current file

    def try_acquire(self) -> bool:
        return self.acquire(timeout=0.0)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            if names_file(fd, self.path):
                os.unlink(self.path)
        os.close(fd)  # drops the lock


@contextlib.contextmanager
def gate(folder: Path, *, exclusive: bool, timeout: float = 10.0) -> Iterator[bool]:
    """The whole cache's gate: renders pass it shared to record an entry in use, upkeep
    (clear, prune) holds it alone while it decides what to remove and removes it. Yields
    False when it could not be had (no locking, or busy beyond ``timeout``)."""
    if not LOCKING:
        yield False
        return
    fd = _open_private(folder / "gate")
    try:
        yield _poll_flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, time.monotonic() + timeout)
    finally:
        os.close(fd)


class UseRecord:
    """The keys one render uses, one a line in ``<folder>/<random>.keys``, locked for as long
    as the render runs: clear and prune leave those entries alone, so a clip a running render
    has planned with never disappears under it. A killed render's lock goes with it, and its
    record is removed by the next upkeep."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / f"{secrets.token_hex(8)}.keys"
        folder.mkdir(exist_ok=True, mode=0o700)
        self._fd: int | None = create_locked(self.path)

    def add(self, key: str) -> None:
        """Record ``key`` (call before reading or publishing its entry, with the gate shared)."""
        os.write(self._fd, f"{key}\n".encode("ascii"))

    def close(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def keys_in_use(folder: Path) -> set[str]:
    """Every key recorded by a running render; records of dead ones are removed.
    Call with the gate held alone, so no render records a key meanwhile."""
    used: set[str] = set()
    for fd in _live_records(folder):
        used.update(os.read(fd, os.fstat(fd).st_size).decode("ascii", "replace").split())
        os.close(fd)
    return used


def remove_stale_records(folder: Path) -> None:
    """Remove the records of renders that died (a live one is locked from its creation)."""
    for fd in _live_records(folder):
        os.close(fd)


def _live_records(folder: Path) -> Iterator[int]:
    """Open each record of a running render (the caller closes it); remove dead ones'."""
    if not LOCKING or not folder.is_dir():
        return
    for record in folder.glob("*.keys"):
        try:
            fd = os.open(record, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its render is running
            yield fd
            continue
        with contextlib.suppress(OSError):
            os.unlink(record)  # its render died without closing it
        os.close(fd)


def remove_stale_locks(folder: Path) -> int:
    """Remove phrase lock files nobody holds (left by killed renders); return how many."""
    removed = 0
    for path in folder.glob("*.lock") if LOCKING and folder.is_dir() else []:
        lock = PhraseLock(path)
        if lock.try_acquire():
            lock.release()
            removed += 1
    return removed
