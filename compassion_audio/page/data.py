"""What a session page shows of a track: cues, chapters and the breathing schedule, as data."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from compassion_audio.core.audio import frames_to_ms
from compassion_audio.core.errors import PageError
from compassion_audio.core.settings import BreathingSettings
from compassion_audio.core.timeline import Timeline
from compassion_audio.output.caption_text import wrap_lines
from compassion_audio.output.captions import cues as caption_cues
from compassion_audio.output.chapters import chapter_marks
from compassion_audio.render import TrackResult
from compassion_audio.sound.tones import BreathPattern, cycle_start_frame, whole_cycles

DATA_VERSION = 1
"""Bumped when the page data changes shape, so a page's data says which shape it has."""


def _seconds(value: float) -> float:
    # Millisecond times stay as written; cycle starts keep sub-frame precision.
    return round(value, 6)


@dataclass(frozen=True)
class PageCue:
    """One caption as the page shows it: the caption files' cue, in the same lines."""

    start_seconds: float
    end_seconds: float
    lines: tuple[str, ...]
    kind: str
    """speech, pause, breathe or bell: a silent stretch's cue gets a countdown."""


@dataclass(frozen=True)
class PageChapter:
    """A chapter as the audio file's tags hold it (whole milliseconds, the first from 0:00)."""

    title: str
    start_seconds: float
    end_seconds: float


@dataclass(frozen=True)
class BreathStretch:
    """A paced stretch and its breath cycles, placed exactly where the tones place them."""

    start_seconds: float
    end_seconds: float
    in_seconds: float
    hold_in_seconds: float
    out_seconds: float
    hold_out_seconds: float
    cycle_starts_seconds: tuple[float, ...]
    """Start of every whole cycle and, last, the end of the final one (tones.cycle_start_frame
    over the sample rate): after it the tones are silent until the stretch ends."""

    @property
    def breaths_per_min(self) -> float:
        cycle = self.in_seconds + self.hold_in_seconds + self.out_seconds + self.hold_out_seconds
        return 60.0 / cycle


@dataclass(frozen=True)
class PageTrack:
    """Everything the page needs about one track; ``audio`` is relative to the page."""

    audio: str
    """POSIX path of the audio file relative to the page's folder, e.g. "01-settling.mp3"."""
    title: str
    duration_seconds: float
    cues: tuple[PageCue, ...]
    chapters: tuple[PageChapter, ...]
    breathing: tuple[BreathStretch, ...]
    hold: bool = False
    """Stop at each chapter's end until the facilitator continues (an album's ``hold = true``)."""

    def to_json(self) -> dict:
        """The track as the page embeds it (short keys, times in seconds); from_json reads it
        back, so a worker can hand it over, or an album keep it for tracks it does not render again."""
        return {
            "audio": self.audio,
            "title": self.title,
            "duration": _seconds(self.duration_seconds),
            "hold": self.hold,
            "chapters": [{"title": c.title, "start": c.start_seconds, "end": c.end_seconds}
                         for c in self.chapters],
            "cues": [{"start": c.start_seconds, "end": c.end_seconds, "lines": list(c.lines),
                      "kind": c.kind} for c in self.cues],
            "breathing": [{"start": _seconds(b.start_seconds), "end": _seconds(b.end_seconds),
                           "in": b.in_seconds, "holdIn": b.hold_in_seconds,
                           "out": b.out_seconds, "holdOut": b.hold_out_seconds,
                           "perMinute": round(b.breaths_per_min, 3),
                           "cycles": [_seconds(s) for s in b.cycle_starts_seconds]}
                          for b in self.breathing],
        }

    @classmethod
    def from_json(cls, data: dict) -> "PageTrack":
        try:
            return cls(
                audio=str(data["audio"]), title=str(data["title"]),
                duration_seconds=float(data["duration"]), hold=bool(data.get("hold", False)),
                chapters=tuple(PageChapter(c["title"], c["start"], c["end"]) for c in data["chapters"]),
                cues=tuple(PageCue(c["start"], c["end"], tuple(c["lines"]), c["kind"]) for c in data["cues"]),
                breathing=tuple(BreathStretch(b["start"], b["end"], b["in"], b["holdIn"], b["out"],
                                              b["holdOut"], tuple(b["cycles"])) for b in data["breathing"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PageError(f"page data for {data.get('audio', 'a track')!r} is incomplete ({exc!r}): "
                            "render the track again") from None


def paced_stretches(timeline: Timeline, breathing: BreathingSettings) -> tuple[BreathStretch, ...]:
    """The breathing stretches (and, with tones_in_pauses_seconds, the long pauses) with the
    breath pattern the mixer gives them, cycle by cycle in the tones' own frame arithmetic.

    Shown even when the tones are off: the visual paces the breath without sound too.
    """
    sr = timeline.sample_rate
    threshold = breathing.tones_in_pauses_seconds
    stretches = []
    for event in timeline.events:
        paced = event.kind == "breathe" or (
            event.kind == "pause" and threshold is not None and event.end - event.start >= threshold * sr)
        if not paced or event.end <= event.start:
            continue
        pattern = BreathPattern.from_settings(breathing, breaths_per_min=event.breaths_per_min,
                                              ratio=event.ratio)
        cycles = whole_cycles(pattern, event.end - event.start, sr)
        starts = tuple((event.start + cycle_start_frame(k, pattern, sr)) / sr for k in range(cycles + 1))
        stretches.append(BreathStretch(event.start / sr, event.end / sr, pattern.in_seconds,
                                       pattern.hold_in_seconds, pattern.out_seconds,
                                       pattern.hold_out_seconds, starts))
    return tuple(stretches)


_KIND_ORDER = ("speech", "bell", "breathe", "pause")
"""Which event a cue belongs to when its start lies in two (a bell rings over a pause)."""


def _cue_kind(start_ms: int, events: Sequence[tuple[int, int, str]]) -> str:
    """The kind of event a cue starting at ``start_ms`` describes: a sentence's pieces start
    inside its audible span, a silence's description inside the silence."""
    kinds = {kind for a, b, kind in events if a <= start_ms < b}
    return next((k for k in _KIND_ORDER if k in kinds), "speech")


def page_cues(timeline: Timeline) -> tuple[PageCue, ...]:
    """The caption files' cues (captions.cues), each with its lines and its kind."""
    sr = timeline.sample_rate
    events = [(frames_to_ms(e.start, sr), frames_to_ms(e.end, sr), e.kind)
              for e in timeline.events if e.kind in _KIND_ORDER]
    return tuple(PageCue(c.start_seconds, c.end_seconds, tuple(wrap_lines(c.text)) or ("…",),
                         _cue_kind(round(c.start_seconds * 1000), events))
                 for c in caption_cues(timeline))


def page_chapters(timeline: Timeline) -> tuple[PageChapter, ...]:
    """The chapters exactly as written into the audio file's tags (tags.chapter_marks)."""
    sr = timeline.sample_rate
    marks = chapter_marks(timeline.chapters, sr, frames_to_ms(timeline.frames, sr))
    return tuple(PageChapter(" ".join(m.title.split()), m.start_ms / 1000, m.end_ms / 1000) for m in marks)


def timeline_track(timeline: Timeline, breathing: BreathingSettings, audio: str, *,
                   hold: bool = False) -> PageTrack:
    """A page track from a rendered timeline and the breathing settings it was mixed with."""
    return PageTrack(audio=audio, title=timeline.title, duration_seconds=timeline.seconds,
                     cues=page_cues(timeline), chapters=page_chapters(timeline),
                     breathing=paced_stretches(timeline, breathing), hold=hold)


def track_data(result: TrackResult, *, page_dir: Path | None = None, hold: bool = False) -> PageTrack:
    """A rendered track for a page in ``page_dir`` (default: the track's own folder)."""
    folder = Path(page_dir) if page_dir is not None else result.path.parent
    audio = PurePosixPath(*Path(os.path.relpath(result.path, folder)).parts).as_posix()
    return timeline_track(result.timeline, result.breathing, audio, hold=hold)


def to_json(tracks: Sequence[PageTrack], title: str) -> dict:
    """The page's embedded data: what player.js reads."""
    return {"version": DATA_VERSION, "title": title, "tracks": [t.to_json() for t in tracks]}
