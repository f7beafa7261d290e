"""Rendering exercise templates: sandboxed Jinja2 with helpers, to narration text and typed scripts."""
from __future__ import annotations

import functools

import traceback
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from compassion_audio.core.errors import MarkerError, ParameterError, TemplateError
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Script, Segment, Speech
from compassion_audio.core.text import clean_text, join_and, tidy_lines
from compassion_audio.script import markers
from compassion_audio.script.params import TYPE_WORDS, check_type, from_string, in_range

if TYPE_CHECKING:  # the library imports this module to check templates as it loads them
    from compassion_audio.script.library import Exercise

LENGTHS = ("short", "standard", "long")
"""The versions of a practice a template can be rendered at (``length`` and ``pick()``)."""
VARIANTS = ("individual", "group")
"""Variant names, indexed by ``group``: one listener (may be named) or a group (never named)."""
_EMPTY: Mapping[str, object] = MappingProxyType({})


def render_text(exercise: Exercise, values: Mapping[str, object] = _EMPTY, *,
                length: str | None = None, group: bool = False) -> str:
    """Render the template body to narration text with markers (tidy whitespace)."""
    length = _length(exercise, length)
    if group and not exercise.group:
        raise ParameterError(f"{exercise.name} has no group variant", source=exercise.name,
                             hint="leave out --group, or give the template group = true and a group variant")
    context = _context(exercise, values, group)
    template = compile_body(exercise.body, str(exercise.path))
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
    return parse_rendered(exercise, text, length=length, group=group)


def parse_rendered(exercise: Exercise, text: str, *, length: str, group: bool) -> Script:
    """The typed script of a text ``render_text`` made; a bad marker is a MarkerError at its
    line in the rendered text (template code wrote it, so the template line is unknown)."""
    segments = markers.parse(text, source=f"{exercise.path} (rendered text)")
    meta = {"summary": exercise.summary, "lengths": exercise.lengths, "group": group,
            "length": length, "variant": VARIANTS[group]}
    return Script(title=exercise.title, segments=_template_lines(segments, exercise.body),
                  source=exercise.name, meta=meta)


def compile_body(body: str, source: str) -> jinja2.Template:
    """The template body compiled in the sandbox; a syntax error is a TemplateError at its line."""
    try:
        return _compiled(body)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax: {exc.message}", source=source, line=exc.lineno) from None


@functools.lru_cache(maxsize=64)
def _compiled(body: str) -> jinja2.Template:
    # Compiling costs ~25 ms a template; `list` renders each exercise at every length.
    return _ENV.from_string(body)


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
