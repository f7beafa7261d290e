"""The assembled timeline: every event placed at an exact frame, before any sample is mixed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    """A synthesised, trimmed, level-matched phrase stored on disk at the track rate."""

    text: str
    path: Path
    """float32 mono .npy file."""
    frames: int
    """Length of the stored clip."""
    lead_frames: int
    """Frames before audible speech starts (a short margin kept so onsets are not cut)."""
    tail_frames: int
    """Frames after audible speech ends (a short decay margin)."""
    true_peak: float = 1.0
    """4x-oversampled peak of the stored clip, linear (1.0: unknown). Lets the final
    limiter skip blocks that cannot reach its ceiling."""

    @property
    def audible_frames(self) -> int:
        return self.frames - self.lead_frames - self.tail_frames


@dataclass(frozen=True)
class Event:
    """One thing on the timeline. ``start``/``end`` are frames at the track rate.

    kind is one of: speech, pause, breathe, bell, chapter. For speech, start/end
    are the audible speech bounds; ``clip_start`` is where the clip's first
    stored frame goes (start - clip.lead_frames).
    """

    kind: str
    start: int
    end: int
    text: str = ""
    clip: Clip | None = None
    breaths_per_min: float | None = None
    ratio: tuple[float, float] | None = None
    line: int = 0
    paragraph_start: bool = False
    """Speech only: the sentence opens a paragraph (transcripts start a new paragraph)."""

    @property
    def clip_start(self) -> int:
        return self.start - (self.clip.lead_frames if self.clip else 0)


@dataclass(frozen=True)
class Chapter:
    title: str
    start: int
    end: int


@dataclass(frozen=True)
class Timeline:
    """Events in time order, the track length and the chapters, all in frames."""

    sample_rate: int
    frames: int
    events: tuple[Event, ...]
    chapters: tuple[Chapter, ...] = field(default=())
    title: str = ""
    complete: bool = True
    """False for a plan made while speech is still being synthesised: it ends at
    ``frames``, where the first phrase without a clip would begin."""

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def of_kind(self, kind: str) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.kind == kind)

    def to_json(self) -> dict:
        """Segments with start/end seconds and kinds, for players and album pages."""
        sr = self.sample_rate
        return {
            "title": self.title,
            "duration_seconds": round(self.frames / sr, 3),
            "sample_rate": sr,
            "segments": [
                {"kind": e.kind, "start": round(e.start / sr, 3), "end": round(e.end / sr, 3),
                 **({"text": e.text} if e.text else {})}
                for e in self.events if e.kind != "chapter"
            ],
            "chapters": [
                {"title": c.title, "start": round(c.start / sr, 3), "end": round(c.end / sr, 3)}
                for c in self.chapters
            ],
        }
