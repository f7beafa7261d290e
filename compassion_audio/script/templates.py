"""Rendering exercise templates to narration text and typed scripts: context, helpers, errors at
their template line (the sandbox and its limits: ``sandbox.py``)."""
from __future__ import annotations

import functools
import traceback
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import jinja2

from compassion_audio.core.errors import MarkerError, ParameterError, TemplateError
from compassion_audio.core.limits import MAX_TEMPLATE_BYTES, MAX_TRACK_SECONDS
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Script, Segment, Speech
from compassion_audio.core.settings import RATE_WPM_RANGE
from compassion_audio.core.text import clean_text, tidy_lines, word_count
from compassion_audio.script import markers, sandbox
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
    state = sandbox.Render(roots=sandbox.allowed_roots(exercise.path),
                           files={template.filename: str(exercise.path)})
    token = sandbox.RENDER.set(state)
    try:
        text = sandbox.streamed(template.generate(**context, length=length, group=group, **_helpers(length)))
    except TemplateError:
        raise  # an included template that cannot be read names its own file
    except Exception as exc:  # noqa: BLE001 - any failure inside user template code
        raise _runtime_error(exc, exercise, state) from None
    finally:
        sandbox.RENDER.reset(token)
    return tidy_lines(text)


def render_script(exercise: Exercise, values: Mapping[str, object] = _EMPTY, *,
                  length: str | None = None, group: bool = False) -> Script:
    """Render and parse: the typed segments of one exercise at one length and variant."""
    length = _length(exercise, length)
    text = render_text(exercise, values, length=length, group=group)
    script = parse_rendered(exercise, text, length=length, group=group)
    check_track_length(exercise, script)
    return script


def check_track_length(exercise: Exercise, script: Script) -> None:
    """Refuse a script that would surely play longer than MAX_TRACK_SECONDS."""
    if shortest_seconds(script) > MAX_TRACK_SECONDS:
        raise TemplateError(f"the script would be longer than {sandbox.hours(MAX_TRACK_SECONDS)} "
                            "(the longest track allowed)", source=str(exercise.path),
                            hint="shorten its pauses, breathing stretches or text")


def shortest_seconds(script: Script) -> float:
    """A lower bound of how long ``script`` plays: its pauses and breathing stretches, and its
    words at the fastest speaking rate allowed (no gaps, bells or voice padding), so a track
    refused for being over a limit is surely over it."""
    words = sum(word_count(seg.text) for seg in script.segments if isinstance(seg, Speech))
    seconds = words * 60.0 / RATE_WPM_RANGE[1]
    for seg in script.segments:
        if isinstance(seg, Pause):
            seconds += seg.seconds
        elif isinstance(seg, Breathe):
            seconds += (seg.seconds if seg.seconds is not None
                        else seg.breaths * 60.0 / markers.MAX_BREATHS_PER_MIN)
    return seconds


def read_template(path: Path) -> str:
    """A template file's text: at most MAX_TEMPLATE_BYTES (checked before it is read), UTF-8,
    not binary; each refusal names the file, and the line of the first bad byte."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise TemplateError(f"cannot read the template: {exc.strerror or exc}", source=source) from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"the template is larger than {sandbox.size_words(MAX_TEMPLATE_BYTES)} "
                            "(the largest template read)", source=source,
                            hint="a practice script is a few KB; split it or take out what is repeated")
    if b"\0" in data:
        at = data.index(b"\0")
        raise TemplateError("the template is a binary file, not text", source=source,
                            line=data.count(b"\n", 0, at) + 1,
                            hint="give a .txt.j2 file of plain text saved as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TemplateError(f"the template is not UTF-8 text (byte {column} of the line cannot be read)",
                            source=source, line=line,
                            hint="save it as UTF-8: in most editors, Save As with the encoding UTF-8") from None


def parse_rendered(exercise: Exercise, text: str, *, length: str, group: bool) -> Script:
    """The typed script of a text ``render_text`` made; a bad marker is a MarkerError at its
    line in the rendered text (template code wrote it, so the template line is unknown)."""
    segments = markers.parse(text, source=f"{exercise.path} (rendered text)", quote=False)
    meta = {"summary": exercise.summary, "lengths": exercise.lengths, "group": group,
            "length": length, "variant": VARIANTS[group]}
    return Script(title=exercise.title, segments=_template_lines(segments, exercise.body),
                  source=exercise.name, meta=meta)


def compile_body(body: str, source: str) -> jinja2.Template:
    """The template body compiled in the sandbox; a syntax error is a TemplateError at its line.

    The template is named by its file's real path: what it includes is found from there."""
    try:
        return _compiled(body, sandbox.real_path(source))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax: {exc.message}", source=source, line=exc.lineno) from None


@functools.lru_cache(maxsize=64)
def _compiled(body: str, name: str) -> jinja2.Template:
    # Compiling costs ~25 ms a template; `list` renders each exercise at every length.
    env = sandbox.ENV
    return env.template_class.from_code(env, env.compile(body, name, name), env.make_globals(None), None)


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
    """Client text made safe to speak: one line, spoken as written ([ and a tag-like < escaped,
    so nothing in it is read as a marker or a tag), no trailing stop to double up."""
    if isinstance(value, list):
        return [v for v in (_narratable(item) for item in value) if v]
    if not isinstance(value, str):
        return value
    return markers.escape(clean_text(value).rstrip(".,;: "))


def _runtime_error(exc: Exception, exercise: Exercise, state: sandbox.Render) -> Exception:
    """The failure as a TemplateError at the innermost template line it happened on."""
    source, line = str(exercise.path), None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in state.files:
            source, line = state.files[frame.filename], frame.lineno
    if isinstance(exc, sandbox.Refused):
        return TemplateError(exc.message, source=source, line=line, hint=exc.hint)
    if isinstance(exc, jinja2.TemplateNotFound):
        return TemplateError("include, import or extends names a template file that does not exist",
                             source=source, line=line,
                             hint="name it relative to the template, e.g. {% include 'parts/opening.txt.j2' %}")
    if isinstance(exc, RecursionError):
        return TemplateError("recursion deeper than Python allows (a template that never stops "
                             "calling itself)", source=source, line=line,
                             hint="give the macro, loop or include a condition that ends it")
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined: {exc.message}"
        hint = "declare it under [params] or check the spelling"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        message, hint = f"not allowed in a template: {exc}", "templates may use only their values and helpers"
    elif isinstance(exc, _HelperError):
        message, hint = str(exc), None
    else:
        message, hint = f"{type(exc).__name__}: {exc}", None
    return TemplateError(message, source=source, line=line, hint=hint)


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
