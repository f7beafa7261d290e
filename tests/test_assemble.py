"""Timing logic to the frame: gaps, pauses, breathing stretches, bells, chapters."""
from __future__ import annotations

from pathlib import Path

import pytest

from compassion_audio.sound.assemble import breathe_frames, plan_timeline
from compassion_audio.core.settings import BreathingSettings, MixSettings, VoiceSettings
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Script, Speech
from compassion_audio.core.timeline import Clip

SR = 44100
VOICE = VoiceSettings(sentence_gap_seconds=0.5, paragraph_gap_seconds=1.0)
MIX = MixSettings(bells=False, lead_in_seconds=1.0, tail_seconds=2.0)


def clip(text: str, audible: int, lead: int = 441, tail: int = 1764) -> Clip:
    return Clip(text, Path("/nonexistent"), lead + audible + tail, lead, tail)


def plan(segments, clips, mix=MIX, **kw):
    return plan_timeline(Script("t", tuple(segments)), clips, voice=VOICE,
                         breathing=BreathingSettings(), mix=mix, **kw)


def test_sentence_and_paragraph_gaps_are_exact():
    clips = {"A.": clip("A.", 10000), "B.": clip("B.", 20000), "C.": clip("C.", 5000)}
    tl = plan([Speech("A.", paragraph_start=True), Speech("B."), Speech("C.", paragraph_start=True)], clips)
    a, b, c = tl.of_kind("speech")
    assert a.start == 44100  # lead-in
    assert b.start - a.end == 22050
    assert c.start - b.end == 44100
    assert tl.frames == c.end + clips["C."].tail_frames + 2 * SR


@pytest.mark.parametrize("seconds", [0.5, 2.5, 30.0, 90.0, 1 / 3])
def test_pause_replaces_the_gap_exactly(seconds):
    clips = {"A.": clip("A.", 12345), "B.": clip("B.", 6789)}
    tl = plan([Speech("A."), Pause(seconds), Speech("B.")], clips)
    a, b = tl.of_kind("speech")
    assert b.start - a.end == round(seconds * SR)


def test_consecutive_pauses_add():
    clips = {"A.": clip("A.", 1000), "B.": clip("B.", 1000)}
    tl = plan([Speech("A."), Pause(1.0), Pause(2.5), Speech("B.")], clips)
    a, b = tl.of_kind("speech")
    assert b.start - a.end == round(3.5 * SR)


def test_breathe_by_breaths_uses_rate_and_override():
    b = BreathingSettings(breaths_per_min=6)
    assert breathe_frames(Breathe(breaths=6), b, SR) == 60 * SR
    assert breathe_frames(Breathe(breaths=11, breaths_per_min=5.5), b, SR) == 120 * SR
    assert breathe_frames(Breathe(seconds=90), b, SR) == 90 * SR
    clips = {"A.": clip("A.", 1000), "B.": clip("B.", 1000)}
    tl = plan([Speech("A."), Breathe(breaths=3, breaths_per_min=4.5), Speech("B.")], clips)
    (stretch,) = tl.of_kind("breathe")
    assert stretch.end - stretch.start == 40 * SR
    assert stretch.breaths_per_min == 4.5


def test_bells_open_and_close_the_track():
    clips = {"A.": clip("A.", 1000)}
    mix = MixSettings(bells=True, lead_in_seconds=1.0, tail_seconds=2.0)
    tl = plan([Speech("A.")], clips, mix=mix, bell_frames=8 * SR, bell_ring_frames=3 * SR)
    first, speech, last = tl.events
    assert (first.kind, last.kind) == ("bell", "bell")
    assert first.start == SR and speech.start == SR + 3 * SR + SR  # ring, then paragraph gap
    assert last.start == speech.end + SR
    assert tl.frames == last.start + 8 * SR + 2 * SR


def test_bell_marker_in_the_middle():
    clips = {"A.": clip("A.", 1000), "B.": clip("B.", 1000)}
    tl = plan([Speech("A."), Bell(), Speech("B.")], clips, bell_frames=4 * SR, bell_ring_frames=2 * SR)
    a, bell, b = tl.events
    assert bell.start == a.end + round(0.5 * SR)
    assert b.start == bell.end + round(0.5 * SR)


def test_chapters_span_to_the_next_and_the_end():
    clips = {"A.": clip("A.", 1000), "B.": clip("B.", 1000)}
    tl = plan([Chapter("One"), Speech("A."), Pause(5), Chapter("Two"), Speech("B.")], clips)
    one, two = tl.chapters
    assert one.start == 0 and one.end == two.start
    assert two.start == tl.of_kind("pause")[0].end
    assert two.end == tl.frames
    data = tl.to_json()
    assert [c["title"] for c in data["chapters"]] == ["One", "Two"]


def test_missing_clip_names_the_phrase_by_its_line_not_its_text():
    with pytest.raises(SpeechError) as caught:
        plan([Speech("Where is it?", line=7)], {})
    assert "at line 7 of" in str(caught.value) and "Where is it" not in str(caught.value)


def test_no_drift_over_long_tracks():
    """Pause positions are sums of exact frames: 200 pauses of 1/3 s land exactly."""
    segments, clips = [], {}
    for i in range(200):
        text = f"Phrase {i}."
        clips[text] = clip(text, 1001)
        segments += [Speech(text), Pause(1 / 3)]
    tl = plan(segments, clips)
    speech = tl.of_kind("speech")
    assert speech[-1].start == 44100 + 199 * (1001 + round(SR / 3))
