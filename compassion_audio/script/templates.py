"""Exercise templates: front matter, sandboxed Jinja2 rendering, built-in and user exercises."""
from __future__ import annotations

import difflib
import os
import re
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from compassion_audio.script import markers
from compassion_audio.core.errors import ExerciseNotFound, MarkerError, ParameterError, TemplateError
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Script, Segment, Speech
from compassion_audio.script.params import TYPE_WORDS, Param, check_type, from_string, in_range, parse_params
from compassion_audio.core.text import clean_text, join_and, tidy_lines, word_count

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_VAR = "COMPASSION_AUDIO_EXERCISES"
LENGTHS = ("short", "standard", "long")
FRONT_KEYS = ("title", "summary", "lengths", "group", "params")
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_EMPTY: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True)
class Exercise:
    """A loaded exercise template: its front matter and body."""

    name: str
    path: Path
    title: str
    summary: str
    lengths: tuple[str, ...]
    group: bool
    """True when the template has a group variant (reads ``group``)."""
    params: dict[str, Param]
    builtin: bool
    body: str = field(default="", repr=False)
    """Template source with the front matter blanked out, so line numbers match the file."""
    body_line: int = 1
    """File line where the body starts."""

    @property
    def default_length(self) -> str:
        return "standard" if "standard" in self.lengths else self.lengths[0]


def builtin_dir() -> Path:
    """The folder of the exercises shipped with the package."""
    return Path(__file__).resolve().parent / "exercises"


def exercise_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """Where exercises are looked up, first match wins: extra, $COMPASSION_AUDIO_EXERCISES, built-ins."""
    from_env = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in extra] + from_env + [builtin_dir()]


def exercise_name(path: Path) -> str:
    """File name without ``.txt.j2`` / ``.j2`` / ``.txt``."""
    for suffix in (".txt.j2", ".j2", ".txt"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def find_exercise(name_or_path: str, extra_dirs: Sequence[Path] = ()) -> Exercise:
    """Load an exercise by file path or by name (user folders shadow built-ins)."""
    if "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith((".j2", ".txt")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ExerciseNotFound(f"no exercise file at {path}")
        return load_exercise(path)
    dirs = exercise_dirs(extra_dirs)
    for directory in dirs:
        for candidate in (directory / f"{name_or_path}.txt.j2", directory / f"{name_or_path}.j2"):
            if candidate.is_file():
                return load_exercise(candidate)
    close = difflib.get_close_matches(name_or_path, sorted(_available(dirs)), n=3)
    maybe = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ExerciseNotFound(f"no exercise named '{name_or_path}'{maybe}; "
                           "'compassion-audio list' shows them all")


def list_exercises(extra_dirs: Sequence[Path] = ()) -> list[Exercise]:
    """Every exercise once (the first folder that has a name wins), sorted by name."""
    found = _available(exercise_dirs(extra_dirs))
    return [load_exercise(found[name]) for name in sorted(found)]


def load_exercise(path: Path) -> Exercise:
    """Read and validate a template file: front matter, Jinja syntax and literal markers."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read the template: {exc}", source=source) from None
    front, fm_lines, body_line = _split_front(text, source)
    lines = text.splitlines()
    body = "\n" * (body_line - 1) + "\n".join(lines[body_line - 1:]) + ("\n" if text.endswith("\n") else "")
    meta = _front_matter(front, fm_lines, source)
    name = exercise_name(path)
    builtin = path.resolve().parent == builtin_dir()
    exercise = Exercise(
        name=name, path=path, title=meta.get("title") or name.replace("-", " ").capitalize(),
        summary=meta.get("summary", ""), lengths=tuple(meta.get("lengths", ["standard"])),
        group=meta.get("group", False), params=meta.get("params", {}), builtin=builtin,
        body=body, body_line=body_line)
    _compile(exercise)
    blanked = _JINJA.sub(lambda m: re.sub(r"[^\n]", markers.OPAQUE, m.group()), body)
    markers.validate(blanked, source=source)
    return exercise


def coerce_values(exercise: Exercise, raw: Mapping[str, str], source: str = "-s") -> dict[str, object]:
    """Command-line strings to typed values by dotted name (lists split on ';', else ',')."""
    values: dict[str, object] = {}
    for key, text in raw.items():
        param = exercise.params.get(key)
        if param is None:
            known = ", ".join(exercise.params) or "none"
            close = difflib.get_close_matches(key, list(exercise.params), n=1)
            maybe = f"did you mean {close[0]}? " if close else ""
            raise ParameterError(f"unknown parameter '{key}' for {exercise.name}", source=source,
                                 hint=f"{maybe}known parameters: {known}")
        values[key] = from_string(param, str(text), source)
    return values


def render_text(exercise: Exercise, values: Mapping[str, object] = _EMPTY, *,
                length: str | None = None, group: bool = False) -> str:
    """Render the template body to narration text with markers (tidy whitespace)."""
    length = _length(exercise, length)
    if group and not exercise.group:
        raise ParameterError(f"{exercise.name} has no group variant", source=exercise.name,
                             hint="leave out --group, or give the template group = true and a group variant")
    context = _context(exercise, values, group)
    template = _compile(exercise)
    try:
        text = template.render(**context, length=length, group=group, **_helpers(length))
    except Exception as exc:  # noqa: BLE001 - any failure inside user template code
        raise _runtime_error(exc, exercise) from None
    return tidy_lines(text)


def render_script(exercise: Exercise, values: Mapping[str, object] = _EMPTY, *,
                  length: str | None = None, group: bool = False) -> Script:
    """Render and parse: the typed segments of one exercise at one length and variant."""
    length = _length(exercise, length)
    text = render_text(exercise, values, length=length, group=group)
    try:
        segments = markers.parse(text, source=f"{exercise.path} (rendered)")
    except MarkerError as exc:
        raise MarkerError(exc.message, source=f"{exercise.path} (rendered text)", line=exc.line,
                          column=exc.column, hint=exc.hint) from None
    meta = {"summary": exercise.summary, "lengths": exercise.lengths, "group": group,
            "length": length, "variant": "group" if group else "individual"}
    return Script(title=exercise.title, segments=_template_lines(segments, exercise.body),
                  source=exercise.name, meta=meta)


def estimated_seconds(script: Script, *, words_per_min: float = 130.0, breaths_per_min: float = 6.0,
                      sentence_gap_seconds: float = 0.6, paragraph_gap_seconds: float = 1.2) -> float:
    """Rough track length: speech at a narration pace, gaps, pauses and breathing stretches."""
    total, previous = 0.0, None
    for segment in script.segments:
        if isinstance(segment, Speech):
            if previous is not None and not isinstance(previous, (Pause, Breathe)):
                total += paragraph_gap_seconds if segment.paragraph_start else sentence_gap_seconds
            total += word_count(segment.text) * 60.0 / words_per_min
        elif isinstance(segment, Pause):
            total += segment.seconds
        elif isinstance(segment, Breathe):
            rate = segment.breaths_per_min or breaths_per_min
            total += segment.seconds if segment.seconds is not None else segment.breaths * 60.0 / rate
        if not isinstance(segment, Chapter):
            previous = segment
    return total


class Namespace:
    """Dotted parameters (``place.sight``) as attributes; false when every value is empty."""

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> object:
        if name.startswith("_") or name not in self._values:
            raise AttributeError(name)
        return self._values[name]

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __bool__(self) -> bool:
        return any(bool(v) for v in self._values.values())


class _HelperError(Exception):
    """A template helper called with values it cannot turn into a marker."""


def _available(dirs: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in dirs:
        if directory.is_dir():
            for path in sorted(directory.glob("*.j2")):
                found.setdefault(exercise_name(path), path)
    return found


def _split_front(text: str, source: str) -> tuple[str, list[str], int]:
    """(TOML text, its lines, first body line); front matter sits between two ``+++`` lines."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "+++":
        return "", [], 1
    for index in range(1, len(lines)):
        if lines[index].strip() == "+++":
            return "\n".join(lines[1:index]), lines[1:index], index + 2
    raise TemplateError("front matter is not closed", source=source, line=1,
                        hint="end it with a line of +++")


def _front_matter(front: str, fm_lines: list[str], source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(front)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at (line|end of document).*\)", "", str(exc))
        raise TemplateError(f"front matter: {message}", source=source,
                            line=int(found.group(1)) + 1 if found else len(fm_lines) + 1,
                            column=int(found.group(2)) if found else None) from None

    def fail(key: str, message: str, hint: str | None = None) -> TemplateError:
        return TemplateError(message, source=source, line=_key_line(fm_lines, key), hint=hint)

    for key in data:
        if key not in FRONT_KEYS:
            raise fail(key, f"unknown front-matter key '{key}'", f"keys are {', '.join(FRONT_KEYS)}")
    for key in ("title", "summary"):
        if not isinstance(data.get(key, ""), str):
            raise fail(key, f"'{key}' must be text in quotes")
    lengths = data.get("lengths", ["standard"])
    if (not isinstance(lengths, list) or not lengths or len(set(map(str, lengths))) != len(lengths)
            or any(length not in LENGTHS for length in lengths)):
        raise fail("lengths", f"bad lengths {lengths!r}", f"use some of {list(LENGTHS)}, each once")
    if not isinstance(data.get("group", False), bool):
        raise fail("group", "'group' must be true or false")
    if not isinstance(data.get("params", {}), dict):
        raise fail("params", "'params' must be a table", "start it with a [params] line")
    data["params"] = parse_params(data.get("params", {}), "", fail)
    return data


def _key_line(fm_lines: list[str], key: str) -> int:
    """File line of a front-matter key (the file's line 1 is the opening +++)."""
    for candidate in (key, key.rsplit(".", 1)[-1]):
        pattern = re.compile(rf"""^\s*["']?{re.escape(candidate)}["']?\s*=""")
        for index, line in enumerate(fm_lines):
            if pattern.match(line):
                return index + 2
    return 1


def _length(exercise: Exercise, length: str | None) -> str:
    if length is None:
        return exercise.default_length
    if length not in exercise.lengths:
        raise ParameterError(f"unknown length '{length}' for {exercise.name}", source=exercise.name,
                             hint=f"lengths are {', '.join(exercise.lengths)}")
    return length


def _flatten(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _context(exercise: Exercise, values: Mapping[str, object], group: bool) -> dict[str, object]:
    """Typed, defaulted, narration-safe values as nested objects; undeclared values are ignored."""
    given = _flatten(values)
    tree: dict[str, Any] = {}
    for name, param in exercise.params.items():
        if name in given:
            value = given[name]
            if isinstance(value, str) and param.type != "str":
                value = from_string(param, value, exercise.name)
            typed = check_type(param, value)
            if typed is None:
                raise ParameterError(f"'{name}' must be {TYPE_WORDS[param.type]}, got {value!r}",
                                     source=exercise.name)
            value = in_range(param, typed, exercise.name)
        elif param.required:
            raise ParameterError(f"missing required parameter '{name}'", source=exercise.name,
                                 hint=f"pass it with -s {name}=...")
        else:
            value = param.default
        if group and name == "name":
            value = ""  # a group track never carries a client's name
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _narratable(value)
    return {key: _namespaces(value) for key, value in tree.items()}


def _namespaces(value: object) -> object:
    if isinstance(value, dict):
        return Namespace({k: _namespaces(v) for k, v in value.items()})
    return value


def _narratable(value: object) -> object:
    """Client text made safe to speak: one line, no tags, [ escaped, no trailing stop to double up."""
    if isinstance(value, list):
        return [v for v in (_narratable(item) for item in value) if v]
    if not isinstance(value, str):
        return value
    return markers.escape(clean_text(value.replace("<", " ").replace(">", " ")).rstrip(".,;: "))


def _compile(exercise: Exercise) -> jinja2.Template:
    try:
        return _ENV.from_string(exercise.body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax: {exc.message}", source=str(exercise.path),
                            line=exc.lineno) from None


def _runtime_error(exc: Exception, exercise: Exercise) -> Exception:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined: {exc.message}"
        hint = "declare it under [params] or check the spelling"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        message, hint = f"not allowed in a template: {exc}", "templates may use only their values and helpers"
    elif isinstance(exc, _HelperError):
        message, hint = str(exc), None
    else:
        message, hint = f"{type(exc).__name__}: {exc}", None
    return TemplateError(message, source=str(exercise.path), line=line, hint=hint)


def _helpers(length: str) -> dict[str, object]:
    """Template helpers: each returns marker text, checked here so errors point at the template line."""

    def checked(build, *args, **kwargs) -> str:
        try:
            return build(*args, **kwargs)
        except MarkerError as exc:
            raise _HelperError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None

    def pick(**options: object) -> object:
        unknown = [key for key in options if key not in LENGTHS]
        if unknown:
            raise _HelperError(f"pick() got {unknown[0]}=; use short=, standard= and long=")
        if length in options:
            return options[length]
        if "standard" in options:
            return options["standard"]
        raise _HelperError(f"pick() has no value for the {length} length; add {length}= or standard=")

    return {"pause": lambda seconds: checked(markers.pause_marker, seconds),
            "breathe": lambda *args, **kw: checked(markers.breathe_marker, *args, **kw),
            "chapter": lambda title: checked(markers.chapter_marker, title),
            "bell": lambda: "[bell]", "pick": pick}


def _template_lines(segments: tuple[Segment, ...], body: str) -> tuple[Segment, ...]:
    """Best effort: the template line each segment comes from, found by its opening words."""
    collapsed, line_of, line = [], [], 1
    for char in body:
        if char.isspace():
            if collapsed and collapsed[-1] != " ":
                collapsed.append(" ")
                line_of.append(line)
            line += char == "\n"
        else:
            collapsed.append(char)
            line_of.append(line)
    flat, cursor, current, located = "".join(collapsed), 0, 0, []
    for segment in segments:
        keys = _search_keys(segment)
        # Forward from the last match first: templates mostly read top to bottom.
        hits = [flat.find(key, start) for start in (cursor, 0) for key in keys]
        found = next((hit for hit in hits if hit >= 0), -1)
        if found >= 0:
            cursor, current = found + 1, line_of[found]
        located.append(replace(segment, line=current))
    return tuple(located)


def _search_keys(segment: Segment) -> list[str]:
    if isinstance(segment, Speech):
        text = segment.text.replace("[", "[[")
        return [text[:24], text[-16:]] if len(text) > 1 else []
    word = {Pause: "pause", Breathe: "breathe", Bell: "bell", Chapter: "chapter"}[type(segment)]
    title = f" {segment.title}" if isinstance(segment, Chapter) else ""
    return [f"[{word}{title}", f"[{word}", f"{word}("]


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                            trim_blocks=True, lstrip_blocks=True)
_ENV.filters["join_and"] = join_and
