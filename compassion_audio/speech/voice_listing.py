"""What `compassion-audio voices` lists: each profile (works here or why not, engine, accent,
licence, the default), the engines' own voices, and model files no profile names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compassion_audio.core.errors import CompassionAudioError, VoiceError
from compassion_audio.core.settings import VoiceSettings
from compassion_audio.speech.voices import (VoiceProfile, _default_profile, _model_folders, _profiles,
                                            _pyttsx3_info, runtime_problem, voice_dirs)


@dataclass(frozen=True)
class VoiceListing:
    """One row of `compassion-audio voices`."""

    name: str
    engine: str
    language: str
    works_here: bool
    why_not: str = ""
    description: str = ""
    kind: str = "profile"
    """profile (a *.toml file) or engine (a voice the engine offers directly)."""
    licence: str = ""
    default: bool = False


def list_voices(extra_dirs: Sequence[str | Path] = ()) -> list[VoiceListing]:
    """Profiles first (whether they work here and why not, licence, the default), then the
    engines' own voices and the model files in the voice folders that no profile names."""
    info = _try(_pyttsx3_info)
    profiles = _profiles(extra_dirs)
    default = _try(lambda: _default_profile(list(extra_dirs)))
    rows = [_profile_listing(p, info, extra_dirs, is_default=not isinstance(default, str) and p == default)
            for p in profiles]
    if not isinstance(info, str):
        rows += [VoiceListing(name=v.id, engine="pyttsx3", language=",".join(v.languages),
                              works_here=True, description=v.name, kind="engine", licence=ESPEAK_LICENCE)
                 for v in info.voices]
    named = {_named_model(p) for p in profiles}
    registered = _registry_files()  # hibari's own voices: their shipped profiles list them
    for folder in voice_dirs(extra_dirs):
        for model in sorted(folder.glob("*.onnx")):
            if model.resolve() in named or model.name in registered:
                continue
            engine = "piper" if Path(f"{model}.json").is_file() else "hibari"
            loose = VoiceProfile(name=model.stem, settings=VoiceSettings(engine=engine, voice=str(model)))
            why = _engine_problem(loose, info, extra_dirs)
            rows.append(VoiceListing(name=str(model), engine=engine, language="", works_here=not why,
                                     why_not=why, description=model.stem, kind="engine",
                                     licence="unknown: see where the file came from"))
    return rows


ESPEAK_LICENCE = "GPL-3.0 (espeak-ng)"


def _registry_files() -> set[str]:
    """The file names of hibari's registry voices (none when hibari cannot load)."""
    try:
        from compassion_audio.speech.engines.hibari_engine import registry

        return {entry["file"] for entry in registry().values()}
    except CompassionAudioError:
        return set()


def _named_model(profile: VoiceProfile) -> Path | None:
    """The model file a profile names by path (resolved), if any."""
    ref = profile.settings.voice or ""
    if profile.settings.engine not in ("hibari", "piper") or not ref.endswith(".onnx"):
        return None
    path = Path(ref).expanduser()
    if not path.is_absolute() and profile.source is not None:
        path = profile.source.parent / path
    return path.resolve()


def _try(fn):
    try:
        return fn()
    except (CompassionAudioError, ImportError) as exc:
        return str(exc) or type(exc).__name__


def _profile_listing(profile: VoiceProfile, info, extra_dirs, *, is_default: bool) -> VoiceListing:
    why = _engine_problem(profile, info, extra_dirs)
    if why and profile.fallback and runtime_problem(profile.settings.engine):
        why += f" (renders fall back to {profile.fallback!r})"
    return VoiceListing(name=profile.key, engine=profile.settings.engine, language=profile.language,
                        works_here=not why, why_not=why, description=profile.description,
                        licence=profile.licence, default=is_default)


def _engine_problem(profile: VoiceProfile, info, extra_dirs=()) -> str:
    """Why this profile's voice cannot speak here ('' when it can), without loading a model."""
    engine = profile.settings.engine
    if engine == "pyttsx3":
        return _pyttsx3_problem(profile, info)
    if engine == "pack":
        folder = Path(profile.settings.voice or ".")
        return "" if (folder / "phrases.json").is_file() else f"no phrases.json in {folder}"
    problem = runtime_problem(engine)
    if problem:
        return problem
    try:
        if engine == "hibari":
            from compassion_audio.speech.engines.hibari_engine import profile_speed, resolve_model

            resolve_model(profile, _model_folders(profile, extra_dirs))
            profile_speed(profile)
        else:
            from compassion_audio.speech.engines.piper_engine import model_path

            model_path(profile)
    except CompassionAudioError as exc:
        return str(exc)
    return ""


def _pyttsx3_problem(profile: VoiceProfile, info) -> str:
    """Why the pyttsx3 engine cannot speak this profile here ('' when it can)."""
    if isinstance(info, str):
        return info
    if profile.settings.voice is None:
        return ""
    from compassion_audio.speech.engines.pyttsx3_engine import resolve_voice as engine_voice

    try:
        engine_voice(profile.settings.voice, info)
    except VoiceError as exc:
        return str(exc)
    return ""
