"""Captions (WebVTT, SRT, a chapters track) and a plain transcript, timed from the assembled timeline."""
from __future__ import annotations

import stat
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from compassion_audio.core.audio import frames_to_ms as _ms
from compassion_audio.core.errors import OutputError, ParameterError
from compassion_audio.core.files import write_text_atomic
from compassion_audio.core.timeline import Chapter, Event, Timeline
from compassion_audio.output.chapters import chapter_marks
# LINE_CHARS and MAX_LINES are re-exported: the caption limits are read from here.
from compassion_audio.output.caption_text import (LINE_CHARS, MAX_LINES, split_cue_text,  # noqa: F401
                                                  spoken_weight, wrap_lines)

EXTEND_MS = 1000
"""How long a sentence stays on screen into the following silence, so it can be read."""
MIN_DESCRIPTION_MS = 1000
"""A pause description shown for less than this is only a flicker, so it is left out."""
MIN_CUE_MS = 1000
"""Least time a piece of a sentence is shown, where the sentence is long enough to allow it."""
CAPTION_FORMATS = ("vtt", "srt", "txt")
CHAPTERS_SUFFIX = ".chapters.vtt"
"""The WebVTT chapters track (kind="chapters") written beside the .vtt when a track has chapters."""


@dataclass(frozen=True)
class Cue:
    """One caption: a sentence, or a description of a pause, breathing stretch or bell."""

    start_seconds: float
    end_seconds: float
    text: str


@dataclass(frozen=True)
class _Draft:
    """A cue being placed, in whole milliseconds so rounding can never make cues overlap."""

    start_ms: int
    end_ms: int
    text: str
    audible: bool
    """Speech or a bell; silent stretches give way to these."""
    extend: bool = False


def describe_seconds(seconds: float) -> str:
    """A duration as people say it: "30 seconds", "1 minute 30 seconds", "2.5 seconds"."""
    tenths = round(seconds * 10)
    if tenths < 100 and tenths % 10:
        return f"{tenths / 10:g} seconds"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n]
    return " ".join(words) or "0 seconds"


def _description(event: Event, sample_rate: int, min_pause_seconds: float) -> str | None:
    """The words for a non-speech event, or None when it is not worth a caption."""
    seconds = (event.end - event.start) / sample_rate
    if event.kind == "bell":
        return "(bell)"
    if event.kind == "breathe":
        return f"(slow breathing – {describe_seconds(seconds)})"
    if event.kind == "pause" and seconds >= min_pause_seconds:
        return f"(pause – {describe_seconds(seconds)})"
    return None


def _shares(weights: list[int], span_ms: int) -> list[float]:
    """Each piece's time in ms, proportional to its weight, but at least MIN_CUE_MS where
    the span allows: short pieces are raised to the minimum, the rest share what is left."""
    total = sum(weights) or len(weights)
    if len(weights) * MIN_CUE_MS > span_ms:
        return [span_ms * w / total for w in weights]
    held: set[int] = set()
    while True:
        free_ms = span_ms - len(held) * MIN_CUE_MS
        rest = sum(w for i, w in enumerate(weights) if i not in held) or 1
        times = [MIN_CUE_MS if i in held else free_ms * w / rest for i, w in enumerate(weights)]
        short = {i for i, t in enumerate(times) if t < MIN_CUE_MS} - held
        if not short:
            return times
        held |= short


def _sentence(text: str, start_ms: int, end_ms: int) -> list[_Draft]:
    """A sentence as cues of at most MAX_LINES lines, timed by where their words fall in it.

    The engines give no word timings, so each piece gets a share of the audible span in
    proportion to its letters and comma pauses (caption_text.spoken_weight), raised to
    MIN_CUE_MS where the span allows; pieces follow one another with no gap or overlap. Only the
    last is held into the following silence.
    """
    text = " ".join(text.split())
    span = end_ms - start_ms
    pieces = split_cue_text(text, min_share=MIN_CUE_MS / span if span > 0 else 1.0)
    if span < len(pieces):  # no millisecond for each piece: keep the words together
        pieces = [text]
    bounds, elapsed = [start_ms], 0.0
    for share in _shares([spoken_weight(p) for p in pieces], span)[:-1]:
        elapsed += share
        # At least 1 ms each, and room left for every piece still to come.
        at = max(bounds[-1] + 1, min(start_ms + round(elapsed), end_ms - (len(pieces) - len(bounds))))
        bounds.append(at)
    bounds.append(end_ms)
    last = len(pieces) - 1
    return [_Draft(bounds[i], bounds[i + 1], piece, True, extend=i == last)
            for i, piece in enumerate(pieces)]


def _merged_pauses(timeline: Timeline) -> list[Event]:
    """The events with back-to-back pauses made one: a silence is described once, whole.

    A chapter starting inside a silence keeps the two parts apart (each in its chapter).
    """
    starts = {c.start for c in _chapters(timeline)}
    merged: list[Event] = []
    for event in (e for e in timeline.events if e.kind != "chapter"):
        previous = merged[-1] if merged else None
        if (event.kind == "pause" and previous is not None and previous.kind == "pause"
                and event.start not in starts):
            merged[-1] = replace(previous, end=max(previous.end, event.end))
        else:
            merged.append(event)
    return merged


def _drafts(timeline: Timeline, describe_pauses: bool, min_pause_seconds: float) -> list[_Draft]:
    sr = timeline.sample_rate
    drafts = []
    for event in _merged_pauses(timeline):
        start, end = _ms(event.start, sr), _ms(event.end, sr)
        if event.kind == "speech":
            drafts += _sentence(event.text, start, end)
        elif describe_pauses:
            text = _description(event, sr, min_pause_seconds)
            if text:
                drafts.append(_Draft(start, end, text, event.kind == "bell"))
    return drafts


def _place_audible(drafts: list[_Draft], track_ms: int) -> list[_Draft]:
    """Speech and bells keep their start; ends stretch into silence up to the next audible cue."""
    audible = [d for d in drafts if d.audible]
    placed = []
    for i, d in enumerate(audible):
        limit = audible[i + 1].start_ms if i + 1 < len(audible) else track_ms
        wanted = d.end_ms + (EXTEND_MS if d.extend else 0)
        end = min(wanted, limit)
        if end > d.start_ms:  # only a sub-millisecond event has no room at all
            placed.append(_Draft(d.start_ms, end, d.text, True))
    return placed


def _place_silent(drafts: list[_Draft], audible: list[_Draft]) -> list[_Draft]:
    """Descriptions fill what is left of their stretch once the sentences have been read."""
    placed = []
    for d in (d for d in drafts if not d.audible):
        before = [a.end_ms for a in audible if a.start_ms <= d.start_ms]
        after = [a.start_ms for a in audible if a.start_ms > d.start_ms]
        start = max([d.start_ms, *before[-1:]])
        end = min([d.end_ms, *after[:1]])
        if placed and placed[-1].end_ms > start:
            start = placed[-1].end_ms
        if end - start >= MIN_DESCRIPTION_MS:
            placed.append(_Draft(start, end, d.text, False))
    return placed


def cues(timeline: Timeline, *, describe_pauses: bool = True,
         min_pause_seconds: float = 5.0) -> list[Cue]:
    """Cues of at most MAX_LINES lines: a sentence in one or more pieces, a long silence
    (back-to-back pauses together), a breathing stretch or a bell each in one; in time order."""
    drafts = _drafts(timeline, describe_pauses, min_pause_seconds)
    audible = _place_audible(drafts, _ms(timeline.frames, timeline.sample_rate))
    placed = sorted(audible + _place_silent(drafts, audible), key=lambda d: d.start_ms)
    return [Cue(d.start_ms / 1000, d.end_ms / 1000, d.text) for d in placed]


def _stamp(seconds: float, separator: str) -> str:
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _lines(text: str) -> str:
    """Wrap to caption-width lines at phrase edges; a blank line would end the cue, so there are none."""
    return "\n".join(wrap_lines(text)) or "…"


def _vtt_escape(text: str) -> str:
    # Cue text is parsed for tags and entities; escaping '>' also rules out a stray "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _note(text: str) -> str:
    # A NOTE ends at a blank line and may not contain "-->".
    return " ".join(text.split()).replace("-->", "->")


def to_webvtt(cues: Sequence[Cue], title: str = "", *, chapters: Sequence[Cue] = ()) -> str:
    """A WebVTT file: header, the title as a NOTE, then the cues, with a
    "NOTE Chapter: <title>" before the first cue of each chapter (``chapters`` as
    chapter_cues gives them)."""
    blocks = ["WEBVTT"]
    if _note(title):
        blocks.append(f"NOTE {_note(title)}")
    headings = sorted(chapters, key=lambda c: c.start_seconds)
    for cue in cues:
        while headings and headings[0].start_seconds <= cue.start_seconds:
            blocks.append(f"NOTE Chapter: {_note(headings.pop(0).text)}")
        timing = f"{_stamp(cue.start_seconds, '.')} --> {_stamp(cue.end_seconds, '.')}"
        blocks.append(f"{timing}\n{_lines(_vtt_escape(cue.text))}")
    blocks += [f"NOTE Chapter: {_note(c.text)}" for c in headings]
    return "\n\n".join(blocks) + "\n"


def _chapters(timeline: Timeline) -> list[Chapter]:
    """The timeline's chapters in time order (from chapter events when it lists none)."""
    chapters = list(timeline.chapters) or [
        Chapter(e.text, e.start, e.end) for e in timeline.of_kind("chapter")]
    return sorted(chapters, key=lambda c: c.start)


def chapter_cues(timeline: Timeline) -> list[Cue]:
    """One cue per chapter, exactly the chapter marks written into the audio's tags
    (output/chapters.py: the first from 0:00, each to the next one's start)."""
    track_ms = _ms(timeline.frames, timeline.sample_rate)
    marks = chapter_marks(timeline.chapters, timeline.sample_rate, track_ms)
    return [Cue(m.start_ms / 1000, m.end_ms / 1000, " ".join(m.title.split())) for m in marks]


def to_chapters_webvtt(chapters: Sequence[Cue]) -> str:
    """A WebVTT chapters track (<track kind="chapters">): one cue per chapter, the title as text."""
    blocks = ["WEBVTT"]
    for cue in chapters:
        timing = f"{_stamp(cue.start_seconds, '.')} --> {_stamp(cue.end_seconds, '.')}"
        blocks.append(f"{timing}\n{_vtt_escape(cue.text) or '…'}")
    return "\n\n".join(blocks) + "\n"


def to_srt(cues: Sequence[Cue]) -> str:
    """A SubRip file: numbered cues with comma-millisecond times."""
    blocks = []
    for number, cue in enumerate(cues, start=1):
        timing = f"{_stamp(cue.start_seconds, ',')} --> {_stamp(cue.end_seconds, ',')}"
        blocks.append(f"{number}\n{timing}\n{_lines(cue.text)}")
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _heading(text: str, underline: str) -> str:
    return f"{text}\n{underline * len(text)}"


def _paragraph_break(event: Event) -> bool:
    # Events do not yet carry the script's paragraph_start; use it as soon as they do.
    return bool(getattr(event, "paragraph_start", False))


def to_transcript(timeline: Timeline, *, min_pause_seconds: float = 5.0) -> str:
    """Plain text: the title, chapter headings, paragraphs, and the pauses as "(pause – 30 seconds)"."""
    chapters = _chapters(timeline)
    blocks: list[str] = [_heading(timeline.title, "=")] if timeline.title else []
    sentences: list[str] = []

    def close_paragraph() -> None:
        if sentences:
            blocks.append(textwrap.fill(" ".join(sentences), 72, break_long_words=False))
            sentences.clear()

    for event in _merged_pauses(timeline):
        while chapters and chapters[0].start <= event.start:
            close_paragraph()
            blocks.append(_heading(chapters.pop(0).title, "-"))
        if event.kind == "speech":
            if _paragraph_break(event):
                close_paragraph()
            sentences.append(" ".join(event.text.split()))
            continue
        close_paragraph()  # a marker always starts a new paragraph
        text = _description(event, timeline.sample_rate, min_pause_seconds)
        if text:
            blocks.append(text)
    close_paragraph()
    return "\n\n".join(blocks) + "\n" if blocks else ""


def caption_texts(timeline: Timeline, audio_path: Path, *,
                  formats: Sequence[str] = CAPTION_FORMATS) -> dict[Path, str]:
    """What write_captions writes, by path, without writing it: <audio stem>.vtt / .srt /
    .txt, and with the .vtt a <audio stem>.chapters.vtt when the track has chapters."""
    unknown = [f for f in formats if f not in CAPTION_FORMATS]
    if unknown:
        raise ParameterError(f"unknown caption format {unknown[0]!r}", source="captions",
                             hint=f"choose from {', '.join(CAPTION_FORMATS)}")
    audio_path = Path(audio_path)
    caption_cues, chapters = cues(timeline), chapter_cues(timeline)
    render = {".vtt": lambda: to_webvtt(caption_cues, timeline.title, chapters=chapters),
              ".srt": lambda: to_srt(caption_cues),
              ".txt": lambda: to_transcript(timeline),
              CHAPTERS_SUFFIX: lambda: to_chapters_webvtt(chapters)}
    suffixes = [f".{fmt}" for fmt in dict.fromkeys(formats)]
    if chapters and ".vtt" in suffixes:
        suffixes.append(CHAPTERS_SUFFIX)
    return {audio_path.with_suffix(suffix): render[suffix]() for suffix in suffixes}


def write_captions(timeline: Timeline, audio_path: Path, *,
                   formats: Sequence[str] = CAPTION_FORMATS) -> list[Path]:
    """Write <audio stem>.vtt / .srt / .txt beside the audio, and with the .vtt a
    <audio stem>.chapters.vtt when the track has chapters; returns the paths written.
    (A render publishes them with its track instead: render._write_audio.)"""
    audio_path = Path(audio_path)
    # Captions carry the same words as the audio, so they get the same permissions.
    mode = stat.S_IMODE(audio_path.stat().st_mode) if audio_path.exists() else None
    written = []
    for path, text in caption_texts(timeline, audio_path, formats=formats).items():
        write_sidecar(path, text, mode)
        written.append(path)
    return written


def write_sidecar(path: Path, text: str, mode: int | None) -> None:
    """Write one text file beside a track atomically; a failure is an OutputError naming it."""
    try:
        write_text_atomic(path, text, mode=mode)
    except OSError as exc:
        raise OutputError(f"cannot write {path.name} in {path.parent}: "
                          f"{exc.strerror or exc}") from exc
