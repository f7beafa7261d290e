"""Manifest options: one key per `render` option (its name, - as _) and the album page's hold, checked and typed."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from compassion_audio.core.errors import ParameterError
from compassion_audio.core.limits import MAX_PAUSE_SECONDS
from compassion_audio.core.ratio import parse_ratio
from compassion_audio.core.settings import (BITRATE_KBPS, FORMATS, LOUDNESS_LUFS, RATE_WPM_RANGE, ExportSettings,
                                            MixSettings, is_bitrate)
from compassion_audio.script.personalise import breathing_settings
from compassion_audio.script.profile import ClientProfile
from compassion_audio.script.templates import LENGTHS
from compassion_audio.sound.beds import BED_NAMES

TONE_STYLES = ("glide", "chime", "quiet")


class BadValue(Exception):
    """A value a key cannot take: the message (naming the key) and a hint; the manifest adds file and line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Option:
    key: str
    check: Callable[[str, Any, Path], Any]
    """(key, TOML value, the manifest's folder) -> the typed value, or BadValue."""
    help: str


def _text(key, value, base):
    if not isinstance(value, str) or not value.strip():
        raise BadValue(f"{key} must be text in quotes", f'e.g. {key} = "..."')
    return value.strip()


def _flag(key, value, base):
    if not isinstance(value, bool):
        raise BadValue(f"{key} must be true or false, not {value!r}")
    return value


def _number(low: float | None, high: float | None, *, whole: bool = False):
    def check(key, value, base):
        wanted = int if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise BadValue(f"{key} must be a {'whole ' if whole else ''}number, not {value!r}")
        if (isinstance(value, float) and not math.isfinite(value)) or (low is not None and value < low) \
                or (high is not None and value > high):
            span = f"{low:g} to {high:g}" if high is not None else f"{low:g} or more"
            shown = f"= {value}" if len(str(value)) <= 15 else f"(a {len(str(value))}-digit number)"
            raise BadValue(f"{key} {shown} is out of range", f"use {span}")
        return value
    return check


def _choice(choices: tuple, *, whole: bool = False):
    def check(key, value, base):
        if whole and (isinstance(value, bool) or not isinstance(value, int)) or \
                not whole and not isinstance(value, str):
            value_text = value if whole else repr(value)
            raise BadValue(f"{key} = {value_text} is not one of {', '.join(map(str, choices))}")
        if value not in choices:
            import difflib

            close = difflib.get_close_matches(str(value), list(map(str, choices)), n=1)
            raise BadValue(f"{key} = {value!r} is not one of {', '.join(map(str, choices))}",
                           f"did you mean {close[0]!r}?" if close else None)
        return value
    return check


def _file(key, value, base):
    path = _path(key, value, base)
    if not path.is_file():
        raise BadValue(f"{key} {value!r} not found", f"no file at {path}")
    return path


def _folders(key, value, base):
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise BadValue(f"{key} must be a folder or a list of folders", f'e.g. {key} = ["scripts"]')
    paths = tuple(_path(key, item, base) for item in items)
    for item, path in zip(items, paths):
        if not path.is_dir():
            raise BadValue(f"{key} folder {item!r} not found", f"no folder at {path}")
    return paths


def _path(key, value, base) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise BadValue(f"{key} must be a path in quotes", f'e.g. {key} = "files/bell.wav"')
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


def _bitrate(key, value, base):
    low, high = BITRATE_KBPS
    if not is_bitrate(value):
        raise BadValue(f"{key} = {value!r} is not a bitrate", f'write "{low}k" to "{high}k", e.g. "128k" or "192k"')
    return value


def _loudness(key, value, base):
    if isinstance(value, str) and value.strip().lower() in ("off", "none"):
        return None
    low, high = LOUDNESS_LUFS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadValue(f"{key} = {value!r} is not a loudness target",
                       f'give LUFS between {low:g} and {high:g}, e.g. -16, or "off"')
    return float(value)


def _ratio(key, value, base):
    if isinstance(value, list) and len(value) == 2:
        value = f"{value[0]}:{value[1]}"
    try:
        return parse_ratio(value, source=key)
    except ParameterError as exc:
        raise BadValue(f"{key}: {exc.message}", exc.hint) from None


def _pattern(key, value, base):
    parts = value if isinstance(value, list) else str(value).replace(":", ",").split(",")
    try:
        seconds = [float(p) for p in parts if not isinstance(p, bool)]
    except (TypeError, ValueError):
        seconds = []
    if len(seconds) != 4 or not all(math.isfinite(s) and s >= 0 for s in seconds) \
            or seconds[0] <= 0 or seconds[2] <= 0:
        raise BadValue(f"{key} = {value!r} is not in,hold,out,hold seconds", 'write e.g. "4,1,6,1"; holds may be 0')
    breath_in, hold_in, breath_out, hold_out = seconds
    return {"breaths_per_min": 60.0 / sum(seconds), "ratio": (breath_in, breath_out),
            "hold_in_seconds": hold_in, "hold_out_seconds": hold_out}


def _background(key, value, base):
    if isinstance(value, str) and value.strip() in BED_NAMES:
        return value.strip()
    path = _path(key, value, base)
    if not path.is_file():
        raise BadValue(f"{key} {value!r} is neither a built-in bed nor a file",
                       f"choose one of {', '.join(BED_NAMES)}, or give an audio file (no file at {path})")
    return str(path)


OPTIONS: tuple[Option, ...] = (
    Option("voice", _text, "voice profile, engine voice id, or pack:DIR"),
    Option("voices", _folders, "folders of your own voice profiles"),
    Option("fallback_voice", _text, "for a voice pack: speaks phrases nobody recorded"),
    Option("rate", _number(*RATE_WPM_RANGE, whole=True), "speaking rate, words per minute"),
    Option("length", _choice(LENGTHS), "short, standard or long"),
    Option("group", _flag, "the group variant"),
    Option("format", _choice(FORMATS), "audio format"),
    Option("bitrate", _bitrate, "constant bitrate, e.g. 128k"),
    Option("loudness", _loudness, 'loudness target in LUFS, or "off"'),
    Option("breathing", _number(3, 12), "breaths per minute"),
    Option("ratio", _ratio, 'in:out proportion of each breath, "4:6"'),
    Option("pattern", _pattern, 'breath in seconds: "in,hold,out,hold"'),
    Option("tones", _flag, "breathing-pace tones (false: silence)"),
    Option("no_tones", _flag, "as tones = false"),
    Option("tone_style", _choice(TONE_STYLES), "glide, chime or quiet"),
    Option("tones_in_pauses", _number(1, MAX_PAUSE_SECONDS), "also pace pauses at least this many seconds long"),
    Option("bells", _flag, "a bell at the start and end"),
    Option("no_bells", _flag, "as bells = false"),
    Option("bell_file", _file, "your own bell sound"),
    Option("background", _background, "pink, brown, rain, waves, or an audio file"),
    Option("background_level", _number(-60, 0), "bed level relative to the voice, dB"),
    Option("channels", _choice((1, 2), whole=True), "1 (mono) or 2"),
    Option("sample_rate", _choice((44100, 48000), whole=True), "44100 or 48000"),
    Option("captions", _flag, ".vtt, .srt and .txt beside each track"),
    Option("timeline", _flag, "<track>.timeline.json beside each track"),
    Option("artist", _text, "artist tag"),
    Option("comment", _text, "comment tag"),
    Option("silent_timer", _flag, "a track with no speech is wanted: a timer of pauses, breathing and bells"),
    Option("hold", _flag, "the album page (index.html) stops at each chapter's end until Continue"),
)
BY_KEY = {option.key: option for option in OPTIONS}
OPPOSITES = {"no_tones": "tones", "no_bells": "bells"}
"""The command line's --no-x flags as manifest keys, each the opposite of x."""


def check_option(key: str, value: Any, base: Path) -> Any:
    """The typed value of render option ``key`` (BadValue when it cannot take ``value``)."""
    return BY_KEY[key].check(key, value, base)


def normalised(options: dict[str, Any]) -> dict[str, Any]:
    """Options with each --no-x key turned into x (``no_bells = true`` -> ``bells = false``)."""
    out = {k: v for k, v in options.items() if k not in OPPOSITES}
    for key, positive in OPPOSITES.items():
        if key in options:
            out[positive] = not options[key]
    return out


def breathing_for(options: dict[str, Any], profile: ClientProfile):
    """BreathingSettings as `render` builds them: defaults, the profile, then these options."""
    fields = dict(options.get("pattern") or {})
    if "breathing" in options:
        fields["breaths_per_min"] = float(options["breathing"])
    if "ratio" in options:
        fields["ratio"] = options["ratio"]
    if options.get("tones") is False:
        fields["tones"] = False
    if "tone_style" in options:
        fields["style"] = options["tone_style"]
    if "tones_in_pauses" in options:
        fields["tones_in_pauses_seconds"] = float(options["tones_in_pauses"])
    return breathing_settings(profile, **fields)


def mix_for(options: dict[str, Any]) -> MixSettings:
    mix = MixSettings(bells=options.get("bells", True), bell_file=options.get("bell_file"),
                      background=options.get("background"))
    changes = {"background_level_db": options.get("background_level"), "channels": options.get("channels"),
               "sample_rate": options.get("sample_rate")}
    mix = replace(mix, **{k: v for k, v in changes.items() if v is not None})
    if "loudness" in options:
        mix = replace(mix, loudness_lufs=options["loudness"])
    return mix


def export_for(options: dict[str, Any], tags: dict[str, str], cover: Path | None) -> ExportSettings:
    return ExportSettings(format=options.get("format"), bitrate=options.get("bitrate"), tags=dict(tags),
                          cover=cover, captions=bool(options.get("captions")),
                          timeline_json=bool(options.get("timeline")))
