"""Captions and transcript from hand-built timelines: exact cue times, syntax, descriptions, writes."""
from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compassion_audio.output import captions
from compassion_audio.core import tools
from compassion_audio.output.captions import Cue, cues, describe_seconds, to_srt, to_transcript, to_webvtt
from compassion_audio.core.errors import OutputError, ParameterError
from compassion_audio.core.timeline import Chapter, Event, Timeline

SR = 48000


def s(seconds: float) -> int:
    return round(seconds * SR)


def speech(start: float, end: float, text: str) -> Event:
    return Event("speech", s(start), s(end), text=text)


def timeline(*events: Event, seconds: float = 60.0, chapters=(), title="") -> Timeline:
    return Timeline(SR, s(seconds), tuple(events), tuple(chapters), title)


@pytest.fixture
def practice() -> Timeline:
    return timeline(
        Event("bell", s(0), s(4)),
        speech(3.5, 6.0, "Welcome."),
        speech(6.6, 9.0, "Find a comfortable position."),
        Event("pause", s(9.0), s(39.0)),
        speech(39.0, 41.0, "Notice the breath."),
        Event("breathe", s(41.0), s(131.0), breaths_per_min=6.0),
        speech(131.0, 133.5, "Gently return."),
        Event("pause", s(133.5), s(136.5)),
        speech(136.5, 138.0, "Open your eyes."),
        seconds=141.0,
        chapters=[Chapter("Arriving", s(0), s(39.0)), Chapter("Breathing", s(39.0), s(141.0))],
        title="Soothing rhythm breathing",
    )


def test_cue_times_follow_the_timeline(practice):
    assert cues(practice) == [
        Cue(0.0, 3.5, "(bell)"),                     # the bell gives way when speech starts
        Cue(3.5, 6.6, "Welcome."),                   # held into the gap, up to the next sentence
        Cue(6.6, 10.0, "Find a comfortable position."),  # held 1 s into the pause
        Cue(10.0, 39.0, "(pause – 30 seconds)"),     # the rest of the pause, full length named
        Cue(39.0, 42.0, "Notice the breath."),
        Cue(42.0, 131.0, "(slow breathing – 1 minute 30 seconds)"),
        Cue(131.0, 134.5, "Gently return."),         # the 3 s pause is under 5 s: no description
        Cue(136.5, 139.0, "Open your eyes."),
    ]


def test_descriptions_can_be_left_out_or_lowered(practice):
    assert [c.text for c in cues(practice, describe_pauses=False)] == [
        "Welcome.", "Find a comfortable position.", "Notice the breath.", "Gently return.",
        "Open your eyes."]
    texts = [c.text for c in cues(practice, min_pause_seconds=2.0)]
    assert "(pause – 3 seconds)" in texts


def test_last_cue_ends_with_the_track():
    tl = timeline(speech(1.0, 2.5, "Only."), seconds=3.0)
    assert cues(tl) == [Cue(1.0, 3.0, "Only.")]


@pytest.mark.parametrize("frames, ms", [(0, 0), (23, 0), (24, 1), (25, 1), (47, 1), (72, 2),
                                        (s(1.2345), 1235), (s(3599.9995), 3600000)])
def test_frames_round_to_the_nearest_millisecond_half_up(frames, ms):
    tl = Timeline(SR, frames + SR, (Event("speech", frames, frames + SR, text="x"),))
    assert round(cues(tl)[0].start_seconds * 1000) == ms


@pytest.mark.parametrize("seconds, words", [
    (1, "1 second"), (30, "30 seconds"), (29.9996, "30 seconds"), (60, "1 minute"),
    (90, "1 minute 30 seconds"), (120, "2 minutes"), (2.5, "2.5 seconds"), (12.4, "12 seconds"),
    (3665, "1 hour 1 minute 5 seconds"), (7200, "2 hours")])
def test_durations_are_written_as_people_say_them(seconds, words):
    assert describe_seconds(seconds) == words


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["speech", "pause", "breathe", "bell"]),
                          st.integers(SR // 10, 20 * SR), st.integers(0, 2 * SR)), max_size=25))
def test_cues_never_overlap_and_speech_keeps_its_start(parts):
    events, at = [], SR
    for kind, length, gap in parts:
        events.append(Event(kind, at, at + length, text="Words here." if kind == "speech" else ""))
        at += length + (gap if kind == "speech" else 0)
    tl = Timeline(SR, at + SR, tuple(events))
    result = cues(tl)
    for a, b in zip(result, result[1:]):
        assert a.end_seconds <= b.start_seconds
    for cue in result:
        assert cue.start_seconds < cue.end_seconds
    speech_starts = [(2 * e.start * 1000 + SR) // (2 * SR) / 1000 for e in events if e.kind == "speech"]
    assert [c.start_seconds for c in result if not c.text.startswith("(")] == speech_starts


VTT_TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$")


def test_webvtt_is_well_formed(practice):
    text = to_webvtt(cues(practice), title=practice.title)
    blocks = text.rstrip("\n").split("\n\n")
    assert blocks[0] == "WEBVTT"
    assert blocks[1] == "NOTE Soothing rhythm breathing"
    assert len(blocks) - 2 == len(cues(practice))
    for block in blocks[2:]:
        lines = block.split("\n")
        assert VTT_TIMING.match(lines[0]), lines[0]
        assert lines[1:] and all(line.strip() for line in lines[1:])
    assert "00:00:10.000 --> 00:00:39.000\n(pause – 30 seconds)" in text


def test_webvtt_escapes_markup_and_wraps_long_sentences():
    long = ("You might like to let your attention rest on the sounds around you, "
            "near & far, <gently> --> without needing to change them.")
    text = to_webvtt([Cue(0.0, 5.0, long)])
    body = text.split("\n\n")[1].split("\n")[1:]
    assert all(len(line) <= captions.LINE_CHARS for line in body)
    joined = " ".join(body)
    assert "&amp;" in joined and "&lt;gently&gt;" in joined and "--&gt;" in joined
    assert "-->" not in joined


def test_srt_is_numbered_with_comma_times(practice):
    text = to_srt(cues(practice))
    blocks = text.rstrip("\n").split("\n\n")
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
    assert blocks[1] == "2\n00:00:03,500 --> 00:00:06,600\nWelcome."
    assert to_srt([]) == ""


def test_ffmpeg_reads_our_webvtt_with_the_same_times(practice, tmp_path):
    vtt = tmp_path / "t.vtt"
    vtt.write_text(to_webvtt(cues(practice), practice.title), encoding="utf-8")
    out = subprocess.run([tools.ffmpeg_exe(), "-v", "error", "-i", str(vtt), "-f", "srt", "-"],
                         capture_output=True, text=True, check=True).stdout
    # ffmpeg wraps its SRT differently, so compare only the timing lines.
    theirs = re.findall(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", out)
    ours = re.findall(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", to_srt(cues(practice)))
    assert theirs == ours


def test_transcript_has_title_chapters_paragraphs_and_pauses(practice):
    assert to_transcript(practice) == (
        "Soothing rhythm breathing\n=========================\n\n"
        "Arriving\n--------\n\n"
        "(bell)\n\n"
        "Welcome. Find a comfortable position.\n\n"
        "(pause – 30 seconds)\n\n"
        "Breathing\n---------\n\n"
        "Notice the breath.\n\n"
        "(slow breathing – 1 minute 30 seconds)\n\n"
        "Gently return.\n\n"
        "Open your eyes.\n")


@dataclass(frozen=True)
class ParagraphEvent(Event):
    paragraph_start: bool = False


def test_transcript_breaks_paragraphs_where_the_script_did():
    tl = timeline(speech(1, 2, "One."), ParagraphEvent("speech", s(2.6), s(3), "Two.", paragraph_start=True),
                  speech(3.6, 4, "Three."), seconds=5)
    assert to_transcript(tl) == "One.\n\nTwo. Three.\n"


def test_transcript_uses_chapter_events_when_the_timeline_lists_none():
    tl = timeline(Event("chapter", s(1), s(1), text="Settling"), speech(1, 2, "Hello."), seconds=3)
    assert to_transcript(tl) == "Settling\n--------\n\nHello.\n"


def test_write_captions_writes_beside_the_audio_atomically(practice, tmp_path):
    audio = tmp_path / "session 3.mp3"
    audio.write_bytes(b"not really audio")
    os.chmod(audio, 0o640)
    paths = captions.write_captions(practice, audio)
    assert paths == [tmp_path / "session 3.vtt", tmp_path / "session 3.srt",
                     tmp_path / "session 3.txt", tmp_path / "session 3.chapters.vtt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["session 3.mp3", "session 3.vtt", "session 3.srt", "session 3.txt", "session 3.chapters.vtt"])
    assert paths[0].read_text(encoding="utf-8") == to_webvtt(
        cues(practice), practice.title, chapters=captions.chapter_cues(practice))
    assert paths[1].read_text(encoding="utf-8") == to_srt(cues(practice))
    assert paths[2].read_text(encoding="utf-8") == to_transcript(practice)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in paths)


def test_write_captions_only_the_formats_asked(practice, tmp_path):
    paths = captions.write_captions(practice, tmp_path / "a.flac", formats=["srt"])
    assert [p.name for p in tmp_path.iterdir()] == ["a.srt"] == [p.name for p in paths]


def test_write_captions_rejects_unknown_format(practice, tmp_path):
    with pytest.raises(ParameterError, match="unknown caption format 'ass'.*vtt, srt, txt"):
        captions.write_captions(practice, tmp_path / "a.mp3", formats=["vtt", "ass"])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_one(practice, tmp_path, monkeypatch):
    old = tmp_path / "a.vtt"
    old.write_text("old", encoding="utf-8")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    from compassion_audio.core import files

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OutputError, match="cannot write a.vtt .*No space left on device"):
        captions.write_captions(practice, tmp_path / "a.mp3")
    assert [p.name for p in tmp_path.iterdir()] == ["a.vtt"]
    assert old.read_text(encoding="utf-8") == "old"
