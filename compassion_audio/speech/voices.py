"""Voice profiles: load and check voices/*.toml, list what works here, resolve a --voice name to an engine."""
from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from compassion_audio.core.settings import VoiceSettings, load_toml
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import CompassionAudioError, EngineUnavailable, ProfileError, VoiceError

log = logging.getLogger(__name__)

ENGINES = ("pyttsx3", "piper", "pack")
DEFAULT_PROFILE = "calm-female"
"""Always installable (espeak-ng), so the default never depends on an optional extra."""
ENV_VAR = "COMPASSION_AUDIO_VOICES"


@dataclass(frozen=True)
class VoiceProfile:
    """A named voice: engine, voice id and delivery settings (from a voices/*.toml file)."""

    name: str
    """Display name."""
    engine: str = "pyttsx3"
    """pyttsx3, piper or pack."""
    voice: str | None = None
    """Engine voice id (espeak `en-us+m3`), a piper model path or `package:NAME`, or a pack folder."""
    rate_wpm: int = 130
    """Words per minute heard (the pyttsx3 adapter calibrates espeak's own setting); pyttsx3 only."""
    pitch: int | None = None
    """Engine pitch 0-100 (None: engine default)."""
    volume: float = 1.0
    sentence_gap_seconds: float = 0.6
    paragraph_gap_seconds: float = 1.2
    length_scale: float = 1.0
    """Piper phoneme length: > 1 is slower."""
    lexicon: dict[str, str] = field(default_factory=dict, hash=False)
    """Whole-word, case-insensitive replacements applied before speaking (CFT -> C F T)."""
    description: str = ""
    language: str = "en"
    source: Path | None = None
    """The profile file (relative model paths are resolved against its folder)."""

    @property
    def key(self) -> str:
        """The name used on the command line: the file stem, else the display name."""
        return self.source.stem if self.source else self.name


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
    """profile (a voices/*.toml file) or engine (a voice the engine offers directly)."""


# key -> (type check, range or None, description of the range for messages)
_NUMBER_RANGES = {
    "rate_wpm": (80, 220), "pitch": (0, 100), "volume": (0.0, 1.0),
    "sentence_gap_seconds": (0.0, 10.0), "paragraph_gap_seconds": (0.0, 20.0),
    "length_scale": (0.5, 3.0),
}
_INT_KEYS = {"rate_wpm", "pitch"}
_STR_KEYS = {"name", "engine", "voice", "description", "language"}
_KNOWN = _STR_KEYS | set(_NUMBER_RANGES) | {"lexicon"}


def voice_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for profiles, first wins: extra, $COMPASSION_AUDIO_VOICES, the shipped voices/."""
    dirs = [Path(p) for p in extra]
    env = os.environ.get(ENV_VAR, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [d for d in _shipped_dirs() if d.is_dir()]
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def _shipped_dirs() -> list[Path]:
    # A checkout keeps them at the repo root; a wheel installs them as data files under the prefix.
    return [Path(__file__).resolve().parents[2] / "voices",
            Path(sys.prefix) / "share" / "compassion-audio" / "voices"]


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """Line number of ``key = ...`` (inside ``[table]`` when given); tomllib keeps no positions."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[([^\[\]]+)\]", stripped)
        if header:
            current = header.group(1).strip()
            continue
        if current == table and re.match(rf'^["\']?{re.escape(key)}["\']?\s*=', stripped):
            return number
    return None


def load_voice_profile(path: str | Path) -> VoiceProfile:
    """Read and check one profile; every mistake is a ProfileError with file, line and a hint."""
    path = Path(path)
    data = load_toml(path)
    text = path.read_text(encoding="utf-8")
    src = str(path)

    def fail(message: str, key: str, hint: str | None = None, table: str | None = None):
        raise ProfileError(message, source=src, line=_line_of(text, key, table), hint=hint)

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
    return VoiceProfile(**values, lexicon=lexicon, source=path.resolve())


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
    wanted = DEFAULT_PROFILE if name is None else name.strip()
    if wanted.startswith("pack:"):
        folder = Path(wanted[5:]).expanduser()
        return VoiceProfile(name=f"recorded voice pack {folder.name}", engine="pack",
                            voice=str(folder.resolve()), source=None)
    if wanted.endswith(".toml") and Path(wanted).is_file():
        return load_voice_profile(wanted)
    profiles = _profiles(extra_dirs)
    for profile in profiles:
        if wanted.casefold() in (profile.key.casefold(), profile.name.casefold()):
            return profile
    engine_id = _espeak_voice_id(wanted)
    if engine_id:
        return VoiceProfile(name=wanted, engine="pyttsx3", voice=engine_id)
    if name is None:
        return VoiceProfile(name="espeak-ng default")
    choices = [p.key for p in profiles] + [v for v in _espeak_ids() if not v.startswith("(")]
    close = difflib.get_close_matches(wanted, choices, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "see `compassion-audio voices`"
    raise VoiceError(f"unknown voice {wanted!r} ({hint})")


@functools.lru_cache(maxsize=1)
def _pyttsx3_voices() -> tuple:
    from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine

    engine = Pyttsx3Engine(VoiceSettings())
    try:
        return tuple(engine.voices())
    finally:
        engine.close()


def _espeak_ids() -> list[str]:
    try:
        return [v.id for v in _pyttsx3_voices()]
    except (CompassionAudioError, ImportError):
        return []


def _espeak_voice_id(wanted: str) -> str | None:
    """The engine id for a raw voice name: full id, file name or language, with an optional +variant."""
    base, plus, variant = wanted.partition("+")
    if plus and not re.fullmatch(r"[a-z]+\d*", variant):
        return None
    try:
        voices = _pyttsx3_voices()
    except (CompassionAudioError, ImportError):
        return None
    for v in voices:
        if base.casefold() in (v.id.casefold(), v.id.rsplit("/", 1)[-1].casefold()):
            return v.id + plus + variant
    for v in voices:
        if base.casefold() in (lang.casefold() for lang in v.languages):
            return v.id + plus + variant
    return None


def voice_settings(profile: VoiceProfile) -> VoiceSettings:
    """The engine-facing settings of a profile."""
    return VoiceSettings(engine=profile.engine, voice=profile.voice, rate_wpm=profile.rate_wpm,
                         pitch=profile.pitch, volume=profile.volume,
                         sentence_gap_seconds=profile.sentence_gap_seconds,
                         paragraph_gap_seconds=profile.paragraph_gap_seconds)


def create_engine(profile: VoiceProfile, *, fallback: VoiceProfile | None = None) -> SpeechEngine:
    """The engine for a profile.

    For a pack, ``fallback`` speaks the phrases nobody recorded. For another
    engine it is used only when that engine is not installed here (logged).
    """
    if profile.engine == "pack":
        from compassion_audio.speech.engines.pack_engine import PackEngine

        backup = create_engine(fallback) if fallback else None
        return PackEngine(Path(profile.voice or "."), fallback=backup)
    try:
        return _direct_engine(profile)
    except EngineUnavailable as exc:
        if fallback is None:
            raise
        log.warning("%s; using the fallback voice %s", exc, fallback.key)
        return create_engine(fallback)


def _direct_engine(profile: VoiceProfile) -> SpeechEngine:
    if profile.engine == "piper":
        from compassion_audio.speech.engines.piper_engine import PiperEngine

        return PiperEngine(profile)
    if profile.engine == "pyttsx3":
        from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine

        return Pyttsx3Engine(voice_settings(profile))
    raise VoiceError(f"unknown engine {profile.engine!r} in voice {profile.key!r} (use one of {', '.join(ENGINES)})")


def list_voices(extra_dirs: Sequence[str | Path] = ()) -> list[VoiceListing]:
    """Profiles first (with whether they work here and why not), then the engines' own voices."""
    engine_voices = _try(_pyttsx3_voices)
    rows = [_profile_listing(p, engine_voices) for p in _profiles(extra_dirs)]
    if isinstance(engine_voices, tuple):
        rows += [VoiceListing(name=v.id, engine="pyttsx3", language=",".join(v.languages),
                              works_here=True, description=v.name, kind="engine")
                 for v in engine_voices]
    for folder in voice_dirs(extra_dirs):
        for model in sorted(folder.glob("*.onnx")):
            why = _piper_problem(VoiceProfile(name=model.stem, engine="piper", voice=str(model)))
            rows.append(VoiceListing(name=str(model), engine="piper", language="", works_here=not why,
                                     why_not=why, description=model.stem, kind="engine"))
    return rows


def _try(fn):
    try:
        return fn()
    except (CompassionAudioError, ImportError) as exc:
        return str(exc) or type(exc).__name__


def _profile_listing(profile: VoiceProfile, engine_voices) -> VoiceListing:
    if profile.engine == "pyttsx3":
        why = _espeak_problem(profile, engine_voices)
    elif profile.engine == "piper":
        why = _piper_problem(profile)
    else:
        folder = Path(profile.voice or ".")
        why = "" if (folder / "phrases.json").is_file() else f"no phrases.json in {folder}"
    return VoiceListing(name=profile.key, engine=profile.engine, language=profile.language,
                        works_here=not why, why_not=why, description=profile.description)


def _espeak_problem(profile: VoiceProfile, engine_voices) -> str:
    if isinstance(engine_voices, str):
        return engine_voices
    if profile.voice is None:
        return ""
    base = profile.voice.partition("+")[0].casefold()
    names = {v.id.casefold() for v in engine_voices} | {v.id.rsplit("/", 1)[-1].casefold() for v in engine_voices}
    return "" if base in names else f"espeak-ng has no voice {profile.voice.partition('+')[0]!r} here"


def _piper_problem(profile: VoiceProfile) -> str:
    try:
        from compassion_audio.speech.engines.piper_engine import model_path, require_piper

        require_piper()
        model_path(profile)
    except CompassionAudioError as exc:
        return str(exc)
    return ""
