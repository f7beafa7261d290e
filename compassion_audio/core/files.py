"""Writing files so that nothing is ever half-written: a temp name beside the target, then a rename.

Temp files and temp folders are locked (``flock``) by the process using them, so what a killed
process left is told from what a running one holds: the next run removes the first, never the
second (sweep_partials for atomic_output's temp files, sweep_orphans for HeldFolder's folders).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, so nothing is swept
    fcntl = None

log = logging.getLogger(__name__)


PRIVATE_MODE = 0o600
"""A private file: its owner may read and write it, nobody else."""
SHARED_MODE = 0o666
"""A shared file before the umask takes its share (0644 with umask 022, 0600 with 077)."""


PARTIAL_NAME = re.compile(r"^\..*\.[0-9a-f]{8}\.partial")
"""atomic_output's temp names, ``.<stem>.<8 hex>.partial<suffix>`` (what sweep_partials removes)."""


@contextlib.contextmanager
def atomic_output(path: Path, *, private: bool = True, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it into place, on failure remove it.

    The file's permissions are decided here, once, as it is created: ``private`` gives
    0600 whatever the umask (anything personal: a client's track and every file beside
    it); otherwise the umask decides, as for any new file (0644 with umask 022), so a
    clinic can share group and non-personal tracks. Writers that rewrite the temp file
    in place (ffmpeg, mutagen) keep its permissions. The temp name is
    ``.<stem>.<random>.partial<suffix>``: hidden, and never matched by a glob for ``<stem>.*``.
    ``exclusive``: publish only where nothing is yet, else raise FileExistsError and leave
    what is there (writers racing to make the same file: the first complete one wins).

    The temp file is locked (``flock``) by this block for as long as it runs, and the
    lock goes with the process however it ends; so the first atomic_output of a process
    in a folder removes the temp files of killed writers there (sweep_partials) and
    never one still being written. A temp file renamed onto another one held here
    (a copy made beside a temp file, then renamed over it) hands its lock on with it.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    _sweep_once(folder)
    tmp_path = _create_beside(folder, path, PRIVATE_MODE if private else SHARED_MODE)
    try:
        yield tmp_path
        if exclusive:
            _publish_new(tmp_path, path)
        else:
            os.replace(tmp_path, path)
            _hand_over(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _release(tmp_path)


_HELD: dict[str, int] = {}
"""Temp path -> the fd holding its lock, for each atomic_output block running in this process."""
_HELD_MUTEX = threading.Lock()
_SWEPT: set[str] = set()
"""Folders this process has swept already (once is enough: later debris is a later run's)."""


def _hand_over(tmp_path: Path, path: Path) -> None:
    """After ``tmp_path`` was renamed onto ``path``: if ``path`` is itself a temp file held by an
    outer block, the renamed file's lock now guards that name, so the outer block takes it
    (and drops the lock of the file the rename replaced)."""
    with _HELD_MUTEX:
        outer = _HELD.get(str(path))
        if outer is None or str(tmp_path) not in _HELD:
            return
        _HELD[str(path)] = _HELD.pop(str(tmp_path))
    os.close(outer)


def _release(tmp_path: Path) -> None:
    with _HELD_MUTEX:
        fd = _HELD.pop(str(tmp_path), None)
    if fd is not None:
        os.close(fd)


def keep_beside(path: Path) -> Path | None:
    """A second, hidden name for the regular file at ``path`` (a hard link: nothing is copied),
    named and locked like a temp file, so that no sweep removes it while this process holds it
    (``release_kept`` when done; a killed process's kept name is swept as debris). None:
    nothing there."""
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    folder = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        backup = folder / f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}"
        try:
            os.link(path, backup)
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        if fcntl is None:
            return backup
        held = _hold(os.open(backup, os.O_RDONLY), backup)
        if held is False:  # a sweeper took the name between the link and the lock
            continue
        return backup  # held by us, or (None) locked already by a writer: no sweep takes it
    raise FileExistsError(f"no free temp name beside {path}")


def _hold(fd: int, path: Path) -> bool | None:
    """Lock ``fd`` and record it as holding ``path`` for this process: True. Else ``fd`` is
    closed and the answer is None (someone else holds the file's lock) or False (``path`` no
    longer names it: a sweeper removed it first)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not names_file(fd, path):
        os.close(fd)
        return False
    with _HELD_MUTEX:
        _HELD[str(path)] = fd
    return True


def release_kept(backup: Path) -> None:
    """Drop the lock ``keep_beside`` took (after the kept name was removed or renamed back)."""
    _release(backup)


def _sweep_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    with _HELD_MUTEX:
        if key in _SWEPT:
            return
        _SWEPT.add(key)
    sweep_partials(folder)


def sweep_partials(folder: Path) -> list[str]:
    """Remove the temp files of atomic_output writers that were killed (``.<stem>.<8 hex>.partial*``
    whose lock can be taken: no running process holds it) from ``folder``; return their names.
    A file still being written, by this process or any other, is locked and left alone. Never
    by age; nothing on platforms without ``flock``."""
    removed: list[str] = []
    if fcntl is None:
        return removed
    try:
        names = [entry.name for entry in os.scandir(folder)
                 if PARTIAL_NAME.match(entry.name) and entry.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for name in names:
        if _remove_if_unheld(Path(folder) / name):
            removed.append(name)
    if removed:
        log.debug("removed %d temp file(s) left by a stopped writer in %s", len(removed), folder)
    return removed


def _remove_if_unheld(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not names_file(fd, path):
            return False
        os.unlink(path)
        return True
    except OSError:  # BlockingIOError: its writer is running
        return False
    finally:
        os.close(fd)


def names_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still leads to the file open as ``fd``."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _publish_new(tmp_path: Path, path: Path) -> None:
    """Give ``tmp_path`` the name ``path`` only if that name is free: a hard link cannot
    replace a file, so two racing writers cannot both win. (The finally above removes the
    temp name.) Where hard links are not supported, a rename if the name looks free."""
    try:
        os.link(tmp_path, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp_path, path)


def _create_beside(folder: Path, path: Path, mode: int) -> Path:
    """A new empty file with a random hidden name in ``folder``, created with ``mode`` (the
    kernel applies the umask, as it does for every new file; 0600 is private under any umask),
    locked by this process (its fd in _HELD) where flock exists. A sweeper that locked the new file
    first (it saw the name before we locked it) may remove it: then another name."""
    for _ in range(100):
        candidate = folder / f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        if fcntl is None:
            os.close(fd)
            return candidate
        if _hold(fd, candidate):
            return candidate
    raise FileExistsError(f"no free temp name beside {path}")


@contextlib.contextmanager
def atomic_open(path: Path, *, private: bool = True, mode: int | None = None,
                durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file open for writing, renamed onto ``path`` only if the block finishes.

    ``private`` as for atomic_output; ``mode`` instead sets the permissions outright (a
    sidecar takes its track's). ``durable`` flushes it to the disk before the rename:
    without that, a power cut soon after can leave an empty file under the name. Only a
    file whose reader checks it and can make it again (a cache entry) skips it.
    """
    with atomic_output(path, private=private if mode is None else True) as tmp:
        with open(tmp, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)


def write_bytes_atomic(path: Path, data: bytes, *, private: bool = True, mode: int | None = None,
                       durable: bool = True) -> None:
    """Write ``data`` atomically (``private``, ``mode`` and ``durable`` as for atomic_open)."""
    with atomic_open(path, private=private, mode=mode, durable=durable) as fh:
        fh.write(data)


def write_text_atomic(path: Path, text: str, *, private: bool = True, mode: int | None = None) -> None:
    """Write UTF-8 text (LF line ends, as given) atomically (``private`` and ``mode`` as for atomic_open)."""
    write_bytes_atomic(path, text.encode("utf-8"), private=private, mode=mode)


OWNER_FILE = ".owner"
"""The lock file inside a held folder: locked by the folder's owner for as long as it lives."""
OWNERLESS_AGE_SECONDS = 6 * 3600.0
"""A ``prefix*`` folder with no owner file (made by an older version, or where flock is
missing) is swept only when it is this old."""


class HeldFolder:
    """A private temp folder (0700) that no sweep removes while its owner lives.

    ``HeldFolder(prefix, parent)`` first removes the orphans of killed processes
    (sweep_orphans(parent, prefix)), then makes ``<parent>/<prefix><random>`` and locks the
    ``.owner`` file in it; ``close()`` removes the folder and drops the lock. It is also a
    context manager giving the folder's path::

        with held_folder("compassion-audio-speech-") as folder:
            ...  # files in folder; the folder is removed however the block ends

    ``parent`` defaults to the system temp folder (``$TMPDIR``). The lock is an advisory
    ``flock``, dropped by the kernel when the process dies (kill -9 included), so the next
    process that makes a folder with the same prefix there removes this one. Raises OSError
    when the folder cannot be made (the caller says where and why).
    """

    def __init__(self, prefix: str, parent: Path | None = None) -> None:
        self.parent = Path(tempfile.gettempdir() if parent is None else parent)
        sweep_orphans(self.parent, prefix)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.parent))
        self._fd: int | None = None
        if fcntl is not None:
            try:
                self._fd = create_locked(self.path / OWNER_FILE)
            except BaseException:
                shutil.rmtree(self.path, ignore_errors=True)
                raise

    def close(self) -> None:
        """Remove the folder, then drop its lock (again: nothing)."""
        if self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        self.close()


def held_folder(prefix: str, parent: Path | None = None) -> HeldFolder:
    """A new HeldFolder ``<parent or $TMPDIR>/<prefix><random>`` (see HeldFolder): use it as
    ``with held_folder(prefix) as path:``, or keep it and call ``close()``."""
    return HeldFolder(prefix, parent)


def sweep_orphans(parent: Path, prefix: str) -> list[str]:
    """Remove this user's ``<prefix>*`` folders directly under ``parent`` whose owner is gone
    (the ``.owner`` lock can be taken: the process that held it ended, however it ended), or
    that have no owner file and are over OWNERLESS_AGE_SECONDS old; return their names.
    A folder whose owner is running is left alone; so are symlinks and other users' folders."""
    removed: list[str] = []
    try:
        candidates = [entry for entry in os.scandir(parent) if entry.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in candidates:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            continue
        if not _owner_gone(Path(entry.path), age=now - st.st_mtime):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.name)
        log.debug("removed a temp folder left by a stopped process: %s", entry.name)
    return removed


def _owner_gone(folder: Path, *, age: float) -> bool:
    owner = folder / OWNER_FILE
    if fcntl is None or not owner.exists():
        return age > OWNERLESS_AGE_SECONDS
    try:
        fd = os.open(owner, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def create_locked(path: Path) -> int:
    """A new file at ``path`` (0600), locked before it takes the name: a sweeper or scanner
    never sees it unlocked, so never takes a live process's folder or record for a dead one's.
    Returns the fd that holds the lock (where fcntl exists)."""
    fresh = path.with_name(f".{secrets.token_hex(8)}.new")
    fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(fresh, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(fresh)
        raise
    return fd
