"""The album folder: one build at a time (a lock), a killed build's temp files removed, pages rewritten if changed."""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from compassion_audio.album.jobs import SCRATCH_PREFIX
from compassion_audio.core.errors import AlbumError
from compassion_audio.core.files import PARTIAL_NAME, write_bytes_atomic

LOCK_NAME = ".album-lock"
"""core/files.atomic_output's temp names: ``.<stem>.<8 hex>.partial<suffix>``."""


@contextlib.contextmanager
def album_lock(folder: Path):
    """Hold the folder's lock for the build (the kernel drops it if the process dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one build at a time is then the user's care
        yield
        return
    handle = open(folder / LOCK_NAME, "a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlbumError("another album build is writing this folder", source=str(folder),
                             hint="wait for it to finish, or choose another -o") from None
        yield
    finally:
        handle.close()


def clean_leftovers(folder: Path) -> list[str]:
    """Remove the temp files and worker folders a killed build left (only while holding the lock)."""
    removed = []
    for path in folder.iterdir():
        if path.is_dir() and path.name.startswith(SCRATCH_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and PARTIAL_NAME.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            continue
        removed.append(path.name)
    return removed


def covered_name(cover: Path) -> str:
    """``cover.png`` or ``cover.jpg``, by the image's content."""
    head = cover.read_bytes()[:4]
    return "cover.png" if head.startswith(b"\x89PNG") else "cover.jpg"


def write_bytes_if_changed(path: Path, data: bytes, *, private: bool) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_bytes_atomic(path, data, private=private)
    return True
