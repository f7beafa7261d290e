"""Client profiles: a TOML file of personal details, validated into template values."""
from __future__ import annotations

import difflib
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from compassion_audio.core.errors import ProfileError

MAX_TEXT_CHARS = 200
MAX_LIST_ITEMS = 20
LENGTHS = ("short", "standard", "long")
FIGURE_PRONOUNS = ("they", "he", "she", "it")


@dataclass(frozen=True)
class Field:
    """One profile key: its type, an example for the template file and what it means."""

    key: str
    type: str
    """str, list, float or ratio."""
    example: Any
    help: str
    min: float | None = None
    max: float | None = None


FIELDS: tuple[Field, ...] = (
    Field("name", "str", "Sam", "first name, used in solo tracks only"),
    Field("pronouns", "str", "they/them", "the client's pronouns"),
    Field("colour", "str", "soft gold", "a colour linked with warmth"),
    Field("kind_phrases", "list", ["May I be kind to myself", "I am doing my best"],
          "the client's own kind phrases"),
    Field("achievements", "list", ["finishing the course", "learning to swim"],
          "things they have done that they can recall"),
    Field("strengths", "list", ["patience", "a good sense of humour"], "their strengths"),
    Field("friends", "list", ["my sister", "an old school friend"],
          "people who come to them for support"),
    Field("length", "str", "standard", "short, standard or long"),
    Field("voice", "str", "en-gb", "speech engine voice id"),
    Field("place.description", "str", "a quiet beach at dusk", "their compassionate place"),
    Field("place.sight", "str", "soft light on the water", "what they see there"),
    Field("place.sounds", "str", "small waves on the sand", "what they hear there"),
    Field("place.touch", "str", "warm sand under their feet", "touch or temperature"),
    Field("place.smell", "str", "salt in the air", "what they smell there"),
    Field("place.anchor_word", "str", "calm", "a word that brings the place back"),
    Field("figure.form", "str", "an old oak tree", "the compassionate figure's form"),
    Field("figure.qualities", "list", ["wise", "strong", "warm"], "the figure's qualities"),
    Field("figure.voice", "str", "deep and unhurried", "how its voice sounds"),
    Field("figure.pronouns", "str", "it/its", "they/them, he/him, she/her or it/its"),
    Field("breathing.breaths_per_min", "float", 5.5, "breathing pace, 3 to 12", 3, 12),
    Field("breathing.ratio", "ratio", "4:6", "in:out proportion of the breath"),
    Field("breathing.hold_in_seconds", "float", 0, "pause after breathing in, 0 to 10", 0, 10),
    Field("breathing.hold_out_seconds", "float", 0, "pause after breathing out, 0 to 10", 0, 10),
)
BY_KEY = {f.key: f for f in FIELDS}
SETTINGS_KEYS = ("length", "voice")


@dataclass(frozen=True)
class ClientProfile:
    """A validated client profile, ready to pass to a template and the track settings."""

    values: dict = field(default_factory=dict)
    """Template values by dotted key (``place.smell``), typed (lists stay lists)."""
    breathing: dict = field(default_factory=dict)
    """Fields of ``config.BreathingSettings`` the profile sets."""
    length: str | None = None
    voice: str | None = None
    source: str = ""


def empty_profile() -> ClientProfile:
    """A profile with nothing set: every template falls back to its defaults."""
    return ClientProfile(source="(no profile)")


def load_profile(path: Path) -> ClientProfile:
    """Read and validate a client profile file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError("file not found", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the file: {exc}", source=str(path)) from None
    return parse_profile(text, source=str(path))


def parse_profile(text: str, source: str = "<profile>") -> ClientProfile:
    """Validate a profile given as TOML text (used for the built-in sample profile)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib before 3.14 has no lineno attribute: the line is only in the message.
        found = re.search(r"\(at line (\d+)", str(exc))
        msg = str(exc).split(" (at line")[0]
        raise ProfileError(f"not valid TOML: {msg}", source=source,
                           line=int(found.group(1)) if found else None,
                           hint="check quotes and = signs") from None
    return _build(data, source=source, text=text)


def apply_overrides(profile: ClientProfile, overrides: Mapping[str, str]) -> ClientProfile:
    """Return a new profile with ``key=value`` overrides applied (``place.smell=pine``).

    List values are separated by ``;`` or written as a TOML array (``["a", "b"]``).
    """
    flat = _flat_from_profile(profile)
    for key, raw in overrides.items():
        key = key.strip()
        spec = _spec_for(key, source="override", line=None)
        flat[key] = _check(spec, _parse_override(spec, raw), source="override", line=None)
    return _from_flat(flat, source=profile.source)


def _build(data: dict[str, Any], *, source: str, text: str) -> ClientProfile:
    flat: dict[str, Any] = {}
    for key, value in _flatten(data):
        line = _line_of(text, key)
        spec = _spec_for(key, source=source, line=line)
        flat[key] = _check(spec, value, source=source, line=line)
    return _from_flat(flat, source=source)


def _from_flat(flat: dict[str, Any], *, source: str) -> ClientProfile:
    values, breathing = {}, {}
    for key, value in flat.items():
        if key.startswith("breathing."):
            breathing[key.split(".", 1)[1]] = value
        elif key not in SETTINGS_KEYS:
            values[key] = value
    return ClientProfile(values=values, breathing=breathing, length=flat.get("length"),
                         voice=flat.get("voice"), source=source)


def _flat_from_profile(profile: ClientProfile) -> dict[str, Any]:
    flat = dict(profile.values)
    flat.update({f"breathing.{k}": v for k, v in profile.breathing.items()})
    if profile.length is not None:
        flat["length"] = profile.length
    if profile.voice is not None:
        flat["voice"] = profile.voice
    return flat


def _flatten(data: dict[str, Any], prefix: str = ""):
    """Yield (dotted key, value); only the known tables are descended into."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted in ("place", "figure", "breathing"):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _spec_for(key: str, *, source: str, line: int | None) -> Field:
    spec = BY_KEY.get(key)
    if spec is not None:
        return spec
    guess = difflib.get_close_matches(key, BY_KEY, n=1, cutoff=0.6)
    if not guess:
        leaf = key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in BY_KEY}
        close = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.6)
        guess = [leaves[close[0]]] if close else []
    hint = f"did you mean {guess[0]!r}?" if guess else "see 'compassion-audio client new' for every key"
    raise ProfileError(f"unknown key {key!r}", source=source, line=line, hint=hint)


def _check(spec: Field, value: Any, *, source: str, line: int | None) -> Any:
    """Validate one value against its field and return it in its typed form."""
    def fail(message: str, hint: str | None = None):
        raise ProfileError(message, source=source, line=line, hint=hint)

    if spec.type == "str":
        if not isinstance(value, str):
            fail(f"{spec.key} must be text", f'write it in quotes, e.g. {spec.key.rsplit(".", 1)[-1]} = "{spec.example}"')
        value = _check_text(spec.key, value, fail)
        _check_choice(spec.key, value, fail)
        return value
    if spec.type == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail(f"{spec.key} must be a list of strings", 'e.g. ["first", "second"]')
        if len(value) > MAX_LIST_ITEMS:
            fail(f"{spec.key} has {len(value)} items; at most {MAX_LIST_ITEMS}", "keep the few that matter most")
        items = [_check_text(f"{spec.key} item {i}", v, fail) for i, v in enumerate(value, 1)]
        for i, item in enumerate(items, 1):
            if not item:
                fail(f"{spec.key} item {i} is empty", "remove it or fill it in")
        return items
    if spec.type == "ratio":
        return _check_ratio(spec.key, value, fail)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"{spec.key} must be a number", f"e.g. {spec.key.rsplit('.', 1)[-1]} = {spec.example}")
    if not spec.min <= value <= spec.max:
        fail(f"{spec.key} is {value}; it must be between {spec.min:g} and {spec.max:g}")
    return float(value)


def _check_text(label: str, value: str, fail) -> str:
    value = value.strip()
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        fail(f"{label} contains a control character (a tab or line break)", "keep it on one line")
    if len(value) > MAX_TEXT_CHARS:
        fail(f"{label} is {len(value)} characters long; at most {MAX_TEXT_CHARS}", "a short phrase reads best")
    return value


def _check_choice(key: str, value: str, fail) -> None:
    if key == "length" and value not in LENGTHS:
        fail(f"length {value!r} is not one of {', '.join(LENGTHS)}")
    if key == "figure.pronouns" and value:
        first = value.split("/")[0].strip().lower()
        if first not in FIGURE_PRONOUNS:
            fail(f"figure.pronouns {value!r} is not supported", "use they/them, he/him, she/her or it/its")


def _check_ratio(key: str, value: Any, fail) -> tuple[float, float]:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*", value) if isinstance(value, str) else None
    if not match:
        fail(f"{key} must be written like \"4:6\" (in:out)")
    ratio = (float(match.group(1)), float(match.group(2)))
    if min(ratio) <= 0:
        fail(f"{key} parts must both be above zero")
    return ratio


def _parse_override(spec: Field, raw: str) -> Any:
    raw = raw.strip()
    if spec.type == "list":
        if raw.startswith("["):
            try:
                return tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError as exc:
                raise ProfileError(f"{spec.key}: not a valid list", source="override",
                                   hint='e.g. ["first", "second"] or first; second') from exc
        return [part.strip() for part in raw.split(";") if part.strip()]
    if spec.type == "float":
        try:
            return float(raw)
        except ValueError:
            raise ProfileError(f"{spec.key} must be a number, not {raw!r}", source="override") from None
    return raw


def _line_of(text: str, dotted: str) -> int | None:
    """Line of a dotted key in TOML text: under its [table], as a dotted key, or inline."""
    table, _, leaf = dotted.rpartition(".")
    current = ""
    fallback = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.fullmatch(r"\[\s*([\w.-]+)\s*\]", line)
        if header:
            current = header.group(1)
            continue
        key = re.match(r"([\w.\"'-]+)\s*=", line)
        if not key:
            continue
        name = key.group(1).replace('"', "").replace("'", "")
        full = f"{current}.{name}" if current else name
        if full == dotted:
            return number
        if fallback is None and table and re.search(rf"\b{re.escape(leaf)}\s*=", line) and \
                full.split(".")[0] == table.split(".")[0]:
            fallback = number
    return fallback


def profile_template() -> str:
    """A commented profile to fill in; every key is shown with an example value."""
    lines = [
        "# Client profile for compassion-audio.",
        "# PRIVACY: this file holds health-related personal data. Keep it on this",
        "# machine, in a folder only you can read; never email or sync it unencrypted.",
        "# Every key is optional: remove the '#' in front of a line to use it.",
        "# Lists are written [\"first\", \"second\"]. Text up to "
        f"{MAX_TEXT_CHARS} characters, lists up to {MAX_LIST_ITEMS} items.",
        "",
    ]
    current = ""
    for spec in FIELDS:
        table, _, leaf = spec.key.rpartition(".")
        if table != current:
            lines += ["", f"[{table}]"]
            current = table
        lines.append(f"# {spec.help}")
        lines.append(f"# {leaf} = {_toml_value(spec.example)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{value:g}" if isinstance(value, float) else str(value)

