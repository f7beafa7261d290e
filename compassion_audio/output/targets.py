"""Where a render writes, checked before anything is spoken: the output and its sidecars (not a
folder, link, FIFO or device; a name that fits; a folder that can be written), and the cover,
bell and background files it reads (regular files within their size limits)."""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from compassion_audio.core.errors import OutputError
from compassion_audio.core.input_files import input_file
from compassion_audio.core.limits import MAX_IMAGE_BYTES, MAX_SOUND_FILE_BYTES
from compassion_audio.core.settings import ExportSettings, MixSettings

SIDECAR_SUFFIXES = {"captions": (".vtt", ".srt", ".txt", ".chapters.vtt"), "timeline_json": (".timeline.json",)}
"""The files a render may write beside its track, by the export setting that asks for them."""
_TEMP_NAME_EXTRA = len(".") + len(".01234567.partial")
"""What core/files.py's temp name (``.<stem>.<8 hex>.partial<suffix>``) adds to a file name."""


def sidecar_paths(path: Path, export: ExportSettings | None) -> list[Path]:
    """Every file the request may write beside ``path`` (a .chapters.vtt only if there are chapters)."""
    if export is None:
        return []
    wanted = [s for key, suffixes in SIDECAR_SUFFIXES.items() if getattr(export, key) for s in suffixes]
    return [path.with_suffix(suffix) for suffix in wanted]


def check_writable(path: Path, force: bool, *, export: ExportSettings | None = None,
                   mix: MixSettings | None = None) -> None:
    """Fail early - before any synthesis, before the engine starts - if the output cannot be
    written; with ``export`` also if a sidecar cannot, or the cover image is unusable; with
    ``mix`` if the bell or background file is not a regular file within MAX_SOUND_FILE_BYTES
    (whether they decode is found as they are loaded, still before anything is spoken).

    Refused: an existing file without ``force``; a folder, a FIFO, a device or socket (never
    replaced: "not a regular file"); a symbolic link, dangling or not - it is neither followed
    nor replaced, because writing through a link would put the track wherever the link points,
    and replacing it would silently turn the link into a file: give the real path instead
    (links among the folders above are followed as usual); a name too long for the folder
    once the temp name's extra characters are added; a folder that cannot be made or written.
    """
    _check_target(path, force, "-o")
    sidecars = sidecar_paths(path, export)
    for side in sidecars:
        _check_target(side, True, "a sidecar")  # replaced with the track: --force is asked of the track
    folder = path.parent if str(path.parent) else Path(".")
    _check_name_lengths(folder, [path, *sidecars])
    if export is not None and export.cover is not None:
        check_cover(export.cover)
    if mix is not None:
        _check_sound_files(mix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {folder}: choose another -o")


def _check_sound_files(mix: MixSettings) -> None:
    from compassion_audio.sound.beds import BED_NAMES

    if mix.bell_file:
        input_file(mix.bell_file, what="bell file", limit_bytes=MAX_SOUND_FILE_BYTES)
    background = mix.background
    if background and background not in BED_NAMES and os.path.lexists(Path(background).expanduser()):
        input_file(Path(background), what="background file", limit_bytes=MAX_SOUND_FILE_BYTES)


def folder_label(path: Path) -> str:
    """The folder of ``path`` as the user gave it, for a message ("the current folder" for a bare name)."""
    return "the current folder" if str(path.parent) in ("", ".") else str(path.parent)


def exists_message(path: Path) -> str:
    return f"{path} already exists: choose another -o or add --force to replace it"


def _check_target(path: Path, force: bool, what: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        return  # a file where a folder should be: the folder check names it
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return  # the name check says so, without the name
        raise OutputError(f"cannot use {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{path} is a symbolic link: give the path of the file itself "
                          "(links are neither followed nor replaced)")
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{path} is a folder: give a file name")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{path} is not a regular file: choose another {'-o' if what == '-o' else 'name'}")
    if not force:
        raise OutputError(exists_message(path))


def _check_name_lengths(folder: Path, paths: Sequence[Path]) -> None:
    """Names the file system cannot hold - the track's first, then its sidecars', each with
    the temp name's extra characters - are refused by their length alone: the message never
    repeats a name, which may carry a client's name."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        name_max = os.pathconf(probe, "PC_NAME_MAX")
        path_max = os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    own = len(os.fsencode(paths[0].name))
    longest = max(len(os.fsencode(p.name)) for p in paths)  # a sidecar's suffix may be longer
    if longest + _TEMP_NAME_EXTRA > name_max:
        limit = name_max - _TEMP_NAME_EXTRA - (longest - own)
        raise OutputError(f"the output file name is too long: {own} bytes, and at most {limit} fit "
                          "in this folder (choose a shorter -o)")
    if any(len(os.fsencode(os.path.abspath(p))) + _TEMP_NAME_EXTRA >= path_max for p in paths):
        raise OutputError(f"the output path is too long: at most {path_max - _TEMP_NAME_EXTRA - 1} "
                          "bytes (choose a shorter -o)")
    for parent in [folder, *folder.parents]:
        if len(os.fsencode(parent.name)) > name_max:
            raise OutputError(f"a folder name in -o is too long: at most {name_max} bytes")


def check_cover(path: Path) -> Path:
    """The cover image, if it is a regular JPEG or PNG file within MAX_IMAGE_BYTES; else a
    ParameterError naming the file (and the limit). Reads only its first bytes."""
    from compassion_audio.output.tags import cover_mime

    path = input_file(path, what="cover image", limit_bytes=MAX_IMAGE_BYTES)
    with open(path, "rb") as fh:
        cover_mime(fh.read(16), path)
    return path
