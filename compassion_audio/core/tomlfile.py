"""TOML files: parse with errors at file:line:column, and find the line of a key (tomllib keeps none)."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from compassion_audio.core.errors import ProfileError, SourceError

BOM = "\ufeff"
"""A UTF-8 byte-order mark, as Windows editors write it: not part of the TOML."""
MAX_DEPTH = 20
"""How deep tables and lists may nest in the files we read (ours nest 2 deep)."""
_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")


def parse_toml(text: str, *, source: str, error: type[SourceError] = ProfileError,
               first_line: int = 1, part: str = "") -> dict[str, Any]:
    """Parse TOML text; a syntax error is ``error`` at source:line:column.

    ``first_line`` is the file line the text starts on and ``part`` names the part of the
    file it is (front matter starts on line 2 of a template).
    """
    text = text.removeprefix(BOM)
    what = f"{part} is not valid TOML" if part else "not valid TOML"
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tables or arrays nested hundreds deep
        raise error(_nested(part), source=source) from None
    except tomllib.TOMLDecodeError as exc:
        message, line, column = _position(exc, text)
        raise error(f"{what}: {message}", source=source, line=line + first_line - 1,
                    column=column, hint="check quotes and = signs") from None
    except ValueError:  # Python's int() refuses a number of more than 4300 digits
        long_number = re.search(r"[0-9_]{4300,}", text)
        line = text.count("\n", 0, long_number.start()) + 1 if long_number else None
        raise error(f"{what}: a number is too long", source=source,
                    line=None if line is None else line + first_line - 1,
                    hint="no setting needs more than a few digits") from None
    if _too_deep(data):
        raise error(_nested(part), source=source)
    return data


def _nested(part: str) -> str:
    return f"{part + ': ' if part else ''}tables or lists nested more than {MAX_DEPTH} deep"


def _too_deep(data: Any) -> bool:
    """Tables and lists nested deeper than MAX_DEPTH (walked without recursion)."""
    level = [data]
    for _ in range(MAX_DEPTH):
        level = [child for node in level
                 for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, (dict, list))]
        if not level:
            return False
    return True


def load_toml(path: str | Path, *, error: type[SourceError] = ProfileError) -> dict[str, Any]:
    """Read and parse a UTF-8 TOML file (a byte-order mark is fine); problems are ``error``."""
    text = read_toml_text(path, error=error)
    return parse_toml(text, source=str(path), error=error)


def read_toml_text(path: str | Path, *, error: type[SourceError] = ProfileError) -> str:
    """The text of a TOML file without its byte-order mark; a missing or unreadable file is ``error``."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error("file not found", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start + 1} cannot be read)", source=str(path),
                    hint="save it as UTF-8") from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from None


def line_of_key(text: str, key: str, table: str | None = None) -> int | None:
    """1-based line where ``key`` (dotted, inside ``[table]`` when given) is set.

    Finds ``key = ...`` under its table header, as a dotted or quoted key, or a
    ``[table]`` header of that name. When the key itself is not written out (it sits
    in an inline table), the line of the nearest enclosing key is returned.
    """
    target = _pieces([table, key] if table else [key])
    current: list[str] = []
    found: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.removeprefix(BOM).splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _pieces(re.findall(_PART, header.group(1)))
            found.setdefault(tuple(current), number)
        else:
            assigned = _KEY.match(line)
            if assigned:
                found.setdefault(tuple(current + _pieces(re.findall(_PART, assigned.group(1)))), number)
        if tuple(target) in found:
            return found[tuple(target)]
    for end in range(len(target) - 1, 0, -1):
        if tuple(target[:end]) in found and (table is None or end > len(_pieces([table]))):
            return found[tuple(target[:end])]
    return None


def _pieces(parts: list[str]) -> list[str]:
    """Key parts split at every dot, quotes removed: ``["a", '"b.c"']`` -> ["a", "b", "c"], so
    a key written ``"place.sight"`` and one written ``place.sight`` are found alike."""
    return [piece.strip() for part in parts for piece in part.strip().strip("\"'").split(".")
            if piece.strip()]


def _position(exc: Exception, text: str) -> tuple[str, int, int | None]:
    """(message without its position, line, column) of a decode error."""
    line = getattr(exc, "lineno", None)  # Python 3.14 keeps them as attributes
    column = getattr(exc, "colno", None)
    message = str(getattr(exc, "msg", None) or exc)
    at = _AT.search(message)
    if at:
        message = message[:at.start()]
        if line is None and at.group(1):
            line, column = int(at.group(1)), int(at.group(2))
    if line is None:  # "at end of document": the last line
        line = max(1, len(text.splitlines()))
    return message, line, column
