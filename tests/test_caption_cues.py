"""Captions as players show them: two-line cues broken at phrases and timed inside their sentence,
one cue per silence, a chapters track; checked on hand-built timelines, every built-in script and
real renders (pyttsx3 + espeak-ng), read back from the files with a parser written here.

Figures measured when this was written (espeak-ng, default voice): a cue change predicted from
letters (plus a comma's pause) falls a median 0.12 s, at most 0.48 s, from the onset after the
comma where the voice really moves on (37 commas in 14 long sentences).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.id3 import ID3

import compassion_audio.script
from compassion_audio.core import tools
from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.core.timeline import Chapter, Event, Timeline
from compassion_audio.output import captions
from compassion_audio.output.caption_text import (LINE_CHARS, MAX_LINES, break_penalty,
                                                  split_cue_text, spoken_weight, wrap_lines)
from compassion_audio.output.captions import (EXTEND_MS, MIN_CUE_MS, Cue, chapter_cues, cues,
                                              to_chapters_webvtt, to_srt, to_transcript, to_webvtt)
from compassion_audio.speech.voices import resolve_voice
from compassion_audio.render import TrackRequest, render_track

from .conftest import decode, sounding_runs

SR = 48000
LONG = ("Just as we can train a muscle, we can train the soothing system, through practices "
        "like slowing our breathing, imagining a compassionate place or figure, and speaking "
        "to ourselves in a kinder way.")
"""The longest sentence in the built-in scripts (196 characters, three-systems)."""
EXERCISES = sorted(p.name.removesuffix(".txt.j2") for p in
                   (Path(compassion_audio.script.__file__).parent / "exercises").glob("*.txt.j2"))


def s(seconds: float) -> int:
    return round(seconds * SR)


def speech(start: float, end: float, text: str) -> Event:
    return Event("speech", s(start), s(end), text=text)


# ---------------------------------------------------------------- reading the files back

TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d)[.,](\d{3}) --> (\d\d):(\d\d):(\d\d)[.,](\d{3})$")


def _seconds(h: str, m: str, sec: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(sec) + int(ms) / 1000


def parse_vtt(text: str) -> list[tuple]:
    """WebVTT by its format rules: a WEBVTT header, then blocks split by blank lines; a block
    is a NOTE ("note", text) or a cue ("cue", start, end, [lines]) with an optional id line."""
    blocks = text.split("\n\n")
    assert blocks[0].split("\n")[0] == "WEBVTT"
    out = []
    for block in filter(None, (b.strip("\n") for b in blocks[1:])):
        lines = block.split("\n")
        if lines[0].startswith("NOTE"):
            assert "-->" not in block
            out.append(("note", lines[0][5:]))
            continue
        if "-->" not in lines[0]:
            lines = lines[1:]  # a cue identifier
        timing = TIMING.match(lines[0])
        assert timing, block
        g = timing.groups()
        body = lines[1:]
        assert body and all(line.strip() for line in body), block
        out.append(("cue", _seconds(*g[:4]), _seconds(*g[4:]), body))
    return out


def parse_srt(text: str) -> list[tuple]:
    """SubRip: numbered blocks of a comma-millisecond timing line and the text lines."""
    out = []
    for number, block in enumerate(filter(None, text.split("\n\n")), start=1):
        lines = block.strip("\n").split("\n")
        assert lines[0] == str(number)
        g = TIMING.match(lines[1]).groups()
        out.append(("cue", _seconds(*g[:4]), _seconds(*g[4:]), lines[2:]))
    return out


def cue_blocks(parsed: list[tuple]) -> list[tuple]:
    return [b for b in parsed if b[0] == "cue"]


def check_layout(parsed: list[tuple], where: str) -> None:
    for _, start, end, lines in cue_blocks(parsed):
        assert len(lines) <= MAX_LINES, (where, lines)
        assert all(len(line) <= LINE_CHARS for line in lines), (where, lines)
        assert start < end, (where, lines)
    starts = [b[1] for b in cue_blocks(parsed)]
    ends = [b[2] for b in cue_blocks(parsed)]
    assert starts == sorted(starts) and all(a <= b for a, b in zip(ends, starts[1:])), where


# ---------------------------------------------------------------- lines and pieces

@pytest.mark.parametrize("text, lines", [
    ("Let your jaw soften, and the muscles around your eyes.",
     ["Let your jaw soften,", "and the muscles around your eyes."]),
    ("You might notice a slight pause at the top of the in-breath.",
     ["You might notice a slight pause", "at the top of the in-breath."]),
    ("Notice how it feels in your body to be this wise, strong and warm person.",
     ["Notice how it feels in your body", "to be this wise, strong and warm person."]),
    ("Rest here.", ["Rest here."]),
])
def test_lines_break_at_phrase_edges(text, lines):
    assert wrap_lines(text) == lines


def test_a_line_never_ends_on_an_article_or_cuts_a_word():
    # Filling each line greedily would end the first on "on the".
    assert wrap_lines("Let your attention rest for a while on the feeling of the air as it moves.") == [
        "Let your attention rest for a while", "on the feeling of the air as it moves."]
    # A word longer than a line is left whole, on a line of its own.
    assert wrap_lines("Some " + "x" * 50 + " words after it") == ["Some", "x" * 50, "words after it"]
    assert break_penalty(["the", "breath"], 0) > break_penalty(["breath", "and"], 0) \
        > break_penalty(["breath,", "gently"], 0) > break_penalty(["breath.", "Gently"], 0)


def test_long_sentence_pieces_fit_two_lines_and_give_the_sentence_back():
    pieces = split_cue_text(LONG)
    assert len(pieces) >= 3 and " ".join(pieces) == LONG
    for piece in pieces:
        assert len(wrap_lines(piece)) <= MAX_LINES
        assert all(len(line) <= LINE_CHARS for line in wrap_lines(piece))
    # every piece but the last ends at a comma here: the sentence has enough of them
    assert all(piece.endswith(",") for piece in pieces[:-1]), pieces


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text("abcdefghij", min_size=1, max_size=14),
                          st.sampled_from(["", "", "", ",", ";"])).map("".join),
                min_size=1, max_size=60))
def test_any_sentence_splits_into_fitting_pieces(words):
    text = " ".join(words)
    pieces = split_cue_text(text)
    assert " ".join(pieces) == text
    assert all(len(wrap_lines(p)) <= MAX_LINES for p in pieces)
    assert all(len(line) <= LINE_CHARS for p in pieces for line in wrap_lines(p))


# ---------------------------------------------------------------- timing inside a sentence

def test_pieces_share_the_audible_span_by_their_letters_without_gaps():
    tl = Timeline(SR, s(40), (speech(2.0, 17.0, LONG),))
    result = cues(tl)
    pieces = split_cue_text(LONG)
    assert [c.text for c in result] == pieces
    assert result[0].start_seconds == 2.0
    for a, b in zip(result, result[1:]):
        assert a.end_seconds == b.start_seconds  # no gap, no overlap
    assert result[-1].end_seconds == 17.0 + EXTEND_MS / 1000  # only the last is held
    total = spoken_weight(LONG)
    done = 0
    for cue, piece in zip(result, pieces):
        assert cue.start_seconds == pytest.approx(2.0 + 15.0 * done / total, abs=0.001)
        done += spoken_weight(piece)


def test_a_short_piece_is_held_a_second_where_the_sentence_allows():
    first = "Breathe in slowly and gently, letting the air fill your chest and belly,"
    second = "and then out, slowly."
    text = f"{first} {second}"
    # By its letters the second piece would be spoken for 0.58 s of the 2.5 s.
    assert 2.5 * spoken_weight(second) / spoken_weight(text) < MIN_CUE_MS / 1000
    assert cues(Timeline(SR, s(20), (speech(1.0, 3.5, text),))) == [
        Cue(1.0, 2.5, first), Cue(2.5, 3.5 + EXTEND_MS / 1000, second)]
    # Spoken too fast for a second a piece: the pieces still fit, in proportion to their letters.
    fast = cues(Timeline(SR, s(20), (speech(1.0, 2.5, LONG),)))
    assert " ".join(c.text for c in fast) == LONG and len(fast) >= 3
    assert fast[0].start_seconds == 1.0 and fast[-2].end_seconds < 2.5
    assert all(0 < c.end_seconds - c.start_seconds < 1.0 for c in fast[:-1])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40_000), st.integers(0, 20_000))
def test_pieces_stay_in_order_inside_their_sentence(span_ms, gap_ms):
    start = 1000
    tl = Timeline(SR, s((start + span_ms + gap_ms + 5000) / 1000),
                  (Event("speech", s(start / 1000), s((start + span_ms) / 1000), text=LONG),
                   Event("speech", s((start + span_ms + gap_ms) / 1000) + 1,
                         s((start + span_ms + gap_ms + 1000) / 1000), text="Rest.")))
    result = cues(tl)
    mine = result[:-1]
    assert " ".join(c.text for c in mine) == LONG
    assert mine[0].start_seconds == start / 1000
    for a, b in zip(result, result[1:]):
        assert a.start_seconds < a.end_seconds <= b.start_seconds
    assert all(c.end_seconds <= (start + span_ms) / 1000 for c in mine[:-1])


# ---------------------------------------------------------------- pauses and chapters

def silence_timeline(chapter_inside: bool = False) -> Timeline:
    chapters = [Chapter("Arriving", 0, s(13.0))]
    if chapter_inside:
        chapters = [Chapter("Arriving", 0, s(13.0)), Chapter("Resting", s(13.0), s(50.0))]
    return Timeline(SR, s(50), (
        speech(1.0, 3.0, "Let yourself settle."),
        Event("pause", s(3.0), s(13.0)),
        Event("pause", s(13.0), s(43.0)),
        speech(43.0, 45.0, "Welcome back."),
    ), tuple(chapters), "Settling")


def test_back_to_back_pauses_are_one_cue_for_the_whole_silence():
    assert cues(silence_timeline()) == [
        Cue(1.0, 4.0, "Let yourself settle."),
        Cue(4.0, 43.0, "(pause – 40 seconds)"),
        Cue(43.0, 46.0, "Welcome back."),
    ]
    assert "(pause – 40 seconds)" in to_transcript(silence_timeline())
    assert "10 seconds" not in to_transcript(silence_timeline())


def test_a_chapter_starting_inside_a_silence_keeps_its_two_parts():
    texts = [c.text for c in cues(silence_timeline(chapter_inside=True))]
    assert texts == ["Let yourself settle.", "(pause – 10 seconds)", "(pause – 30 seconds)",
                     "Welcome back."]


def test_webvtt_notes_each_chapter_and_the_chapters_track_spans_them():
    tl = Timeline(SR, s(60), (
        speech(1.0, 3.0, "Hello."), Event("pause", s(3.0), s(30.0)),
        speech(30.0, 32.0, "Rest <here> & now."),
    ), (Chapter("Arriving", 0, s(30.0)), Chapter("Resting & --> more", s(30.0), s(60.0))), "T")
    chapters = chapter_cues(tl)
    assert chapters == [Cue(0.0, 30.0, "Arriving"), Cue(30.0, 60.0, "Resting & --> more")]
    parsed = parse_vtt(to_webvtt(cues(tl), tl.title, chapters=chapters))
    assert [b[1] if b[0] == "note" else b[3][0] for b in parsed] == [
        "T", "Chapter: Arriving", "Hello.", "(pause – 27 seconds)", "Chapter: Resting & -> more",
        "Rest &lt;here&gt; &amp; now."]
    track = to_chapters_webvtt(chapters)
    assert track == ("WEBVTT\n\n00:00:00.000 --> 00:00:30.000\nArriving\n\n"
                     "00:00:30.000 --> 00:01:00.000\nResting &amp; --&gt; more\n")


def test_ffmpeg_reads_notes_between_cues_and_the_chapters_track(tmp_path):
    tl = silence_timeline(chapter_inside=True)
    for name, text, expected in [
            ("t.vtt", to_webvtt(cues(tl), tl.title, chapters=chapter_cues(tl)), to_srt(cues(tl))),
            ("c.vtt", to_chapters_webvtt(chapter_cues(tl)), to_srt(chapter_cues(tl)))]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        out = subprocess.run([tools.ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / name),
                              "-f", "srt", "-"], capture_output=True, text=True, check=True).stdout
        stamp = r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}"
        assert re.findall(stamp, out) == re.findall(stamp, expected)


def test_chapters_track_is_written_only_with_the_vtt_and_only_with_chapters(tmp_path):
    tl = silence_timeline()
    written = captions.write_captions(tl, tmp_path / "a.mp3", formats=["vtt"])
    assert [p.name for p in written] == ["a.vtt", "a.chapters.vtt"]
    assert captions.write_captions(tl, tmp_path / "b.mp3", formats=["srt", "txt"]) == [
        tmp_path / "b.srt", tmp_path / "b.txt"]
    plain = Timeline(SR, s(50), tl.events)
    assert [p.name for p in captions.write_captions(plain, tmp_path / "c.mp3")] == [
        "c.vtt", "c.srt", "c.txt"]


# ---------------------------------------------------------------- every built-in script

def planned(name: str, length: str | None, group: bool = False) -> Timeline:
    """The exercise's timeline with each phrase timed from its word count (nothing spoken)."""
    from compassion_audio.render import prepare_script
    from compassion_audio.sound.assemble import estimate_clips, plan_timeline
    from compassion_audio.core.settings import BreathingSettings, VoiceSettings

    _, script = prepare_script(TrackRequest(exercise=name, length=length, group=group))
    voice, mix = VoiceSettings(), MixSettings(bells=False)
    clips = estimate_clips([p.text for p in script.speech], voice, mix.sample_rate)
    return plan_timeline(script, clips, voice=voice, breathing=BreathingSettings(), mix=mix)


@pytest.mark.parametrize("length", ["short", None, "long"])
@pytest.mark.parametrize("name", EXERCISES)
def test_every_built_in_script_gives_two_line_cues(name, length):
    tl = planned(name, length)
    result = cues(tl)
    parsed = parse_vtt(to_webvtt(result, tl.title, chapters=chapter_cues(tl)))
    check_layout(parsed, f"{name} {length}")
    assert cue_blocks(parsed_srt := parse_srt(to_srt(result))) == cue_blocks(parsed)
    assert len(parsed_srt) == len(result)
    # the pieces of each sentence give it back, inside its audible span
    spoken = [c for c in result if not c.text.startswith("(")]
    at = 0
    for event in tl.of_kind("speech"):
        rate = tl.sample_rate
        text, start, end = " ".join(event.text.split()), event.start / rate, event.end / rate
        pieces = []
        while " ".join(p.text for p in pieces) != text:
            pieces.append(spoken[at])
            at += 1
        assert pieces[0].start_seconds == pytest.approx(start, abs=0.0006)
        assert all(start - 0.0006 <= p.start_seconds <= end + 0.0006 for p in pieces)
        assert all(p.end_seconds <= end + 0.0006 for p in pieces[:-1])
    assert at == len(spoken)


# ---------------------------------------------------------------- real renders

SCRIPT = ("[chapter Arriving]\nWelcome to this short practice.\n" + LONG + "\n"
          "[pause 10s]\n[pause 30s]\n[chapter Resting]\nNotice the breath as it comes and goes.\n"
          "[pause 6s]\n[chapter Returning]\nWhen you are ready, open your eyes.\n")


def voice_runs(samples, gap_seconds: float = 0.45) -> list[tuple[float, float]]:
    """Sentences in real speech: sentence gaps (0.6 s and more) split them, word gaps do not."""
    return sounding_runs(samples, 44100, threshold_db=-45, min_gap_seconds=gap_seconds)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caption-cues")
    script = folder / "cues.txt.j2"
    script.write_text(SCRIPT, encoding="utf-8")
    # espeak-ng: its takes have no pauses inside a sentence, so each sentence is one sounding
    # run the test can measure against (the neural default pauses at commas).
    result = render_track(TrackRequest(
        exercise=str(script), output=folder / "cues.mp3", force=True, cache_dir=folder / "cache",
        voice_profile=resolve_voice("calm-female"),
        mix=MixSettings(bells=False), export=ExportSettings(captions=True)))
    samples = decode(result.path)
    return result, samples, voice_runs(samples)


def read(result, suffix: str) -> str:
    return result.path.with_suffix(suffix).read_text(encoding="utf-8")


@pytest.mark.engine
def test_rendered_captions_are_two_line_cues_and_the_srt_mirrors_the_vtt(rendered):
    result, _, _ = rendered
    vtt, srt = parse_vtt(read(result, ".vtt")), parse_srt(read(result, ".srt"))
    check_layout(vtt, "rendered")
    assert cue_blocks(vtt) == srt  # cue for cue: times and lines
    texts = [" ".join(b[3]) for b in cue_blocks(vtt)]
    assert texts.count("(pause – 40 seconds)") == 1
    assert not any("10 seconds" in t or "30 seconds" in t for t in texts)
    assert [b[1] for b in vtt if b[0] == "note"] == [
        result.timeline.title, "Chapter: Arriving", "Chapter: Resting", "Chapter: Returning"]


@pytest.mark.engine
def test_rendered_long_sentence_pieces_follow_the_voice(rendered):
    result, samples, runs = rendered
    blocks = cue_blocks(parse_vtt(read(result, ".vtt")))
    # The sentence is the second sound; its pieces are the cues that join back into it.
    first = next(i for i, b in enumerate(blocks) if b[3][0].startswith("Just as"))
    pieces, joined = [], ""
    while joined != LONG:
        pieces.append(blocks[first + len(pieces)])
        joined = " ".join(" ".join(p[3]) for p in pieces)
    assert len(pieces) >= 3
    onset, offset = runs[1]
    event = result.timeline.of_kind("speech")[1]
    assert event.text == LONG
    assert pieces[0][1] == pytest.approx(onset, abs=0.05)
    # the last piece is spoken to the sentence's audible end, then held EXTEND_MS into the pause
    assert pieces[-1][2] - EXTEND_MS / 1000 == pytest.approx(offset, abs=0.05)
    for a, b in zip(pieces, pieces[1:]):
        assert a[2] == b[1]
        assert event.start / 44100 - 0.001 <= b[1] <= event.end / 44100 + 0.001
    # Each later piece starts after a comma: near where the voice resumes after that comma's pause.
    inside = samples[int(onset * 44100):int(offset * 44100)]
    resumes = [onset + a for a, _ in voice_runs(inside, gap_seconds=0.15)[1:]]
    for piece in pieces[1:]:
        nearest = min(resumes, key=lambda t: abs(t - piece[1]))
        assert abs(piece[1] - nearest) <= 0.5, (" ".join(piece[3]), piece[1], resumes)


@pytest.mark.engine
def test_rendered_silence_is_one_cue_as_long_as_the_measured_silence(rendered):
    result, _, runs = rendered
    pause = next(b for b in cue_blocks(parse_vtt(read(result, ".vtt")))
                 if b[3] == ["(pause – 40 seconds)"])
    assert runs[2][0] - runs[1][1] == pytest.approx(40.0, abs=0.05)
    assert pause[1] == pytest.approx(runs[1][1] + EXTEND_MS / 1000, abs=0.05)
    assert pause[2] == pytest.approx(runs[2][0], abs=0.05)


@pytest.mark.engine
def test_rendered_chapters_track_matches_the_chapter_marks_in_the_audio(rendered):
    result, _, runs = rendered
    assert result.path.with_suffix(".chapters.vtt") in result.sidecars
    parsed = parse_vtt(read(result, ".chapters.vtt"))
    assert all(b[0] == "cue" for b in parsed)
    id3 = ID3(result.path)
    chaps = sorted(id3.getall("CHAP"), key=lambda c: c.start_time)
    assert [(b[3], round(b[1] * 1000), round(b[2] * 1000)) for b in parsed] == [
        ([str(c.sub_frames["TIT2"])], c.start_time, c.end_time) for c in chaps]
    assert [b[3][0] for b in parsed] == ["Arriving", "Resting", "Returning"]
    # "Resting" starts where the voice does after the silence
    assert parsed[1][1] == pytest.approx(runs[2][0], abs=0.05)


@pytest.fixture(scope="module")
def phrase_cache(tmp_path_factory):
    """One clip cache for the built-in renders: their shared phrases are spoken once."""
    return tmp_path_factory.mktemp("phrases")


@pytest.mark.engine
@pytest.mark.parametrize("name", EXERCISES)
def test_every_built_in_exercise_rendered_through_the_cli_has_two_line_cues(name, tmp_path, phrase_cache):
    from compassion_audio.cli import cli

    out = tmp_path / f"{name}.mp3"
    result = CliRunner().invoke(cli, ["render", name, "--length", "short", "--captions",
                                      "-o", str(out), "--cache-dir", str(phrase_cache)])
    assert result.exit_code == 0, (result.output, result.exception)
    vtt = parse_vtt(out.with_suffix(".vtt").read_text(encoding="utf-8"))
    check_layout(vtt, name)
    assert cue_blocks(vtt) == parse_srt(out.with_suffix(".srt").read_text(encoding="utf-8"))
    chapters = parse_vtt(out.with_suffix(".chapters.vtt").read_text(encoding="utf-8"))
    marks = sorted(ID3(out).getall("CHAP"), key=lambda c: c.start_time)
    assert chapters and [(round(b[1] * 1000), round(b[2] * 1000), b[3]) for b in chapters] == [
        (c.start_time, c.end_time, [str(c.sub_frames["TIT2"])]) for c in marks]
    assert [b[1] for b in vtt if b[0] == "note"][1:] == [f"Chapter: {b[3][0]}" for b in chapters]
