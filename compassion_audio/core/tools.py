"""Find the external programs and libraries we need: system copies first, pip wheels second."""
from __future__ import annotations

import ctypes
import hashlib
import ctypes.util
import functools
import logging
import os
import shutil
import warnings

from pathlib import Path

from compassion_audio.core.errors import EngineUnavailable

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: $COMPASSION_AUDIO_FFMPEG, then PATH, then imageio-ffmpeg's."""
    chosen = os.environ.get("COMPASSION_AUDIO_FFMPEG") or shutil.which("ffmpeg")
    if chosen:
        log.debug("ffmpeg: %s (%s)", chosen, "COMPASSION_AUDIO_FFMPEG" if os.environ.get(
            "COMPASSION_AUDIO_FFMPEG") else "system PATH")
        return chosen
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise EngineUnavailable(
            "ffmpeg not found: install it (e.g. apt install ffmpeg) or pip install imageio-ffmpeg"
        ) from exc
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        log.debug("ffmpeg: %s (imageio-ffmpeg wheel)", exe)
        return exe
    except RuntimeError as exc:  # pragma: no cover - platform without a wheel binary
        raise EngineUnavailable(
            "ffmpeg not found: install it (e.g. apt install ffmpeg) or pip install imageio-ffmpeg"
        ) from exc


@functools.lru_cache(maxsize=None)
def pydub():
    """Import pydub quietly and point it at our ffmpeg (it warns at import when none is on PATH)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pydub as _pydub
    exe = ffmpeg_exe()
    _pydub.AudioSegment.converter = exe
    _pydub.AudioSegment.ffmpeg = exe
    return _pydub


@functools.lru_cache(maxsize=None)
def prepare_espeak() -> str:
    """Make libespeak-ng loadable for pyttsx3 and return where it came from.

    A system library is preferred. Otherwise the espeakng-loader wheel's copy is
    loaded in the default (local) mode - RTLD_GLOBAL makes Piper's bundled espeak
    symbols clash - after ESPEAK_DATA_PATH is set, without which the library
    calls exit(1) on a missing data folder.
    """
    system = ctypes.util.find_library("espeak-ng")
    if system:
        log.debug("espeak-ng: %s (system library)", system)
        return system
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EngineUnavailable(
            "espeak-ng not found: install it (e.g. apt install espeak-ng) or pip install espeakng-loader"
        ) from exc
    os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())
    path = espeakng_loader.get_library_path()
    ctypes.CDLL(path)
    log.debug("espeak-ng: %s (espeakng-loader wheel)", path)
    return path


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, hashed once per (path, mtime, size) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]
