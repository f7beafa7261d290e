"""Template parameters: declarations from front matter, type checks and command-line coercion."""
from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Mapping

from compassion_audio.core.errors import ParameterError
from compassion_audio.core.limits import MAX_VALUE_CHARS

PARAM_TYPES = ("str", "int", "float", "bool", "list")
PARAM_KEYS = ("type", "default", "help", "min", "max")
_TRUE, _FALSE = ("yes", "true", "1", "on"), ("no", "false", "0", "off")


@dataclass(frozen=True)
class Param:
    """One declared template parameter."""

    name: str
    """Dotted name, e.g. ``place.sight``."""
    type: str
    """str, int, float, bool or list (of strings)."""
    default: object
    required: bool
    help: str
    min: float | None
    max: float | None


def parse_params(table: dict, prefix: str, fail) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for key, spec in table.items():
        name = prefix + key
        nested = isinstance(spec, dict) and spec and all(isinstance(v, dict) for v in spec.values())
        if nested and not set(spec) & set(PARAM_KEYS):
            params.update(parse_params(spec, name + ".", fail))
        else:
            params[name] = _param(name, spec, fail)
    for name in params:
        if any(other.startswith(name + ".") for other in params):
            raise fail(name, f"parameter '{name}' clashes with a dotted parameter under it")
    return params


def _param(name: str, spec: object, fail) -> Param:
    if not isinstance(spec, dict):
        raise fail(name, f"parameter '{name}' must be a table",
                   f'write {name} = {{ type = "str", default = "", help = "..." }}')
    for key in spec:
        if key not in PARAM_KEYS:
            raise fail(name, f"unknown key '{key}' in parameter '{name}'", f"keys are {', '.join(PARAM_KEYS)}")
    kind = spec.get("type", "str")
    if kind not in PARAM_TYPES:
        raise fail(name, f"unknown type {kind!r} for parameter '{name}'", f"types are {', '.join(PARAM_TYPES)}")
    if not isinstance(spec.get("help", ""), str):
        raise fail(name, f"help for '{name}' must be text in quotes")
    bounds = [spec.get(k) for k in ("min", "max")]
    for bound in (b for b in bounds if b is not None):
        if kind not in ("int", "float") or isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise fail(name, f"min/max for '{name}' need a number and an int or float parameter")
    param = Param(name, kind, spec.get("default"), "default" not in spec, spec.get("help", ""),
                  *[None if b is None else float(b) for b in bounds])
    if not param.required:
        default = check_type(param, param.default)
        if default is None:
            raise fail(name, f"default for '{name}' must be {TYPE_WORDS[kind]}, "
                             f"not {type(param.default).__name__} {param.default!r}")
        if _out_of_range(param, default):
            raise fail(name, f"default for '{name}' is outside min/max")
        param = replace(param, default=default)
    return param


TYPE_WORDS = {"str": "text", "int": "a whole number", "float": "a number",
               "bool": "true or false", "list": "a list of text"}


def check_type(param: Param, value: object) -> object | None:
    """The value in the parameter's type, or None when it is of another type."""
    if param.type == "str":
        return value if isinstance(value, str) else None
    if param.type == "bool":
        return value if isinstance(value, bool) else None
    if param.type == "list":
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return list(value) if ok else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if param.type == "int":
        return value if isinstance(value, int) else None
    return float(value) if math.isfinite(value) else None


def _out_of_range(param: Param, value: object) -> bool:
    if param.type not in ("int", "float"):
        return False
    return (param.min is not None and value < param.min) or (param.max is not None and value > param.max)


def control_character(text: str) -> str | None:
    """The first control character in ``text`` other than tab and line breaks, as ``U+0007``
    (None if there is none). Other invisible characters - zero-width joiners, right-to-left
    marks, combining accents, emoji - are part of how people write names and are kept."""
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            return f"U+{ord(ch):04X}"
    return None


def from_string(param: Param, text: str, source: str) -> object:
    if len(text) > MAX_VALUE_CHARS:
        raise ParameterError(f"'{param.name}' is {len(text)} characters long; at most {MAX_VALUE_CHARS}",
                             source=source, hint="a short phrase reads best" if param.type in ("str", "list") else None)
    control = control_character(text)
    if control:
        raise ParameterError(f"'{param.name}' contains the control character {control}", source=source,
                             hint="remove it; tabs and line breaks are fine")
    value: object = None
    if param.type == "str":
        value = text
    elif param.type == "list":
        value = [item.strip() for item in text.split(";" if ";" in text else ",") if item.strip()]
    elif param.type == "bool" and text.strip().lower() in _TRUE + _FALSE:
        value = text.strip().lower() in _TRUE
    elif param.type == "int" and re.fullmatch(r"\s*[-+]?[0-9]{1,15}\s*", text):
        value = int(text)
    elif param.type == "float" and re.fullmatch(r"\s*[-+]?([0-9]{1,15}(\.[0-9]*)?|\.[0-9]+)\s*", text):
        value = float(text)
    if value is None:
        raise ParameterError(f"'{param.name}' must be {TYPE_WORDS[param.type]}", source=source,
                             hint="use yes or no" if param.type == "bool" else None)
    return in_range(param, value, source)


def in_range(param: Param, value: object, source: str) -> object:
    if _out_of_range(param, value):
        low = "" if param.min is None else f" from {param.min:g}"
        high = "" if param.max is None else f" up to {param.max:g}"
        raise ParameterError(f"'{param.name}' is {value}, outside its range", source=source,
                             hint=f"give a value{low}{high}")
    return value


def coerce_values(exercise, raw: Mapping[str, str], source: str = "-s") -> dict[str, object]:
    """Command-line strings to typed values for ``exercise``'s parameters, by dotted name
    (lists split on ';', else ',')."""
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


def describe(param: Param) -> dict[str, object]:
    """A parameter as plain JSON data: name, type, default (None when required), required,
    help, min and max (None when unbounded)."""
    return {"name": param.name, "type": param.type, "default": None if param.required else param.default,
            "required": param.required, "help": param.help, "min": param.min, "max": param.max}


def default_text(param: Param) -> str:
    """The default as a person would type it after ``-s name=``: ``5``, ``yes``, ``a; b``
    (``(empty)`` for empty text or list, ``(required)`` when there is none)."""
    if param.required:
        return "(required)"
    value = param.default
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        value = "; ".join(value)
    return str(value) if value != "" else "(empty)"
