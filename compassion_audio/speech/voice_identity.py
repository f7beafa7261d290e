"""A voice's identity (the engine's own identity(), as the phrase cache keys clips on it), remembered per machine.

A render whose phrases are all cached takes the identity from here and never starts its engine;
albums decide from it which tracks are up to date.

Starting an engine to ask it takes 0.7-0.8 s (a pyttsx3 worker process, or the hibari
runtime's import). The identity depends only on the profile, the installed engine packages
and the files they read, so it is remembered under a fingerprint of those - package versions,
the espeak-ng library's and the model file's size and time - and the engine is started only
when that fingerprint is new.
"""
from __future__ import annotations

import contextlib
import ctypes.util
import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from compassion_audio import __version__
from compassion_audio.core.files import write_text_atomic
from compassion_audio.core.errors import VoiceFallback
from compassion_audio.speech.voices import VoiceProfile, create_engine

MEMO_FOLDER = "voice-identities"
"""Under the phrase cache folder: one small JSON file per voice fingerprint."""
_PACKAGES = {"pyttsx3": ("pyttsx3", "espeakng-loader"), "hibari": ("hibari-tts", "onnxruntime", "scipy"),
             "piper": ("piper-tts", "onnxruntime"), "pack": ()}
_ENVIRONMENT = ("ESPEAK_DATA_PATH", "HIBARI_HOME", "COMPASSION_AUDIO_VOICES")


def voice_identity(profile: VoiceProfile, fallback: VoiceProfile | None = None, *,
                   memo_dir: Path | None = None) -> dict:
    """``create_engine(profile, fallback=fallback).identity()``, from the memo when its
    fingerprint is known (``memo_dir`` None: always ask the engine)."""
    if profile.settings.engine == "pack" or memo_dir is None:
        return _ask_engine(profile, fallback)  # a pack's identity is its recordings: always read them
    identity = remembered_identity(profile, fallback, memo_dir)
    if identity is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VoiceFallback)  # the render itself announces a fallback
            engine = create_engine(profile, fallback=fallback)
        try:
            identity = remember_identity(engine, profile, fallback, memo_dir)
        finally:
            engine.close()
    return identity


def remembered_identity(profile: VoiceProfile, fallback: VoiceProfile | None, memo_dir: Path) -> dict | None:
    """The identity remembered for this voice and installation, or None (never starts an engine;
    a pack is never remembered: its identity is its recordings)."""
    if profile.settings.engine == "pack":
        return None
    memo = _memo_path(profile, fallback, memo_dir)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        entry = json.loads(memo.read_text(encoding="utf-8"))
        if all(_stat(Path(p)) == s for p, s in entry["files"].items()):
            return entry["identity"]
    return None


def remember_identity(engine, profile: VoiceProfile, fallback: VoiceProfile | None, memo_dir: Path) -> dict:
    """Ask a started engine its identity (as JSON gives it back), remember it, and return it."""
    identity = _plain_identity(engine)
    # The model file the engine read, so a file replaced under the same name is noticed.
    model = getattr(engine, "_model", None)
    files = {str(model): _stat(Path(model))} if isinstance(model, Path) else {}
    memo = _memo_path(profile, fallback, memo_dir)
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(memo, json.dumps({"identity": identity, "files": files}, sort_keys=True))
    return identity


def _memo_path(profile: VoiceProfile, fallback: VoiceProfile | None, memo_dir: Path) -> Path:
    return Path(memo_dir) / MEMO_FOLDER / f"{fingerprint(profile, fallback)}.json"


def _plain_identity(engine) -> dict:
    return json.loads(json.dumps(engine.identity(), sort_keys=True, default=str))


def fingerprint(profile: VoiceProfile, fallback: VoiceProfile | None = None) -> str:
    """A hash of what a voice's identity can depend on, read without starting its engine."""
    parts = {"profile": _profile_facts(profile), "fallback": _profile_facts(fallback) if fallback else None,
             "python": list(sys.version_info[:2]), "platform": sys.platform, "compassion_audio": __version__,
             "numpy": _version("numpy"), "environment": {k: os.environ.get(k) for k in _ENVIRONMENT}}
    if "pyttsx3" in (profile.settings.engine, fallback.settings.engine if fallback else None):
        library = _espeak_library()
        parts["espeak"] = [library, _stat(Path(library)) if library and os.sep in library else None]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _profile_facts(profile: VoiceProfile) -> dict:
    facts = {"settings": asdict(profile.settings), "length_scale": profile.length_scale, "speed": profile.speed,
             "source": str(profile.source) if profile.source else None,
             "source_stat": _stat(profile.source) if profile.source else None,
             "packages": {name: _version(name) for name in _PACKAGES.get(profile.settings.engine, ())}}
    voice = profile.settings.voice or ""
    if voice.endswith(".onnx"):
        path = Path(voice).expanduser()
        if not path.is_absolute() and profile.source is not None:
            path = profile.source.parent / path
        facts["model_stat"] = _stat(path)
    return facts


def _ask_engine(profile: VoiceProfile, fallback: VoiceProfile | None) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VoiceFallback)  # the render itself announces a fallback
        engine = create_engine(profile, fallback=fallback)
    try:
        return _plain_identity(engine)
    finally:
        engine.close()


def _stat(path: Path | None) -> list | None:
    try:
        found = Path(path).stat()
    except (OSError, TypeError):
        return None
    return [found.st_size, found.st_mtime_ns]


@functools.lru_cache(maxsize=None)
def _espeak_library() -> str | None:
    """The espeak-ng library pyttsx3 would load (as tools.prepare_espeak chooses), without loading it."""
    system = ctypes.util.find_library("espeak-ng")
    if system:
        return _library_path(system)
    try:
        import espeakng_loader
    except ImportError:
        return None
    return espeakng_loader.get_library_path()


def _library_path(soname: str) -> str:
    """The file a library's soname loads (from ldconfig's cache), else the soname itself."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=5).stdout
        for line in listing.splitlines():
            name, _, target = line.strip().partition(" => ")
            if name.split(" ")[0] == soname and target:
                return target.strip()
    return soname


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
