"""The exercise library: find, list and load exercise templates (front matter, built-in and user folders)."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from compassion_audio.core.errors import ExerciseNotFound, TemplateError
from compassion_audio.core.tomlfile import BOM, line_of_key, parse_toml
from compassion_audio.script import markers
from compassion_audio.script.params import Param, parse_params
from compassion_audio.script.sandbox import BUILTIN_DIR
from compassion_audio.script.templates import LENGTHS, compile_body, read_template

ENV_VAR = "COMPASSION_AUDIO_EXERCISES"
FRONT_KEYS = ("title", "summary", "lengths", "group", "params")
FRONT_FENCE = "+++"
"""The line that opens and closes a template's front matter."""
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


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
    front: str = field(default="", repr=False)
    """The front matter's TOML text; it starts on file line ``front_line``."""
    front_line: int = 2
    """File line of the front matter's first TOML line (the line after the opening +++)."""

    @property
    def default_length(self) -> str:
        return "standard" if "standard" in self.lengths else self.lengths[0]

    def key_line(self, key: str, table: str | None = None) -> int | None:
        """File line of a front-matter key (``table="params"`` for a parameter), if written out."""
        return _front_line(self.front, self.front_line, key, table)


def builtin_dir() -> Path:
    """The folder of the exercises shipped with the package."""
    return BUILTIN_DIR


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
    return [load_exercise(path) for path in exercise_files(extra_dirs).values()]


def exercise_files(extra_dirs: Sequence[Path] = ()) -> dict[str, Path]:
    """The file of every exercise ``list_exercises`` loads, by name, sorted by name - found
    without reading them (``list`` reuses what it learnt of a file it has seen before)."""
    found = _available(exercise_dirs(extra_dirs))
    return {name: found[name] for name in sorted(found)}


def load_exercise(path: Path) -> Exercise:
    """Read and validate a template file: front matter, Jinja syntax and literal markers."""
    path = Path(path)
    source = str(path)
    text = read_template(path).removeprefix(BOM)
    front, front_line, body_line = _split_front(text, source)
    lines = text.splitlines()
    body = "\n" * (body_line - 1) + "\n".join(lines[body_line - 1:]) + ("\n" if text.endswith("\n") else "")
    meta = _front_matter(front, front_line, source)
    name = exercise_name(path)
    exercise = Exercise(
        name=name, path=path, title=meta.get("title") or name.replace("-", " ").capitalize(),
        summary=meta.get("summary", ""), lengths=tuple(meta.get("lengths", ["standard"])),
        group=meta.get("group", False), params=meta.get("params", {}),
        builtin=path.resolve().parent == builtin_dir(), body=body, body_line=body_line, front=front,
        front_line=front_line)
    compile_body(body, source)
    blanked = _JINJA.sub(lambda m: re.sub(r"[^\n]", markers.OPAQUE, m.group()), body)
    markers.validate(blanked, source=source)
    return exercise


def _front_line(front: str, front_line: int, key: str, table: str | None) -> int | None:
    """File line of a front-matter key, the front matter's TOML starting on ``front_line``."""
    line = line_of_key(front, key, table)
    return None if line is None else line + front_line - 1


def _available(dirs: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in dirs:
        if directory.is_dir():
            for path in sorted(directory.glob("*.j2")):
                found.setdefault(exercise_name(path), path)
    return found


def _split_front(text: str, source: str) -> tuple[str, int, int]:
    """(TOML text, its first file line, first body line); front matter sits between two
    ``+++`` lines, after nothing but blank lines and Jinja ``{# comments #}``."""
    lines = text.splitlines()
    opening = _front_start(lines)
    if opening is None:
        _no_stray_front(lines, source)
        return "", 2, 1
    for index in range(opening + 1, len(lines)):
        if lines[index].strip() == FRONT_FENCE:
            return "\n".join(lines[opening + 1:index]), opening + 2, index + 2
    raise TemplateError("front matter is not closed", source=source, line=opening + 1,
                        hint="end it with a line of +++")


def _outside_comments(lines: list[str]):
    """(index, text outside Jinja comments) for each line; a comment may span lines."""
    in_comment = False
    for index, line in enumerate(lines):
        kept, rest = [], line
        while rest:
            if in_comment:
                _, closed, rest = rest.partition("#}")
                in_comment = not closed
            else:
                before, opened, rest = rest.partition("{#")
                kept.append(before)
                in_comment = bool(opened)
        yield index, "".join(kept)


def _front_start(lines: list[str]) -> int | None:
    """Index of the opening ``+++`` when only blank lines and Jinja comments come before it."""
    for index, outside in _outside_comments(lines):
        if outside.strip():
            return index if outside.strip() == FRONT_FENCE else None
    return None


def _no_stray_front(lines: list[str], source: str) -> None:
    """A ``+++`` line after the text has begun would be spoken, and its TOML with it."""
    for index, outside in _outside_comments(lines):
        if outside.strip() == FRONT_FENCE:
            raise TemplateError("front matter must come first", source=source, line=index + 1,
                                hint="only blank lines and {# comments #} may come before its +++ line")


def _front_matter(front: str, front_line: int, source: str) -> dict[str, Any]:
    data = parse_toml(front, source=source, error=TemplateError, first_line=front_line,
                      part="front matter")

    def failing(table: str | None):
        def fail(key: str, message: str, hint: str | None = None) -> TemplateError:
            # A key not written out (inside an inline table) points at the opening +++ line.
            line = _front_line(front, front_line, key, table) or front_line - 1
            return TemplateError(message, source=source, line=line, hint=hint)
        return fail

    fail = failing(None)
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
    data["params"] = parse_params(data.get("params", {}), "", failing("params"))
    return data
