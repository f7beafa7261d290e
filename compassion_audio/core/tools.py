"""Find the external programs and libraries we need: system copies first, pip wheels second.
(ffmpeg is run by ``ffmpeg_run``; the user's own input files are opened by ``input_files``.)"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import shutil
import warnings
from pathlib import Path

from compassion_audio.core.errors import EngineUnavailable

log = logging.getLogger(__name__)


_INSTALL = "install ffmpeg (e.g. apt install ffmpeg) or pip install imageio-ffmpeg"


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of an ffmpeg binary: $COMPASSION_AUDIO_FFMPEG, then PATH, then imageio-ffmpeg's
    (which itself honours $IMAGEIO_FFMPEG_EXE). A setting that names no runnable program is
    an EngineUnavailable naming the setting, never a traceback at the first encode."""
    setting = os.environ.get("COMPASSION_AUDIO_FFMPEG")
    if setting:
        _check_runnable(setting, "COMPASSION_AUDIO_FFMPEG",
                        "set it to the path of an ffmpeg program, or unset it to use the one on PATH")
        log.debug("ffmpeg: %s (COMPASSION_AUDIO_FFMPEG)", setting)
        return setting
    chosen = shutil.which("ffmpeg")
    if chosen:
        log.debug("ffmpeg: %s (system PATH)", chosen)
        return chosen
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise EngineUnavailable(f"ffmpeg not found: {_INSTALL}") from exc
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - platform without a wheel binary
        raise EngineUnavailable(f"ffmpeg not found: {_INSTALL}") from exc
    if os.environ.get("IMAGEIO_FFMPEG_EXE"):  # imageio-ffmpeg returns it unchecked
        _check_runnable(exe, "IMAGEIO_FFMPEG_EXE",
                        "set it to the path of an ffmpeg program, or unset it to use the bundled one")
    log.debug("ffmpeg: %s (imageio-ffmpeg wheel)", exe)
    return exe


def _check_runnable(value: str, setting: str, advice: str) -> None:
    path = Path(value)
    if not path.is_file():
        problem = "names no file"
    elif not os.access(path, os.X_OK) or not path.stat().st_mode & 0o111:
        problem = "names a file that is not executable"
    else:
        return
    raise EngineUnavailable(f"ffmpeg not found: ${setting} {problem} ({advice})")


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
