"""Settings as frozen dataclasses: one object per concern, passed whole, loadable from TOML."""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from compassion_audio.core.errors import ProfileError

FORMATS = ("mp3", "ogg", "opus", "flac", "wav", "m4a")
"""Output formats; ``ogg`` is Ogg/Opus like ``opus``."""


@dataclass(frozen=True)
class VoiceSettings:
    """How the speech engine speaks."""

    engine: str = "pyttsx3"
    """Engine adapter name."""
    voice: str | None = None
    """Engine voice id (None: the engine's default English voice)."""
    rate_wpm: int = 130
    """Speaking rate in words per minute (meditation pace is ~110-140)."""
    pitch: int | None = None
    """Engine pitch 0-100 (None: engine default)."""
    volume: float = 1.0
    """Engine volume 0-1."""
    sentence_gap_seconds: float = 0.6
    """Silence between sentences of one paragraph."""
    paragraph_gap_seconds: float = 1.2
    """Silence before a new paragraph (a blank line in the script)."""


@dataclass(frozen=True)
class BreathingSettings:
    """Breathing pace for [breathe] stretches and their tones."""

    breaths_per_min: float = 6.0
    ratio: tuple[float, float] = (4.0, 6.0)
    """In:out proportion of the breath (holds excluded)."""
    hold_in_seconds: float = 0.0
    hold_out_seconds: float = 0.0
    tones: bool = True
    """Play pacing tones during [breathe] stretches."""
    style: str = "glide"
    """Tone style: glide (rising in, falling out), chime (a soft chime at each turn) or quiet."""
    tones_in_pauses_seconds: float | None = None
    """Also play tones under pauses at least this long (None: never)."""
    level_db: float = -20.0
    """Tone level relative to the speech level."""

    @property
    def cycle_seconds(self) -> float:
        return 60.0 / self.breaths_per_min


@dataclass(frozen=True)
class MixSettings:
    """How the track is assembled."""

    sample_rate: int = 44100
    channels: int = 1
    fade_in_seconds: float = 1.5
    fade_out_seconds: float = 3.0
    lead_in_seconds: float = 1.0
    """Silence (or bell) before the first words."""
    tail_seconds: float = 2.0
    """Silence after the last sound."""
    bells: bool = True
    """A bell at the start and the end of the track."""
    bell_file: Path | None = None
    """The user's own bell sound instead of the synthesised one."""
    join_fade_seconds: float = 0.01
    """Fade at every cut, so joins never click."""
    background: str | None = None
    """Ambient bed: pink, brown, rain, waves, or a path to an audio file."""
    background_level_db: float = -22.0
    """Bed level relative to speech."""
    duck_db: float = 4.0
    """How far the bed dips while the voice speaks."""
    loudness_lufs: float | None = -16.0
    """Integrated loudness target (None: no normalisation, peak-safe only)."""
    true_peak_db: float = -1.0


@dataclass(frozen=True)
class ExportSettings:
    """How the file is written."""

    format: str | None = None
    """mp3, ogg, opus, flac, wav or m4a (None: from the output suffix, else mp3)."""
    bitrate: str | None = None
    """Constant bitrate, e.g. "160k" (None: MP3 as VBR quality 3, about 100-130 kbps for
    mono speech - it keeps the measured loudness, where LAME's CBR modes lost 0.3-0.4 LU -
    Opus 96k, AAC 160k)."""
    tags: dict[str, str] = field(default_factory=dict)
    cover: Path | None = None
    captions: bool = False
    timeline_json: bool = False


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; a syntax error names the file and line."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ProfileError("file not found", source=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        found = re.search(r"\(at line (\d+)", str(exc))
        if line is None and found:
            line = int(found.group(1))
        msg = str(exc).split(" (at line")[0]
        raise ProfileError(f"not valid TOML: {msg}", source=str(path), line=line,
                           hint="check quotes and = signs") from exc


def settings_from_dict(cls, data: dict[str, Any], source: str):
    """Build a settings dataclass from a dict, rejecting unknown keys by name."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        import difflib

        guess = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"did you mean {guess[0]!r}?" if guess else f"known keys: {', '.join(sorted(names))}"
        raise ProfileError(f"unknown setting {unknown[0]!r}", source=source, hint=hint)
    return replace(cls(), **data)
