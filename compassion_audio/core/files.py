"""Writing files so that nothing is ever half-written: a temp name beside the target, then a rename."""
from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


PRIVATE_MODE = 0o600
"""A private file: its owner may read and write it, nobody else."""
SHARED_MODE = 0o666
"""A shared file before the umask takes its share (0644 with umask 022, 0600 with 077)."""


@contextlib.contextmanager
def atomic_output(path: Path, *, private: bool = True, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it into place, on failure remove it.

    The file's permissions are decided here, once, as it is created: ``private`` gives
    0600 whatever the umask (anything personal: a client's track and every file beside
    it); otherwise the umask decides, as for any new file (0644 with umask 022), so a
    clinic can share group and non-personal tracks. Writers that replace the temp file
    in place (ffmpeg, mutagen) keep its permissions. The temp name is
    ``.<stem>.<random>.partial<suffix>``: hidden, and never matched by a glob for ``<stem>.*``.
    ``exclusive``: publish only where nothing is yet, else raise FileExistsError and leave
    what is there (writers racing to make the same file: the first complete one wins).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp_path = _create_beside(folder, path, PRIVATE_MODE if private else SHARED_MODE)
    try:
        yield tmp_path
        if exclusive:
            _publish_new(tmp_path, path)
        else:
            os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


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
    kernel applies the umask, as it does for every new file; 0600 is private under any umask)."""
    for _ in range(100):
        candidate = folder / f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:
            continue
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
