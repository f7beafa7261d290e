"""Pause-marker grammar: narration text with markers -> typed segments.

Markers (one line each, case-insensitive names):

- ``[pause 30s]``, ``[pause 1m 30s]``, ``[pause 2.5s]``, ``[pause 500ms]``,
  ``[pause 30]`` (a bare number is seconds) -> ``Pause``
- ``<break time="3s"/>`` (SSML; single quotes and a missing slash are fine) -> ``Pause``
- ``[breathe 2m]``, ``[breathe 6 breaths]``, with options ``rate=5.5``
  (breaths per minute) and ``ratio=4:6`` (in:out) -> ``Breathe``
- ``[bell]`` -> ``Bell``; ``[chapter Arriving]`` -> ``Chapter``

``[[`` is a literal ``[`` and ``<<`` before a letter, ``/``, ``!`` or ``?`` a literal ``<``
(so ``<</b>`` is the text ``</b>``). Any other ``[word ...]``, an unclosed ``[``, a bad
duration or any other ``<tag>`` (a speech engine would read it aloud) is a
``MarkerError`` naming the source, the 1-based line and column of the ``[`` or
``<``, and what to write instead. Speech between markers becomes one ``Speech``
per sentence; the first sentence after a blank line or a marker starts a paragraph.
"""
from __future__ import annotations

import bisect
import difflib
import math
import re
from typing import Iterator

from compassion_audio.core.errors import MarkerError, ParameterError
from compassion_audio.core.limits import MAX_PAUSE_SECONDS
from compassion_audio.core.ratio import parse_ratio
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Segment, Speech
from compassion_audio.core.text import clean_text, sentence_spans

MARKERS = ("pause", "breathe", "bell", "chapter")
MAX_SECONDS = MAX_PAUSE_SECONDS
"""The longest pause or breathing stretch: anything longer is a typo, not a practice."""
MAX_BREATHS_PER_MIN = 30.0
MAX_BREATHS = 2000
OPAQUE = "\x00"
"""Stands for template code in ``validate``: markers containing it are skipped."""

DURATION_HINT = "write e.g. 30s, 1m 30s, 2.5s or 500ms"
MARKER_HINT = ("markers are [pause 30s], [breathe 2m], [bell] and [chapter Title]; "
               "write [[ for a literal [")
_UNITS = {
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")
_BREAK = re.compile(r"""<break\s+time\s*=\s*(["'])([^"'<>]*)\1\s*/?\s*>""", re.IGNORECASE)
_TAG_START = re.compile(r"<[A-Za-z/!?]")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")


class _Problem(Exception):
    """A marker problem before its place in the source is known: ``message`` may quote the
    marker, ``plain`` (and ``plain_hint``) never do."""

    def __init__(self, message: str, hint: str | None = None, offset: int = 0, *,
                 plain: str | None = None, plain_hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.offset = message, hint, offset
        self.plain = plain or message
        self.plain_hint = plain_hint or hint


def parse_duration(spec: str) -> float:
    """Seconds in a duration such as "30s", "1m 30s", "500ms", "1.5 min" or "30"."""
    try:
        return _duration(spec)
    except _Problem as problem:
        raise MarkerError(problem.message, source="<duration>", hint=problem.hint) from None


def format_duration(seconds: float) -> str:
    """The marker spelling of a duration, to the millisecond ("1m 30s", "2.5s")."""
    millis = round(seconds * 1000)
    minutes, millis = divmod(millis, 60_000)
    secs = f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
    if minutes and millis == 0:
        return f"{minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def escape(text: str) -> str:
    """Text that parses back to itself as speech: every [ doubled, and every < that would
    start a tag (``<break/>``, ``</b>``)."""
    return _TAG_START.sub(lambda m: "<" + m.group(), text.replace("[", "[["))


def pause_marker(seconds: float) -> str:
    """``[pause ...]`` for a number of seconds; MarkerError if it is not a usable pause."""
    return _checked(f"[pause {_seconds_text(seconds, 'pause')}]", "pause()")


def breathe_marker(seconds: float | None = None, breaths: int | None = None,
                   rate: float | None = None, ratio: object = None) -> str:
    """``[breathe ...]`` from seconds or breaths, with optional rate and in:out ratio."""
    if (seconds is None) == (breaths is None):
        raise MarkerError("breathe() needs either seconds= or breaths=", source="<helper>")
    parts = [_seconds_text(seconds, "breathe")] if breaths is None else [f"{breaths} breaths"]
    quote = not isinstance(breaths, str)
    if rate is not None:
        quote = quote and isinstance(rate, (int, float))
        parts.append(f"rate={rate:g}" if isinstance(rate, (int, float)) else f"rate={rate}")
    if ratio is not None:
        quote = quote and not isinstance(ratio, str)
        try:
            parts.append("ratio=" + (ratio if isinstance(ratio, str) else ":".join(f"{r:g}" for r in ratio)))
        except (TypeError, ValueError):
            raise MarkerError("breathe() needs ratio as '4:6' or [4, 6]", source="<helper>") from None
    return _checked(f"[breathe {' '.join(parts)}]", "breathe()", quote=quote)


def chapter_marker(title: object) -> str:
    """``[chapter Title]`` (brackets in the title become parentheses)."""
    return _checked(f"[chapter {clean_text(str(title).replace('[', '(').replace(']', ')'))}]", "chapter()",
                    quote=False)


def _seconds_text(seconds: object, helper: str) -> str:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        got = "not a number" if isinstance(seconds, float) else f"got {type(seconds).__name__}"
        raise MarkerError(f"{helper}() needs seconds as a number, {got}", source="<helper>")
    return format_duration(seconds) if seconds >= 0 else f"{seconds:g}s"


def _checked(marker: str, helper: str, *, quote: bool = True) -> str:
    """``marker`` if it parses; else a MarkerError naming it (``quote``) or only the helper
    (when template values went into it: they may be a client's)."""
    try:
        parse(marker, source="<helper>", quote=quote)
    except MarkerError as exc:
        raise MarkerError(f"{marker if quote else helper}: {exc.message}", source="<helper>",
                          hint=exc.hint) from None
    return marker


def parse(text: str, *, source: str, line_offset: int = 0, quote: bool = True) -> tuple[Segment, ...]:
    """Read narration text with markers into segments, in order.

    ``quote``: errors may quote the marker. Text that template code wrote (a template's
    rendered text) passes False: its markers may hold a client's values, so its errors name
    the marker's place, never what is in it."""
    lines = _LineIndex(text, line_offset, quote)
    segments: list[Segment] = []
    run: list[tuple[int, str]] = []
    try:
        for kind, offset, value in _scan(text):
            if kind == "text":
                run.append((offset, value))
                continue
            segments.extend(_speech(run, lines))
            run = []
            segments.append(_marker(kind, value, offset, lines.line(offset)))
        segments.extend(_speech(run, lines))
    except _Problem as problem:
        raise lines.error(problem, source) from None
    return tuple(segments)


def validate(text: str, *, source: str, line_offset: int = 0) -> None:
    """Check every marker in ``text``, skipping those that contain ``OPAQUE`` (template code)."""
    lines = _LineIndex(text, line_offset, True)
    try:
        for kind, offset, value in _scan(text):
            if kind != "text" and OPAQUE not in value:
                _marker(kind, value, offset, 0)
    except _Problem as problem:
        raise lines.error(problem, source) from None


class _LineIndex:
    """Offsets -> 1-based line and column."""

    def __init__(self, text: str, line_offset: int, quote: bool) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.line_offset = line_offset
        self.quote = quote

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) + self.line_offset

    def column(self, offset: int) -> int:
        return offset - self.starts[bisect.bisect_right(self.starts, offset) - 1] + 1

    def error(self, problem: _Problem, source: str) -> MarkerError:
        return MarkerError(problem.message if self.quote else problem.plain, source=source,
                           line=self.line(problem.offset), column=self.column(problem.offset),
                           hint=problem.hint if self.quote else problem.plain_hint)


def _scan(text: str) -> Iterator[tuple[str, int, str]]:
    """Yield ("text", offset, chunk), ("marker", offset, content) and ("break", offset, spec)."""
    pos = 0
    for match in re.finditer(r"\[|<", text):
        start = match.start()
        if start < pos:
            continue
        literal_lt = text.startswith("<<", start) and _TAG_START.match(text, start + 1)
        if text[start] == "<" and not literal_lt and not _TAG_START.match(text, start):
            continue
        if start > pos:
            yield "text", pos, text[pos:start]
        if text.startswith("[[", start):
            yield "text", start, "["
            pos = start + 2
        elif literal_lt:
            yield "text", start, "<"
            pos = start + 2
        elif text[start] == "[":
            end = _close(text, start, "]")
            yield "marker", start, text[start + 1:end]
            pos = end + 1
        else:
            end = _close(text, start, ">")
            tag = _BREAK.fullmatch(text, start, end + 1)
            if not tag:
                raise _Problem(f"tag {text[start:end + 1]} would be read aloud",
                               'use [pause 3s] or <break time="3s"/> for silence, '
                               "and remove other tags", start, plain="a tag would be read aloud")
            yield "break", start, tag.group(2)
            pos = end + 1
    if pos < len(text):
        yield "text", pos, text[pos:]


def _close(text: str, start: int, closer: str) -> int:
    end_of_line = text.find("\n", start)
    end_of_line = len(text) if end_of_line < 0 else end_of_line
    end = text.find(closer, start, end_of_line)
    if end < 0:
        raise _Problem(f"unclosed {text[start]}",
                       f"close it with {closer} on the same line"
                       + ("; write [[ for a literal [" if closer == "]" else ""), start)
    return end


def _speech(run: list[tuple[int, str]], lines: _LineIndex) -> list[Speech]:
    """Sentences of one stretch of text between markers; every paragraph's first starts one."""
    if not run:
        return []
    joined = "".join(chunk for _, chunk in run)
    origin = [offset + i for offset, chunk in run for i in range(len(chunk))]
    sentences: list[Speech] = []
    para_start = 0
    for para_end in [m.start() for m in _BLANK_LINE.finditer(joined)] + [len(joined)]:
        paragraph = joined[para_start:para_end]
        for index, (a, b) in enumerate(sentence_spans(paragraph)):
            sentence = clean_text(paragraph[a:b])
            line = lines.line(origin[para_start + a])
            sentences.append(Speech(sentence, line=line, paragraph_start=index == 0))
        para_start = para_end
    return sentences


def _marker(kind: str, content: str, offset: int, line: int) -> Segment:
    try:
        if kind == "break":
            return Pause(_duration(content), line=line)
        return _bracket(content, line)
    except _Problem as problem:
        problem.offset = offset
        raise


def _bracket(content: str, line: int) -> Segment:
    word, _, rest = content.strip().partition(" ")
    rest = rest.strip()
    name = word.lower()
    if name == "pause":
        if not rest:
            raise _Problem("[pause] needs a duration", "write e.g. [pause 30s]")
        return Pause(_duration(rest), line=line)
    if name == "breathe":
        return _breathe(rest, line)
    if name == "bell":
        if rest:
            raise _Problem(f"[bell] takes nothing after it, found '{rest}'", "write [bell]",
                           plain="[bell] takes nothing after it")
        return Bell(line=line)
    if name == "chapter":
        title = clean_text(rest)
        if not title:
            raise _Problem("[chapter] needs a title", "write e.g. [chapter Arriving]")
        return Chapter(title, line=line)
    raise _Problem(f"unknown marker [{content}]", _unknown_hint(name, rest), plain="unknown marker",
                   plain_hint=MARKER_HINT)


def _unknown_hint(name: str, rest: str) -> str:
    close = difflib.get_close_matches(name, MARKERS, n=1, cutoff=0.6)
    if not close:
        return MARKER_HINT
    return f"did you mean [{close[0]}{' ' + rest if rest else ''}]?"


def _breathe(rest: str, line: int) -> Breathe:
    amount, options = [], {}
    for token in rest.split():
        key, eq, value = token.partition("=")
        if eq:
            options[key.lower()] = value
        else:
            amount.append(token)
    rate = _rate(options.pop("rate")) if "rate" in options else None
    ratio = _ratio(options.pop("ratio")) if "ratio" in options else None
    if options:
        key = next(iter(options))
        close = difflib.get_close_matches(key, ("rate", "ratio"), n=1)
        raise _Problem(f"unknown [breathe] option '{key}'",
                       f"did you mean {close[0]}=?" if close else "options are rate=5.5 and ratio=4:6",
                       plain="unknown [breathe] option", plain_hint="options are rate=5.5 and ratio=4:6")
    if not amount:
        raise _Problem("[breathe] needs a length", "write e.g. [breathe 2m] or [breathe 6 breaths]")
    if amount[-1].lower() in ("breath", "breaths"):
        return Breathe(breaths=_breaths(amount[:-1]), breaths_per_min=rate, ratio=ratio, line=line)
    seconds = _duration(" ".join(amount))
    if seconds <= 0:
        raise _Problem("[breathe] needs a length above zero", "write e.g. [breathe 2m]")
    return Breathe(seconds=seconds, breaths_per_min=rate, ratio=ratio, line=line)


def _breaths(tokens: list[str]) -> int:
    spec = " ".join(tokens)
    if len(tokens) != 1 or not re.fullmatch(r"[0-9]{1,6}", spec) or not 0 < int(spec) <= MAX_BREATHS:
        raise _Problem(f"bad breath count '{spec}'",
                       f"write a whole number from 1 to {MAX_BREATHS}, e.g. [breathe 6 breaths]",
                       plain="bad breath count")
    return int(spec)


def _rate(value: str) -> float:
    rate = _number(value)
    if rate is None or not 0 < rate <= MAX_BREATHS_PER_MIN:
        raise _Problem(f"bad breathing rate '{value}'",
                       f"write breaths per minute above 0 and up to {MAX_BREATHS_PER_MIN:g}, e.g. rate=5.5",
                       plain="bad breathing rate")
    return rate


def _ratio(value: str) -> tuple[float, float]:
    try:
        return parse_ratio(value)
    except ParameterError as exc:
        raise _Problem(exc.message, exc.hint, plain="bad in:out ratio") from None


def _number(value: str) -> float | None:
    if not re.fullmatch(r"[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}", value.strip()):
        return None
    return float(value)


def _duration(spec: str) -> float:
    text = spec.strip()
    if not text:
        raise _Problem("missing duration", DURATION_HINT)
    if text.startswith("-"):
        raise _Problem(f"negative duration '{text}'", DURATION_HINT, plain="negative duration")
    total, pos, parts = 0.0, 0, []
    while pos < len(text):
        part = _PART.match(text, pos)
        if not part or part.end() == pos or part.group(2).lower() not in _UNITS:
            raise _Problem(f"bad duration '{text}'", DURATION_HINT, plain="bad duration")
        parts.append(part.group(2))
        total += float(part.group(1)) * _UNITS[part.group(2).lower()]
        pos = part.end()
    if len(parts) > 1 and "" in parts:
        # "1m 30" is ambiguous: a bare number is seconds only when it stands alone.
        raise _Problem(f"bad duration '{text}'", "give every number a unit, e.g. 1m 30s", plain="bad duration")
    if not math.isfinite(total) or total > MAX_SECONDS:
        limit = f"{MAX_SECONDS / 3600:g} hours"
        raise _Problem(f"duration '{text}' is longer than {limit}", DURATION_HINT,
                       plain=f"duration longer than {limit}")
    return total
