"""Pause notes left in a published script's own style ("(10 secs)", "Pause.", "…"), and the marker to write."""
from __future__ import annotations

import re

from compassion_audio.core.text import sentence_spans
from compassion_audio.script.markers import format_duration

EXAMPLE = "write a pause marker with its length, e.g. [pause 10s]"
"""The advice when a note gives no single length to copy."""

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20,
            "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90}
_UNITS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
          "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60}
_WORDS = "|".join(sorted(_NUMBERS, key=len, reverse=True))
_UNIT = "|".join(sorted(_UNITS, key=len, reverse=True))
_AMOUNT = rf"\d+(?:\.\d+)?|{_WORDS}"
# Digits may touch their unit ("10s"); a number word needs a space or hyphen ("ten secs").
_LENGTH = rf"(?:\d+(?:\.\d+)?\s*-?\s*|\b(?:{_WORDS})[\s-]+)(?:{_UNIT})\b"
_ONE_LENGTH = re.compile(rf"(?:(\d+(?:\.\d+)?)\s*-?\s*|\b({_WORDS})[\s-]+)({_UNIT})\b", re.IGNORECASE)
_RANGE_START = rf"(?:(?:{_AMOUNT})\s*(?:-|–|to|or)\s*)"
_LENGTHS = rf"{_RANGE_START}?{_LENGTH}(?:\s*(?:,|and)?\s*{_LENGTH})*"
_ABOUT = r"(?:about|around|roughly|approx\.?|approximately|some|up to|for)\s+"
_RANGE = re.compile(rf"(?:{_AMOUNT})\s*(?:-|–|to|or)\s*(?:\d|{_WORDS})", re.IGNORECASE)

_BRACKETED = re.compile(r"\(([^()\n]{1,80})\)")
_NOTE_WORD = re.compile(r"\b(?:pause|silence)\b", re.IGNORECASE)
_ONLY_LENGTH = re.compile(rf"\s*(?:{_ABOUT})?{_LENGTHS}(?:\s+(?:of\s+)?(?:pause|silence))?\s*", re.IGNORECASE)
_SPOKEN_NOTE = re.compile(
    rf"(?:(?:long|short|brief)\s+)?pause(?:\s+(?:here|now))?"
    rf"(?:\s*(?:for|of|[-–—:,])?\s*(?:{_ABOUT})?(?:{_LENGTHS}))?(?:\s+(?:here|now))?\s*[.!…]*",
    re.IGNORECASE)
ELLIPSIS = re.compile(r"(?:\.{3,}|…+|\.(?: \.){2,})[\"'”’)]*$")
"""An ellipsis at the end of a stretch of text."""


def marker_for(note: str) -> str:
    """``write [pause 10s]`` for a note that gives one length ("10 secs", "1 min 30 secs"), else EXAMPLE."""
    if _RANGE.search(note):
        return EXAMPLE
    seconds = 0.0
    for digits, word, unit in _ONE_LENGTH.findall(note):
        seconds += _UNITS[unit.lower()] * (float(digits) if digits else _NUMBERS[word.lower()])
    return f"write [pause {format_duration(seconds)}]" if seconds > 0 else EXAMPLE


def notes_in(piece: str) -> list[str]:
    """One message per pause note in a stretch of spoken text (between markers)."""
    found = []
    for match in _BRACKETED.finditer(piece):
        inside = match.group(1)
        if _NOTE_WORD.search(inside) or _ONLY_LENGTH.fullmatch(inside):
            found.append(f'"{match.group(0)}" would be spoken; {marker_for(inside)}')
    outside = _BRACKETED.sub(" ", piece)
    for start, end in sentence_spans(outside):
        sentence = outside[start:end]
        if _SPOKEN_NOTE.fullmatch(sentence):
            found.append(f'"{sentence}" would be spoken; {marker_for(sentence)}')
    if ELLIPSIS.fullmatch(piece.strip()):
        found.append(ellipsis_message(piece.strip()))
    return found


def ellipsis_message(ellipsis: str) -> str:
    """An ellipsis standing for a pause: the voice runs straight on."""
    return f'"{ellipsis}" makes no pause (the voice runs straight on); {EXAMPLE}'
