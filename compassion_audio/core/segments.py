"""Typed segments: the hand-off from the script stage to speech and assembly."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Speech:
    """One sentence to be spoken."""

    text: str
    line: int = 0
    """Line in the source template the sentence came from (0 when unknown)."""
    paragraph_start: bool = False
    """True for the first sentence after a blank line or a marker: gets the paragraph gap."""


@dataclass(frozen=True)
class Pause:
    """Exact silence between audible speech (replaces the sentence gap)."""

    seconds: float
    line: int = 0


@dataclass(frozen=True)
class Breathe:
    """A paced-breathing stretch: silence with optional breathing-pace tones.

    Exactly one of ``seconds`` and ``breaths`` is set. ``breaths_per_min`` and
    ``ratio`` override the track's breathing settings for this stretch only.
    """

    seconds: float | None = None
    breaths: int | None = None
    breaths_per_min: float | None = None
    ratio: tuple[float, float] | None = None
    """In:out proportion, e.g. (4, 6)."""
    line: int = 0


@dataclass(frozen=True)
class Bell:
    """A bell cue."""

    line: int = 0


@dataclass(frozen=True)
class Chapter:
    """Start of a named part of the practice (ID3 chapter, caption heading)."""

    title: str
    line: int = 0


Segment = Union[Speech, Pause, Breathe, Bell, Chapter]


@dataclass(frozen=True)
class Script:
    """A rendered exercise: its title and its segments in order."""

    title: str
    segments: tuple[Segment, ...]
    source: str = ""
    """Template name or path, for messages."""
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    """Front-matter values (summary, lengths, group, ...)."""

    @property
    def speech(self) -> tuple[Speech, ...]:
        return tuple(s for s in self.segments if isinstance(s, Speech))
