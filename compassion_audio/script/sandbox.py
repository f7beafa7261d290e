"""The sandbox. Jinja's SandboxedEnvironment keeps templates from Python's internals; on top
of it: include, import and extends reach only files in the exercise's own folder tree and
the built-in exercises, never a template already being rendered; macros and recursive loops
nest at most MAX_TEMPLATE_DEPTH deep; every loop turn, filter, call and operator is charged
to a budget of MAX_TEMPLATE_STEPS a render; and no value or output grows past
MAX_SCRIPT_CHARS (``*``, ``**``, ``%``, format, join, center, indent, replace... are sized
before they run). Each refusal is a TemplateError at the template line, naming the limit.
"""
from __future__ import annotations

import functools
import math
import re
import string
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from compassion_audio.core.limits import MAX_SCRIPT_CHARS, MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_STEPS
from compassion_audio.core.text import join_and


BUILTIN_DIR = Path(__file__).resolve().parent / "exercises"
"""The folder of the exercises shipped with the package."""
ITEMS_PER_STEP = 1
"""A render step is one loop turn, or this many characters or items handled or written."""
_SIZED = (str, list, tuple, dict, set, frozenset, range)


class Refused(Exception):
    """A template reached a limit or a place it may not go, while rendering."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass
class Render:
    """What one render may still do, and the template files in it."""

    roots: tuple[Path, ...]
    files: dict[str, str]
    """Compiled template file name -> the name errors give it (the exercise as the user named it)."""
    steps: float = 0.0
    depth: int = 0


RENDER: ContextVar[Render | None] = ContextVar("compassion_audio_template_render", default=None)


@functools.lru_cache(maxsize=256)
def real_path(source: str) -> str:
    return str(Path(source).resolve())


def allowed_roots(path: Path) -> tuple[Path, ...]:
    return Path(real_path(str(path))).parent, BUILTIN_DIR


def hours(seconds: float) -> str:
    hours = seconds / 3600
    return "1 hour" if hours == 1 else f"{hours:g} hours"


def size_words(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _too_long() -> Refused:
    return Refused(f"the script would be longer than {MAX_SCRIPT_CHARS:,} characters "
                    "(the most text a script may hold)", "look for a loop that repeats its text too often")


def _too_big() -> Refused:
    return Refused(f"the template would make a value longer than {MAX_SCRIPT_CHARS:,} characters or items "
                    "(the most text a script may hold)",
                    "look for text or a list multiplied, padded or repeated by a large number")


def streamed(pieces) -> str:
    """The output of ``template.generate()``, stopped as soon as it passes MAX_SCRIPT_CHARS
    (the refusal is thrown in where the template is, so it names the line)."""
    kept, total = [], 0
    try:
        for piece in pieces:
            total += len(piece)
            if total > MAX_SCRIPT_CHARS:
                pieces.throw(_too_long())
                raise _too_long()
            kept.append(piece)
    finally:
        pieces.close()
    return "".join(kept)


def _charge(steps: float) -> None:
    state = RENDER.get()
    if state is None:
        return
    state.steps += steps
    if state.steps > MAX_TEMPLATE_STEPS:
        raise Refused(f"the template takes more than {MAX_TEMPLATE_STEPS:,} steps to render "
                       "(the most a render may take)",
                       "look for a loop inside a loop, or a loop over a very long list or text")


def _size(value: object, cap: int = MAX_SCRIPT_CHARS + 1, depth: int = 0) -> int:
    """Characters or items in ``value``: a text's length; a list's items, or the characters and
    items of what it holds if more (as its text would repeat them). Counting stops past ``cap``,
    so it costs no more than the limit it checks."""
    if isinstance(value, (str, range)):
        return len(value)
    if not isinstance(value, _SIZED):
        return 1
    nested = 0
    if depth < 20:
        for item in (value.items() if isinstance(value, dict) else value):
            if nested > cap:
                break
            if isinstance(item, str):
                nested += len(item)
            elif isinstance(item, _SIZED):
                nested += _size(item, cap - nested, depth + 1)
    return max(len(value), nested)


def _checked(value: object) -> object:
    """``value``, charged by its size, unless it is over the limit."""
    size = _size(value)
    if size > MAX_SCRIPT_CHARS:
        raise _too_big()
    _charge(size / ITEMS_PER_STEP)
    return value


def _counted(iterable: Iterable, weight: float) -> Iterator:
    """``iterable``, each item charged ``weight`` steps."""
    state = RENDER.get()
    if state is None:
        yield from iterable
        return
    for item in iterable:
        state.steps += weight
        if state.steps > MAX_TEMPLATE_STEPS:
            _charge(0)  # refuses, naming the limit
        yield item


def _listed(items: Iterable) -> list:
    """``items`` as a list, each item charged as it is taken from a generator."""
    return list(items) if isinstance(items, (list, tuple)) else list(_counted(items, 1 / ITEMS_PER_STEP))


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _format_estimate(fmt: str, values: Iterable, percent: bool) -> int:
    """Most characters ``fmt`` formatted with ``values`` can give: widths and precisions of
    the format and of its int arguments (``%*d``, ``{:{w}}``) count as written."""
    values = list(values)
    numbers = [_int(v) for v in values]
    if percent:
        specs = re.findall(r"%[-#0 +]*(\d*)(?:\.(\d*))?", fmt)
        runs = [run for spec in specs for run in spec if run]
    else:
        try:
            runs = [run for _, _, spec, _ in _FORMATTER.parse(fmt) if spec for run in re.findall(r"\d+", spec)]
        except ValueError:
            runs = []
    if any(len(run) > 9 for run in runs):
        return MAX_SCRIPT_CHARS + 1
    numbers += [int(run) for run in runs]
    return len(fmt) + sum(_size(v) for v in values) + sum(n for n in numbers if n > 0)


def _join_estimate(items: list, separator: object) -> int:
    return _size(items) + _size(separator) * max(0, len(items) - 1)


def _estimate(name: str, value: object, args: tuple, kwargs: dict) -> int | None:
    """The most characters or items filter or str/list method ``name`` can make of ``value``
    with ``args``, for the operations that can make far more than they are given."""
    def arg(index: int, key: str, default: object = None) -> object:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if not isinstance(value, (str, list, dict, set)):
        return None
    size = _size(value)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(size, _int(arg(0, "width", 80)))
    if name == "indent" and isinstance(value, str):
        width = arg(0, "width", 4)
        width = len(width) if isinstance(width, str) else _int(width)
        return size + width * (value.count("\n") + 1)
    if name == "expandtabs" and isinstance(value, str):
        return size + _int(arg(0, "tabsize", 8)) * value.count("\t")
    if name == "replace" and isinstance(value, str):
        old, new = arg(0, "old", ""), arg(1, "new", "")
        if not isinstance(old, str) or not isinstance(new, str):
            return None
        times = value.count(old) if old else size + 1
        count = arg(2, "count", None)
        if isinstance(count, int) and count >= 0:
            times = min(times, count)
        return size + times * len(new)
    if name == "wordwrap" and isinstance(value, str):
        wrap = arg(3, "wrapstring", "\n")
        return size + (size // max(1, _int(arg(0, "width", 79), 1)) + 1) * _size(wrap or "\n")
    if name in ("format", "format_map") and isinstance(value, str):
        return _format_estimate(value, list(args) + list(kwargs.values()) + (
            list(args[0].values()) if name == "format_map" and args and isinstance(args[0], dict) else []),
            percent=name == "format" and not re.search(r"\{", value))
    if name in ("extend", "update"):
        return size + sum(_size(a) for a in args)
    return None


def _binop_estimate(operator: str, left: object, right: object) -> int | None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                return _size(seq) * max(0, times)
        if isinstance(left, int) and isinstance(right, int):
            return int((abs(left).bit_length() + abs(right).bit_length()) * 0.302)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            return int(right * math.log10(abs(left)))
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            return _size(left) + _size(right)
    elif operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else (right.values() if isinstance(right, dict) else (right,))
        return _format_estimate(left, values, percent=True)
    return None


def _guarded_filter(name: str, func: Callable) -> Callable:
    """``func`` charged to the budget and sized before it runs; never folded at compile time
    (the limits apply while a template renders)."""
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        if RENDER.get() is None:
            raise nodes.Impossible()
        if len(args) <= offset:
            return func(*args, **kwargs)
        value, rest = args[offset], args[offset + 1:]
        if name == "attr" and rest and str(rest[0]).startswith("_"):
            # The sandbox would hand back an undefined value whose error names Jinja's internals.
            raise jinja2.exceptions.SecurityError(f"access to attribute {str(rest[0])!r} is unsafe.")
        if name in ("join", "sum") and not isinstance(value, (str, dict)):
            try:
                value = _listed(value)
            except TypeError:
                pass  # not iterable: the filter says so
            args = (*args[:offset], value, *rest)
            if name == "join":
                estimate = _join_estimate(value, args[offset + 1] if len(rest) else kwargs.get("d", ""))
            else:
                estimate = sum(_size(item) for item in value) if all(
                    isinstance(item, (list, tuple)) for item in value) else None
        else:
            estimate = _estimate(name, value, rest, kwargs)
        if estimate is not None and estimate > MAX_SCRIPT_CHARS:
            raise _too_big()
        _charge(1 + (_size(value) + sum(_size(a) for a in rest)) / ITEMS_PER_STEP)
        result = func(*args, **kwargs)
        if isinstance(result, Iterator):
            return _counted(result, 1 / ITEMS_PER_STEP)
        return _checked(result)

    return guarded


def _loop_steps(iterable: Iterable, weight: float) -> Iterator:
    """Every ``for`` loop's iterable: each turn costs ``weight`` steps (1 + the characters of its text)."""
    if RENDER.get() is None:
        raise nodes.Impossible()
    return _counted(iterable, weight)


def _said(value: object) -> object:
    """Every ``{{ }}`` output: charged by its size, also inside macros and {% set %} blocks."""
    if RENDER.get() is None:
        raise nodes.Impossible()
    return _checked(value)


def _concat(parts: list) -> str:
    """The ``~`` operator, sized before it joins."""
    if RENDER.get() is None:
        raise nodes.Impossible()
    texts = [str(part) for part in parts]
    size = sum(len(text) for text in texts)
    if size > MAX_SCRIPT_CHARS:
        raise _too_big()
    _charge(1 + size / ITEMS_PER_STEP)
    return "".join(texts)


def _literal_chars(body: list) -> int:
    """Characters of template text in ``body``, inner loops and macros left out (they count their own)."""
    total, stack = 0, list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, (nodes.For, nodes.Macro, nodes.CallBlock)):
            stack.extend(node.iter_child_nodes())
    return total


def _filtered(node: nodes.Expr, name: str, *args: object) -> nodes.Filter:
    return nodes.Filter(node, name, [nodes.Const(a, lineno=node.lineno) for a in args], [], None, None,
                        lineno=node.lineno)


class _Metered(NodeTransformer):
    """The parsed template with every loop, output and ``~`` going through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filtered(node.iter, "_loop_steps", 1 + _literal_chars(node.body) / ITEMS_PER_STEP)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [n if isinstance(n, nodes.TemplateData) else _filtered(n, "_said") for n in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filtered(nodes.List(node.nodes, lineno=node.lineno), "_concat")


def _active_templates(state: Render) -> list[str]:
    """The template files being rendered now (their root code is on the stack), innermost first."""
    active, frame = [], sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "root" and code.co_filename in state.files:
            active.append(code.co_filename)
        frame = frame.f_back
    return active


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _include_path(name: object, parent: str) -> str:
    """The file an include, import or extends names, relative to the template naming it:
    inside the allowed folders, existing, not being rendered already, not nested too deep."""
    state = RENDER.get()
    if state is None:
        raise Refused("include, import and extends work only while a template renders")
    path = (Path(parent).parent / str(name)).resolve()
    if not any(_within(path, root) for root in state.roots):
        raise Refused("include, import or extends reaches outside the template folders",
                       "only files in the exercise's own folder, or a folder below it, and the "
                       "built-in exercises can be included")
    if not path.is_file():
        raise jinja2.TemplateNotFound(str(name))  # `{% include ... ignore missing %}` skips it
    key, active = str(path), _active_templates(state)
    if key in active:
        message = ("the template includes itself" if key == parent
                   else f"the template includes {path.name}, which includes it back")
        raise Refused(message, "an include, import or extends may not lead back to a template in use")
    if len(active) >= MAX_TEMPLATE_DEPTH:
        raise Refused(f"includes nested deeper than {MAX_TEMPLATE_DEPTH}")
    _charge(1 + path.stat().st_size / ITEMS_PER_STEP)
    state.files.setdefault(key, key)
    return key


class _FolderLoader(jinja2.BaseLoader):
    """Loads the files ``_include_path`` allowed (named by their real path), as exercises are
    loaded: size and encoding checked, front matter left out, markers checked."""

    def get_source(self, environment, template):
        from compassion_audio.script.library import load_exercise  # library imports this module

        path = Path(template)
        body = load_exercise(path).body
        mtime = path.stat().st_mtime_ns
        return body, template, lambda: path.exists() and path.stat().st_mtime_ns == mtime


class _Sandbox(SandboxedEnvironment):
    """The sandbox with the limits above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source, name, filename):
        tree = _Metered().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def join_path(self, template, parent):
        return _include_path(template, parent)

    def call_binop(self, context, operator, left, right):
        estimate = _binop_estimate(operator, left, right)
        if estimate is not None and estimate > MAX_SCRIPT_CHARS:
            raise _too_big()
        _charge(1 + (_size(left) + _size(right)) / ITEMS_PER_STEP)
        return _checked(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, name = value.__self__, value.__name__

        def sized(*args, **kwargs):
            estimate = _estimate(name, text, args, kwargs)
            if estimate is not None and estimate > MAX_SCRIPT_CHARS:
                raise _too_big()
            return wrapped(*args, **kwargs)

        return sized

    def call(self, context, obj, /, *args, **kwargs):  # noqa: D102 - every call a template makes
        state = RENDER.get()
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, (str, list, dict, set)):
            name = getattr(obj, "__name__", "")
            if name == "join" and isinstance(owner, str) and args:
                args = (_listed(args[0]), *args[1:])
                estimate = _join_estimate(args[0], owner)
            else:
                estimate = _estimate(name, owner, args, kwargs)
            if estimate is not None and estimate > MAX_SCRIPT_CHARS:
                raise _too_big()
        _charge(1 + (_size(owner) + sum(_size(a) for a in args)) / ITEMS_PER_STEP)
        nested = state is not None and isinstance(obj, (Macro, LoopContext))
        if nested:
            if isinstance(obj, LoopContext) and args:
                args = (_counted(args[0], 1.0), *args[1:])
            if state.depth >= MAX_TEMPLATE_DEPTH:
                raise Refused(f"recursion deeper than {MAX_TEMPLATE_DEPTH} (a macro or recursive loop "
                               "that keeps calling itself)", "give it a condition that ends it")
            state.depth += 1
        try:
            result = super().call(context, obj, *args, **kwargs)
        finally:
            if nested:
                state.depth -= 1
        if isinstance(owner, (list, dict, set)) and _size(owner) > MAX_SCRIPT_CHARS:
            raise _too_big()
        return _checked(result)


_FORMATTER = string.Formatter()
ENV = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                trim_blocks=True, lstrip_blocks=True, loader=_FolderLoader())
del ENV.globals["lipsum"]  # a lorem-ipsum generator: nothing a script needs, and unbounded
ENV.filters["join_and"] = join_and
ENV.filters.update({name: _guarded_filter(name, func) for name, func in ENV.filters.items()})
ENV.filters.update(_loop_steps=_loop_steps, _said=_said, _concat=_concat)
