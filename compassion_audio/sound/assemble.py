"""Plan the timeline: every segment placed at an exact frame from clip lengths and settings."""
from __future__ import annotations

from collections.abc import Mapping

from compassion_audio.core.audio import seconds_to_frames
from compassion_audio.core.settings import BreathingSettings, MixSettings, VoiceSettings
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Script, Speech
from compassion_audio.core.timeline import Chapter as TimelineChapter
from compassion_audio.core.timeline import Clip, Event, Timeline


def breathe_frames(segment: Breathe, breathing: BreathingSettings, sample_rate: int) -> int:
    """Length of a breathing stretch: its seconds, or whole breaths at its (or the track's) rate."""
    if segment.seconds is not None:
        return seconds_to_frames(segment.seconds, sample_rate)
    rate = segment.breaths_per_min or breathing.breaths_per_min
    return seconds_to_frames((segment.breaths or 0) * 60.0 / rate, sample_rate)


def plan_timeline(script: Script, clips: Mapping[str, Clip], *, voice: VoiceSettings,
                  breathing: BreathingSettings, mix: MixSettings,
                  bell_frames: int = 0, bell_ring_frames: int = 0, partial: bool = False) -> Timeline:
    """Place every segment of ``script``; speech events span exactly the audible speech.

    Gaps: ``sentence_gap_seconds`` between sentences, ``paragraph_gap_seconds``
    before a paragraph start; a pause or breathing stretch *replaces* the gap, so
    audible end -> next audible start equals the pause to the frame. A bell rings
    for ``bell_frames`` and speech may start once it has decayed (``bell_ring_frames``).

    ``partial``: clips may still be missing (speech is being synthesised). The
    plan stops before the first phrase without a clip and returns an incomplete
    timeline whose ``frames`` is where that phrase's gap begins: every event
    before it is placed exactly as in the complete plan, nothing after it is.
    """
    sr = mix.sample_rate
    sentence_gap = seconds_to_frames(voice.sentence_gap_seconds, sr)
    paragraph_gap = seconds_to_frames(voice.paragraph_gap_seconds, sr)
    events: list[Event] = []
    chapter_marks: list[tuple[str, int]] = []
    cursor = seconds_to_frames(mix.lead_in_seconds, sr)
    pending_gap: int | None = 0  # None: use the sentence/paragraph rule
    last_sound_end = cursor

    def add_bell(gap: int) -> None:
        nonlocal cursor, last_sound_end
        start = cursor + gap
        events.append(Event("bell", start, start + bell_ring_frames))
        cursor = start + bell_ring_frames
        last_sound_end = max(last_sound_end, start + bell_frames)

    if mix.bells and bell_frames:
        add_bell(0)
        pending_gap = paragraph_gap

    for seg in script.segments:
        if isinstance(seg, Speech):
            clip = clips.get(seg.text)
            if clip is None and partial:
                return Timeline(sample_rate=sr, frames=cursor, events=tuple(events),
                                title=script.title, complete=False)
            if clip is None:
                where = f" at line {seg.line} of {script.source}" if seg.line else ""
                raise SpeechError(f"no synthesised audio for a phrase{where}")
            if pending_gap is not None:
                gap = pending_gap
            else:
                gap = paragraph_gap if seg.paragraph_start else sentence_gap
            start = cursor + gap
            end = start + clip.audible_frames
            events.append(Event("speech", start, end, text=seg.text, clip=clip, line=seg.line,
                                paragraph_start=seg.paragraph_start))
            cursor = end
            last_sound_end = max(last_sound_end, start - clip.lead_frames + clip.frames)
            pending_gap = None
        elif isinstance(seg, (Pause, Breathe)):
            if isinstance(seg, Pause):
                length = seconds_to_frames(seg.seconds, sr)
                events.append(Event("pause", cursor, cursor + length, line=seg.line))
            else:
                length = breathe_frames(seg, breathing, sr)
                events.append(Event("breathe", cursor, cursor + length, line=seg.line,
                                    breaths_per_min=seg.breaths_per_min, ratio=seg.ratio))
            cursor += length
            pending_gap = 0
        elif isinstance(seg, Bell):
            add_bell(sentence_gap if pending_gap is None else pending_gap)
            pending_gap = sentence_gap
        elif isinstance(seg, Chapter):
            chapter_marks.append((seg.title, cursor if events else 0))

    end_of_content = max(cursor, last_sound_end)
    if mix.bells and bell_frames:
        start = cursor + paragraph_gap
        events.append(Event("bell", start, start + bell_ring_frames))
        end_of_content = max(end_of_content, start + bell_frames)
    frames = end_of_content + seconds_to_frames(mix.tail_seconds, sr)
    chapters = tuple(
        TimelineChapter(title, start, chapter_marks[i + 1][1] if i + 1 < len(chapter_marks) else frames)
        for i, (title, start) in enumerate(chapter_marks)
    )
    return Timeline(sample_rate=sr, frames=frames, events=tuple(events), chapters=chapters,
                    title=script.title)


def estimate_clips(sentences, voice: VoiceSettings, sample_rate: int) -> dict[str, Clip]:
    """Stand-in clips timed from word counts at the voice's rate (for previews; nothing is spoken)."""
    from pathlib import Path

    from compassion_audio.core.text import word_count

    per_word = 60.0 / voice.rate_wpm
    return {
        s: Clip(text=s, path=Path(), frames=max(1, seconds_to_frames(word_count(s) * per_word, sample_rate)),
                lead_frames=0, tail_frames=0)
        for s in sentences
    }
