"""Which template file line each line of a rendered exercise comes from (Jinja keeps no such map)."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Mapping

from compassion_audio.core.errors import CompassionAudioError
from compassion_audio.core.text import clean_text
from compassion_audio.script.templates import compile_body, render_text

_LINE_TAG = "\ue000{}\ue001"
"""A file line number between two private-use characters, which no template or value holds."""
_LINE_TAGS = re.compile("\ue000(\\d+)\ue001")


def template_lines(exercise, values: Mapping[str, object], *, length: str, group: bool,
                   text: str) -> list[int | None] | None:
    """The template file line each line of ``text`` (render_text's output) comes from.

    The template is rendered again with its line number tagged before the first word of
    every line of its text and before every ``{{``; each rendered line takes its first tag.
    None when that rendering does not match ``text`` once the tags are taken out (template
    code that looks at its own text); a line with no tag is None.
    """
    tagged = _tagged_body(exercise.body, compile_body(exercise.body, str(exercise.path)).environment)
    if tagged is None:
        return None
    try:
        marked = render_text(replace(exercise, body=tagged), values, length=length, group=group)
    except CompassionAudioError:
        return None
    kept: list[tuple[str, int | None]] = []
    for line in marked.split("\n"):
        found = _LINE_TAGS.findall(line)
        kept.append((clean_text(_LINE_TAGS.sub("", line)), int(found[0]) if found else None))
    # tidy_lines' blank lines: none at either end, never two in a row.
    while kept and not kept[0][0]:
        kept.pop(0)
    while kept and not kept[-1][0]:
        kept.pop()
    kept = [k for i, k in enumerate(kept) if k[0] or (i and kept[i - 1][0])]
    if "\n".join(words for words, _ in kept) + "\n" != text:
        return None
    return [line for _, line in kept]


def _tagged_body(body: str, env) -> str | None:
    """``body`` with ``\ue000LINE\ue001`` before each line's first word of text and each ``{{``.

    Tags go only inside the text Jinja outputs, next to a word or a ``{{``, so whitespace
    control (``-%}``, trim_blocks, lstrip_blocks) strips exactly what it strips without them.
    """
    pieces, cursor = [], 0
    for line, kind, value in env.lex(body):
        at = body.find(value, cursor)
        if at < 0 or body[cursor:at].strip():
            return None
        pieces.append(body[cursor:at])
        cursor = at + len(value)
        if kind == "data":
            value = "\n".join(_tag_first_word(part, line + i) for i, part in enumerate(value.split("\n")))
        elif kind == "variable_begin" and value == "{{":
            value = _LINE_TAG.format(line) + value
        pieces.append(value)
    return "".join(pieces) + body[cursor:]


def _tag_first_word(text: str, line: int) -> str:
    stripped = text.lstrip()
    if not stripped:
        return text
    return text[:len(text) - len(stripped)] + _LINE_TAG.format(line) + stripped
