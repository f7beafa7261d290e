"""The user's own input files (cover, bell, background, recordings): checked as regular files
within a size limit before they are opened, and hashed once."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from compassion_audio.core.errors import ParameterError


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a regular file, hashed once per (path, mtime, size) in this process.

    Anything else (a FIFO would block the read for ever) is a ParameterError, as from input_file.
    """
    info = _regular(Path(path))
    key = (str(Path(path).resolve()), info.st_mtime_ns, info.st_size)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def input_file(path: Path, *, what: str, limit_bytes: int) -> Path:
    """``path`` if it is a readable regular file of at most ``limit_bytes`` (a user's cover,
    bell or background file); else a ParameterError naming the file and the limit.

    Checked without opening it for reading: a FIFO or a device would block or never end.
    """
    path = Path(path).expanduser()
    info = _regular(path)
    if info.st_size > limit_bytes:
        raise ParameterError(f"the {what} is over the {_size(limit_bytes)} limit", source=str(path),
                             hint=f"{info.st_size} bytes; use a smaller file")
    if info.st_size == 0:
        raise ParameterError(f"the {what} is empty", source=str(path))
    return path


def _regular(path: Path) -> os.stat_result:
    try:
        info = path.stat()
    except OSError as exc:
        raise ParameterError(f"cannot be read: {exc.strerror or exc}", source=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "is a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ParameterError(kind, source=str(path), hint="give the path of an ordinary file")
    if not os.access(path, os.R_OK):
        raise ParameterError("cannot be read: permission denied", source=str(path))
    return info


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):g} MB" if count >= 1024 * 1024 else f"{count}-byte"
