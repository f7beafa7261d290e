"""Voice profiles: load and check them, list what works here, resolve a --voice name to an engine."""
from __future__ import annotations

import difflib
import functools
import os
import sys
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Iterable, Sequence

from compassion_audio.core.settings import RATE_WPM_RANGE, VoiceSettings
from compassion_audio.core.tomlfile import line_of_key, load_toml
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import (CompassionAudioError, EngineUnavailable, ProfileError, VoiceError,
                                          VoiceFallback)

ENGINES = ("hibari", "pyttsx3", "piper", "pack")
DEFAULT_PROFILE = "heart"
"""hibari's US female voice: inside hibari-tts, a dependency, so always installed. If its
runtime (onnxruntime) cannot load here, its profile's fallback (espeak-ng) speaks instead,
announced by a VoiceFallback warning; a missing default profile is an error, never a substitution."""
ENV_VAR = "COMPASSION_AUDIO_VOICES"
PROFILES_DIR = Path(__file__).resolve().with_name("profiles")
"""The shipped profiles: package data, so every install has them."""


@dataclass(frozen=True)
class VoiceProfile:
    """A named voice: its engine settings and delivery (from a profile *.toml file, whose
    keys are the VoiceSettings fields and the ones below, all at the top level)."""

    name: str
    """Display name."""
    settings: VoiceSettings = field(default_factory=VoiceSettings)
    """Engine (hibari, pyttsx3, piper or pack), voice, rate, pitch, volume and gaps. The voice
    is a hibari voice name (`heart`) or .onnx path, an espeak id (`en-us+m3`), a piper model
    path or `package:NAME`, or a pack folder; the rate is words per minute heard (the pyttsx3
    adapter calibrates espeak's own setting; for the neural voices it only times estimates)."""
    length_scale: float = 1.0
    """Piper phoneme length: > 1 is slower."""
    speed: float | None = None
    """hibari's speed: < 1 is slower (None: the engine's measured default)."""
    lexicon: dict[str, str] = field(default_factory=dict, hash=False)
    """Whole-word, case-insensitive replacements applied before speaking (CFT -> C F T)."""
    description: str = ""
    language: str = "en"
    licence: str = ""
    """The voice's licence in a few words (engine and model), shown by `compassion-audio voices`."""
    fallback: str | None = None
    """The profile that speaks instead, announced, when this voice's engine cannot load here
    (not when its model file is missing: that is an error naming the file)."""
    source: Path | None = None
    """The profile file (relative model paths are resolved against its folder)."""

    @property
    def key(self) -> str:
        """The name used on the command line: the file stem, else the display name."""
        return self.source.stem if self.source else self.name

    def with_settings(self, **changes) -> "VoiceProfile":
        """This profile with some VoiceSettings fields changed (e.g. ``rate_wpm`` from --rate)."""
        return replace(self, settings=replace(self.settings, **changes))


# key -> (lowest, highest) accepted; whole numbers for _INT_KEYS.
_NUMBER_RANGES = {
    "rate_wpm": RATE_WPM_RANGE, "pitch": (0, 100), "volume": (0.0, 1.0),
    "sentence_gap_seconds": (0.0, 10.0), "paragraph_gap_seconds": (0.0, 20.0),
    "length_scale": (0.5, 3.0), "speed": (0.5, 2.0),
}
_INT_KEYS = {"rate_wpm", "pitch"}
_STR_KEYS = {"name", "engine", "voice", "description", "language", "licence", "fallback"}
_KNOWN = _STR_KEYS | set(_NUMBER_RANGES) | {"lexicon"}
_SETTINGS_KEYS = {f.name for f in fields(VoiceSettings)}
"""Profile keys that go into its VoiceSettings; the rest are the profile's own."""


def voice_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for profiles and voice files, first wins: extra, $COMPASSION_AUDIO_VOICES,
    the user's voices folder, a checkout's voices/ folder, then the shipped profiles."""
    dirs = [Path(p) for p in extra]
    env = os.environ.get(ENV_VAR, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [d for d in (user_voices_dir(), _checkout_voices()) if d is not None and d.is_dir()]
    dirs.append(PROFILES_DIR)
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def user_voices_dir() -> Path:
    """Where `voices add` installs voices: the first folder of $COMPASSION_AUDIO_VOICES, else the
    platform's per-user data folder (~/.local/share/compassion-audio/voices on Linux)."""
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if env:
        return Path(env[0]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "compassion-audio" / "voices"
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "compassion-audio" / "voices"
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "compassion-audio" / "voices"


def _checkout_voices() -> Path | None:
    """A checkout's voices/ folder (the user's own profiles and model files), else None."""
    root = Path(__file__).resolve().parents[2]
    return root / "voices" if (root / "pyproject.toml").is_file() else None


def load_voice_profile(path: str | Path) -> VoiceProfile:
    """Read and check one profile; every mistake is a ProfileError with file, line and a hint."""
    path = Path(path)
    data = load_toml(path)
    text = path.read_text(encoding="utf-8")
    src = str(path)

    def fail(message: str, key: str, hint: str | None = None, table: str | None = None):
        raise ProfileError(message, source=src, line=line_of_key(text, key, table), hint=hint)

    for key in data:
        if key not in _KNOWN:
            guess = difflib.get_close_matches(key, sorted(_KNOWN), n=1)
            fail(f"unknown key {key!r}", key,
                 f"did you mean {guess[0]!r}?" if guess else f"known keys: {', '.join(sorted(_KNOWN))}")
    values = {k: v for k, v in data.items() if k != "lexicon"}
    for key, value in values.items():
        _check_value(key, value, fail)
    if "name" not in values:
        raise ProfileError("missing key 'name'", source=src, line=1, hint='add name = "My voice"')
    engine = values.get("engine", "pyttsx3")
    if engine not in ENGINES:
        guess = difflib.get_close_matches(engine, ENGINES, n=1)
        fail(f"unknown engine {engine!r}", "engine",
             f"did you mean {guess[0]!r}?" if guess else f"use one of {', '.join(ENGINES)}")
    if engine != "pyttsx3" and not values.get("voice"):
        fail(f"the {engine} engine needs a voice (a model file, package: or folder)", "engine")
    lexicon = _check_lexicon(data.get("lexicon", {}), fail)
    settings = VoiceSettings(**{k: v for k, v in values.items() if k in _SETTINGS_KEYS})
    own = {k: v for k, v in values.items() if k not in _SETTINGS_KEYS}
    return VoiceProfile(**own, settings=settings, lexicon=lexicon, source=path.resolve())


def _check_value(key: str, value, fail) -> None:
    if key in _STR_KEYS:
        if not isinstance(value, str):
            fail(f"{key} must be text in quotes", key)
        return
    low, high = _NUMBER_RANGES[key]
    wanted = int if key in _INT_KEYS else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        fail(f"{key} must be a {'whole ' if key in _INT_KEYS else ''}number, not {value!r}", key)
    if not low <= value <= high:
        fail(f"{key} = {value} is out of range", key, f"use {low} to {high}")


def _check_lexicon(table, fail) -> dict[str, str]:
    if not isinstance(table, dict):
        fail("lexicon must be a table: [lexicon] then WORD = \"how to say it\"", "lexicon")
    for word, spoken in table.items():
        if not isinstance(spoken, str) or not spoken.strip() or not word.strip():
            fail(f"lexicon entry {word!r} must map a word to non-empty text", word,
                 'e.g. CFT = "C F T"', table="lexicon")
    return dict(table)


def _profiles(extra_dirs: Iterable[str | Path]) -> list[VoiceProfile]:
    """Every loadable profile, first folder wins on equal file names."""
    found: dict[str, VoiceProfile] = {}
    for folder in voice_dirs(extra_dirs):
        for path in sorted(folder.glob("*.toml")):
            if path.stem not in found:
                found[path.stem] = load_voice_profile(path)
    return list(found.values())


def resolve_voice(name: str | None, extra_dirs: Iterable[str | Path] = ()) -> VoiceProfile:
    """Turn a --voice value into a profile: None (default), profile name, .toml path, pack:DIR or engine voice id."""
    extra_dirs = list(extra_dirs)
    if name is None:
        return _default_profile(extra_dirs)
    wanted = DEFAULT_PROFILE if name is None else name.strip()
    if wanted.startswith("pack:"):
        folder = Path(wanted[5:]).expanduser()
        return VoiceProfile(name=f"recorded voice pack {folder.name}",
                            settings=VoiceSettings(engine="pack", voice=str(folder.resolve())))
    if wanted.endswith(".toml") and Path(wanted).is_file():
        return load_voice_profile(wanted)
    profiles = _profiles(extra_dirs)
    for profile in profiles:
        if wanted.casefold() in (profile.key.casefold(), profile.name.casefold()):
            return profile
    engine_id = _espeak_voice_id(wanted)
    if engine_id:
        return VoiceProfile(name=wanted, settings=VoiceSettings(engine="pyttsx3", voice=engine_id))
    choices = [p.key for p in profiles] + [v for v in _espeak_ids() if not v.startswith("(")]
    close = difflib.get_close_matches(wanted, choices, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "see `compassion-audio voices`"
    raise VoiceError(f"unknown voice {wanted!r} ({hint})")


def _default_profile(extra_dirs: list) -> VoiceProfile:
    """The default voice's profile (a user's file of the same name wins); never a substitute."""
    for profile in _profiles(extra_dirs):
        if profile.key == DEFAULT_PROFILE:
            return profile
    raise VoiceError(f"the default voice {DEFAULT_PROFILE!r} is missing: no {DEFAULT_PROFILE}.toml in "
                     f"{PROFILES_DIR} (reinstall compassion-audio) - or choose one with --voice")


def usable(profile: VoiceProfile) -> VoiceProfile:
    """``profile``, or its fallback profile when its engine's runtime cannot load here.

    The replacement is announced by a VoiceFallback warning - it is never silent.
    """
    if not profile.fallback:
        return profile
    problem = runtime_problem(profile.settings.engine)
    if not problem:
        return profile
    folders = [profile.source.parent] if profile.source else []
    replacement = resolve_voice(profile.fallback, folders)
    warnings.warn(VoiceFallback(f"voice {profile.key!r} cannot be used here ({problem}): speaking with "
                                f"{replacement.key!r} ({replacement.name}) instead"), stacklevel=2)
    return replacement


def runtime_problem(engine: str) -> str:
    """Why ``engine``'s runtime cannot load here ('' when it can)."""
    try:
        if engine == "hibari":
            from compassion_audio.speech.engines.hibari_engine import require_hibari

            require_hibari()
        elif engine == "piper":
            from compassion_audio.speech.engines.piper_engine import require_piper

            require_piper()
    except EngineUnavailable as exc:
        return str(exc)
    return ""


@functools.lru_cache(maxsize=1)
def _pyttsx3_info():
    """What the pyttsx3 engine offers here (started once, then closed)."""
    from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine(VoiceSettings())
    try:
        return engine.info
    finally:
        engine.close()


def _espeak_ids() -> list[str]:
    try:
        return [v.id for v in _pyttsx3_info().voices]
    except (CompassionAudioError, ImportError):
        return []


def _espeak_voice_id(wanted: str) -> str | None:
    """The engine id for a raw voice name (id, file name, display name or language, with an
    optional +variant), or None when the engine has no such voice or is not installed."""
    try:
        from compassion_audio.speech.engines.pyttsx3_engine import resolve_voice as engine_voice

        return engine_voice(wanted, _pyttsx3_info())
    except (CompassionAudioError, ImportError):
        return None


def create_engine(profile: VoiceProfile, *, fallback: VoiceProfile | None = None) -> SpeechEngine:
    """The engine for a profile.

    For a pack, ``fallback`` speaks the phrases nobody recorded. For another
    engine it is used only when that engine is not installed here (a VoiceFallback warning).
    """
    if profile.settings.engine == "pack":
        from compassion_audio.speech.engines.pack_engine import PackEngine

        backup = create_engine(fallback) if fallback else None
        return PackEngine(Path(profile.settings.voice or "."), fallback=backup)
    try:
        return _direct_engine(profile)
    except EngineUnavailable as exc:
        if fallback is None:
            raise
        warnings.warn(VoiceFallback(f"{exc}: speaking with the fallback voice {fallback.key!r} instead"),
                      stacklevel=2)
        return create_engine(fallback)


def _direct_engine(profile: VoiceProfile) -> SpeechEngine:
    engine = profile.settings.engine
    if engine == "hibari":
        from compassion_audio.speech.engines.hibari_engine import HibariEngine

        return HibariEngine(profile, _model_folders(profile))
    if engine == "piper":
        from compassion_audio.speech.engines.piper_engine import PiperEngine

        return PiperEngine(profile)
    if engine == "pyttsx3":
        from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine

        return Pyttsx3Engine(profile.settings)
    raise VoiceError(f"unknown engine {engine!r} in voice {profile.key!r} (use one of {', '.join(ENGINES)})")


def _model_folders(profile: VoiceProfile, extra_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Where a profile's registry voice file may be: its own folder, then the voice folders."""
    own = [profile.source.parent] if profile.source and profile.source.parent != PROFILES_DIR else []
    return own + voice_dirs(extra_dirs)


def list_voices(extra_dirs: Sequence[str | Path] = ()):
    """Every voice here and whether it works (speech/voice_listing.py)."""
    from compassion_audio.speech.voice_listing import list_voices as listing

    return listing(extra_dirs)
