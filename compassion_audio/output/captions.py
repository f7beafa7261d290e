"""Captions (WebVTT, SRT) and a plain transcript, timed from the assembled timeline."""
from __future__ import annotations

import stat
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compassion_audio.core.errors import OutputError, ParameterError
from compassion_audio.core.files import write_text_atomic
from compassion_audio.core.timeline import Chapter, Event, Timeline

EXTEND_MS = 1000
"""How long a sentence stays on screen into the following silence, so it can be read."""
MIN_DESCRIPTION_MS = 1000
"""A pause description shown for less than this is only a flicker, so it is left out."""
LINE_CHARS = 42
"""Caption line length: the usual broadcast limit, readable on a shared screen."""
CAPTION_FORMATS = ("vtt", "srt", "txt")


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


def _ms(frames: int, sample_rate: int) -> int:
    """Frames to whole milliseconds, rounding half up in integers (no float drift)."""
    return (2 * frames * 1000 + sample_rate) // (2 * sample_rate)


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


def _drafts(timeline: Timeline, describe_pauses: bool, min_pause_seconds: float) -> list[_Draft]:
    sr = timeline.sample_rate
    drafts = []
    for event in timeline.events:
        start, end = _ms(event.start, sr), _ms(event.end, sr)
        if event.kind == "speech":
            drafts.append(_Draft(start, end, " ".join(event.text.split()), True, extend=True))
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
    """One cue per sentence (and per long pause, breathing stretch and bell), in time order."""
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
    """Wrap to caption-width lines; a blank line would end the cue, so there are none."""
    return "\n".join(textwrap.wrap(text, LINE_CHARS, break_long_words=False)) or "…"


def _vtt_escape(text: str) -> str:
    # Cue text is parsed for tags and entities; escaping '>' also rules out a stray "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(cues: Sequence[Cue], title: str = "") -> str:
    """A WebVTT file: header, the title as a NOTE, then the cues."""
    blocks = ["WEBVTT"]
    title = " ".join(title.split()).replace("-->", "->")
    if title:
        blocks.append(f"NOTE {title}")
    for cue in cues:
        timing = f"{_stamp(cue.start_seconds, '.')} --> {_stamp(cue.end_seconds, '.')}"
        blocks.append(f"{timing}\n{_lines(_vtt_escape(cue.text))}")
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
    chapters = list(timeline.chapters) or [
        Chapter(e.text, e.start, e.end) for e in timeline.of_kind("chapter")]
    chapters.sort(key=lambda c: c.start)
    blocks: list[str] = [_heading(timeline.title, "=")] if timeline.title else []
    sentences: list[str] = []

    def close_paragraph() -> None:
        if sentences:
            blocks.append(textwrap.fill(" ".join(sentences), 72, break_long_words=False))
            sentences.clear()

    for event in (e for e in timeline.events if e.kind != "chapter"):
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


def write_captions(timeline: Timeline, audio_path: Path, *,
                   formats: Sequence[str] = CAPTION_FORMATS) -> list[Path]:
    """Write <audio stem>.vtt / .srt / .txt beside the audio; returns the paths written."""
    unknown = [f for f in formats if f not in CAPTION_FORMATS]
    if unknown:
        raise ParameterError(f"unknown caption format {unknown[0]!r}", source="captions",
                             hint=f"choose from {', '.join(CAPTION_FORMATS)}")
    audio_path = Path(audio_path)
    # Captions carry the same words as the audio, so they get the same permissions.
    mode = stat.S_IMODE(audio_path.stat().st_mode) if audio_path.exists() else None
    caption_cues = cues(timeline)
    render = {"vtt": lambda: to_webvtt(caption_cues, timeline.title),
              "srt": lambda: to_srt(caption_cues),
              "txt": lambda: to_transcript(timeline)}
    written = []
    for fmt in dict.fromkeys(formats):
        path = audio_path.with_suffix(f".{fmt}")
        try:
            write_text_atomic(path, render[fmt](), mode=mode)
        except OSError as exc:
            raise OutputError(f"cannot write {path.name} in {path.parent}: "
                              f"{exc.strerror or exc}") from exc
        written.append(path)
    return written
