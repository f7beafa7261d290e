"""Chapters as players get them: time order, whole milliseconds, the first from 0:00.

One rule for every place a chapter is written: the tags of each format and the
captions' WebVTT chapters track.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from compassion_audio.core.audio import frames_to_ms
from compassion_audio.core.errors import ParameterError
from compassion_audio.core.timeline import Chapter


@dataclass(frozen=True)
class Mark:
    """A chapter as stored in files: title and whole milliseconds."""

    title: str
    start_ms: int
    end_ms: int


def chapter_marks(chapters: Sequence[Chapter], sample_rate: int,
                  duration_ms: int | None = None) -> list[Mark]:
    """The chapters as players get them: in time order, in whole milliseconds, ends kept
    inside the track, and the first from 0:00 - the opening bell and lead-in are part of
    it, so a player's first chapter starts where the track does. A chapter with no span
    (the next starts at the same instant) is left out, as in the captions' chapter track."""
    marks = []
    for chapter in sorted(chapters, key=lambda c: c.start):
        start, end = frames_to_ms(chapter.start, sample_rate), frames_to_ms(chapter.end, sample_rate)
        if duration_ms is not None:
            end = min(end, duration_ms)
        if end < start or (duration_ms is not None and start >= duration_ms):
            raise ParameterError(f"chapter {chapter.title!r} has no length inside the track",
                                 source="tags", hint="chapters must start before they end")
        if end > start:
            marks.append(Mark(chapter.title, start, end))
    if marks:
        marks[0] = replace(marks[0], start_ms=0)
    return marks
