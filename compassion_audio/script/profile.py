"""Client profiles: a TOML file of personal details, validated into template values."""
from __future__ import annotations

import difflib
import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from compassion_audio.core.errors import ParameterError, ProfileError
from compassion_audio.core.limits import MAX_VALUE_CHARS
from compassion_audio.core.ratio import parse_ratio
from compassion_audio.core.tomlfile import line_of_key, parse_toml, read_toml_text
from compassion_audio.script.params import control_character
from compassion_audio.script.templates import LENGTHS
from compassion_audio.script.wording import has_first_person

MAX_TEXT_CHARS = MAX_VALUE_CHARS
MAX_LIST_ITEMS = 20
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
    personal: bool = True
    """Private to the client: a group track never uses it from the profile. Only the
    breathing pattern, length and voice are neutral."""
    wording: str = ""
    """How its text is written: ABOUT (said to the client: "your sister"), OWN (the
    client's own words, spoken as theirs) or "" (a name, a word or a choice: no person to get right)."""
    individual_only: bool = False
    """Never in a group track, not even typed with -s: a name, the client's own words, their own act."""


ABOUT, OWN = "about", "own"
_MARK = {ABOUT: " [said to them]", OWN: " [their own words]", "": ""}

FIELDS: tuple[Field, ...] = (
    Field("name", "str", "Sam", "first name", individual_only=True),
    Field("pronouns", "str", "they/them", "the client's pronouns"),
    Field("colour", "str", "soft gold", "a colour linked with warmth", wording=ABOUT),
    Field("kind_phrases", "list", ["May I be kind to myself", "I am doing my best"],
          "the client's own kind phrases", wording=OWN, individual_only=True),
    Field("critic_thought", "str", "I always get things wrong",
          "their typical self-critical thought, named gently in self-critic-refocus",
          wording=OWN, individual_only=True),
    Field("daily_act", "str", "a short walk at lunchtime",
          "the kind act they chose to do for themselves each day, offered in daily-compassionate-act",
          wording=ABOUT, individual_only=True),
    Field("achievements", "list", ["finishing your course", "learning to swim"],
          "things they have done that they can recall", wording=ABOUT),
    Field("strengths", "list", ["patience", "a good sense of humour"], "their strengths", wording=ABOUT),
    Field("friends", "list", ["your sister", "an old school friend"],
          "people who come to them for support", wording=ABOUT),
    Field("length", "str", "standard", "short, standard or long", personal=False),
    Field("voice", "str", "en-gb", "speech engine voice id", personal=False),
    Field("place.description", "str", "a quiet beach at dusk", "their compassionate place", wording=ABOUT),
    Field("place.sight", "str", "soft light on the water", "what they see there", wording=ABOUT),
    Field("place.sounds", "str", "small waves on the sand", "what they hear there", wording=ABOUT),
    Field("place.touch", "str", "warm sand under your feet", "touch or temperature", wording=ABOUT),
    Field("place.smell", "str", "salt in the air", "what they smell there", wording=ABOUT),
    Field("place.anchor_word", "str", "calm", "a word that brings the place back"),
    Field("figure.form", "str", "an old oak tree", "the compassionate figure's form", wording=ABOUT),
    Field("figure.qualities", "list", ["wise", "strong", "warm"], "the figure's qualities", wording=ABOUT),
    Field("figure.voice", "str", "deep and unhurried", "how its voice sounds", wording=ABOUT),
    Field("figure.pronouns", "str", "it/its", "they/them, he/him, she/her or it/its"),
    Field("breathing.breaths_per_min", "float", 5.5, "breathing pace, 3 to 12", 3, 12, personal=False),
    Field("breathing.ratio", "ratio", "4:6", "in:out proportion of the breath", personal=False),
    Field("breathing.hold_in_seconds", "float", 0, "pause after breathing in, 0 to 10", 0, 10,
          personal=False),
    Field("breathing.hold_out_seconds", "float", 0, "pause after breathing out, 0 to 10", 0, 10,
          personal=False),
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
    return parse_profile(read_toml_text(path), source=str(path))


def parse_profile(text: str, source: str = "<profile>") -> ClientProfile:
    """Validate a profile given as TOML text (used for the built-in sample profile)."""
    return _build(parse_toml(text, source=source), source=source, text=text)


def apply_overrides(profile: ClientProfile, overrides: Mapping[str, str]) -> ClientProfile:
    """Return a new profile with ``key=value`` overrides applied (``place.smell=pine``).

    List values are separated by ``;`` or written as a TOML array (``["a", "b"]``).
    """
    flat = _flat_from_profile(profile)
    for key, raw in overrides.items():
        key = key.strip()
        spec = _spec_for(key, source="-s", line=None)
        flat[key] = _check(spec, _parse_override(spec, raw), source="-s", line=None)
    return _from_flat(flat, source=profile.source)


def _build(data: dict[str, Any], *, source: str, text: str) -> ClientProfile:
    flat: dict[str, Any] = {}
    for key, value in _flatten(data):
        line = line_of_key(text, key)
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
        shown = value if len(str(value)) <= 15 else f"a {len(str(value))}-digit number"
        fail(f"{spec.key} is {shown}; it must be between {spec.min:g} and {spec.max:g}")
    return float(value)


def _check_text(label: str, value: str, fail) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT_CHARS:
        fail(f"{label} is {len(value)} characters long; at most {MAX_TEXT_CHARS}", "a short phrase reads best")
    control = control_character(value)
    if control:
        fail(f"{label} contains the control character {control}", "remove it; tabs and line breaks are fine")
    return value



def _check_choice(key: str, value: str, fail) -> None:
    if key == "length" and value not in LENGTHS:
        fail(f"length is not one of {', '.join(LENGTHS)}")
    if key == "figure.pronouns" and value:
        first = value.split("/")[0].strip().lower()
        if first not in FIGURE_PRONOUNS:
            fail("figure.pronouns is not one of they/them, he/him, she/her or it/its")


def _check_ratio(key: str, value: Any, fail) -> tuple[float, float]:
    try:
        return parse_ratio(value, source=key)
    except ParameterError as exc:
        fail(f"{key}: {exc.message}", exc.hint)


def _parse_override(spec: Field, raw: str) -> Any:
    raw = raw.strip()
    if spec.type == "list":
        if raw.startswith("["):
            try:
                return parse_toml(f"v = {raw}", source="-s")["v"]
            except ProfileError:
                raise ProfileError(f"{spec.key}: not a valid list", source="-s",
                                   hint='e.g. ["first", "second"] or first; second') from None
        return [part.strip() for part in raw.split(";") if part.strip()]
    if spec.type == "float":
        try:
            return float(raw)
        except ValueError:
            raise ProfileError(f"{spec.key} must be a number, not {raw!r}", source="-s") from None
    return raw


def profile_template() -> str:
    """A commented profile to fill in; every key is shown with an example value."""
    lines = [
        "# Client profile for compassion-audio.",
        "# PRIVACY: this file holds health-related personal data. Keep it on this",
        "# machine, in a folder only you can read; never email or sync it unencrypted.",
        "# Group tracks use only the [breathing] pattern, length and voice from it.",
        "# Every key is optional: remove the '#' in front of a line to use it.",
        "# Lists are written [\"first\", \"second\"]. Text up to "
        f"{MAX_TEXT_CHARS} characters, lists up to {MAX_LIST_ITEMS} items.",
        "#",
        "# WORDING: the tracks speak to the client as \"you\".",
        "# [said to them]: write it as you would say it to the client: \"your sister\",",
        "#   \"finishing your course\" (a my/I/me is spoken as your/you; 'client check' flags it).",
        "# [their own words]: the client's words as they say them (\"I am doing my best\");",
        "#   the tracks speak them as the client's own words.",
        "",
    ]
    current = ""
    for spec in FIELDS:
        table, _, leaf = spec.key.rpartition(".")
        if table != current:
            lines += ["", f"[{table}]"]
            current = table
        only = " (individual tracks only)" if spec.individual_only else ""
        lines.append(f"# {spec.help}{only}{_MARK[spec.wording]}")
        lines.append(f"# {leaf} = {_toml_value(spec.example)}")
    return "\n".join(lines) + "\n"


def wording_warnings(path: Path) -> list[str]:
    """One line per [said to them] entry written in the first person: file:line, key, what to do.

    The value is never quoted (it is health data)."""
    text = read_toml_text(path)
    profile = parse_profile(text, source=str(path))
    warnings = []
    for key, value in profile.values.items():
        if BY_KEY[key].wording != ABOUT:
            continue
        items = [(key, value)] if isinstance(value, str) else \
            [(f"{key} item {i}", item) for i, item in enumerate(value, 1)]
        for label, item in items:
            if has_first_person(item):
                warnings.append(f"{path}:{line_of_key(text, key) or 1}: warning: {label} says I/me/my; "
                                "the track says it to the client, so write it that way (\"your sister\"); "
                                "it is spoken as your/you meanwhile")
    return warnings


def client_file_id(path: Path) -> str:
    """``client-`` and 8 hex digits of the profile file's stem: the same for every track of one
    profile, different between profiles, and not the stem itself (which is often a name)."""
    stem = unicodedata.normalize("NFC", Path(path).stem)
    return "client-" + hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8]


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{value:g}" if isinstance(value, float) else str(value)

