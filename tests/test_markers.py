"""Marker grammar and sentence splitting: segments, durations, exact errors, properties."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compassion_audio.core.errors import MarkerError
from compassion_audio.script.markers import format_duration, parse, parse_duration
from compassion_audio.core.segments import Bell, Breathe, Chapter, Pause, Speech
from compassion_audio.core.text import clean_text, split_sentences, word_count


@pytest.mark.parametrize("spec, seconds", [
    ("30s", 30.0), ("1m 30s", 90.0), ("1m30s", 90.0), ("2.5s", 2.5), ("500ms", 0.5),
    ("2m", 120.0), ("30", 30.0), ("1.5 min", 90.0), ("90 seconds", 90.0), ("1h", 3600.0),
    (" 0.25 S ", 0.25), ("1 minute 5 seconds", 65.0), ("3h", 10800.0),
])
def test_parse_duration(spec, seconds):
    assert parse_duration(spec) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("spec, message", [
    ("-3s", "<duration>: negative duration '-3s' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("NaN", "<duration>: bad duration 'NaN' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("3h 1s", "<duration>: duration '3h 1s' is longer than 3 hours (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("", "<duration>: missing duration (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("5 parsecs", "<duration>: bad duration '5 parsecs' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("1m 30", "<duration>: bad duration '1m 30' (give every number a unit, e.g. 1m 30s)"),
    ("inf", "<duration>: bad duration 'inf' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
])
def test_bad_durations(spec, message):
    with pytest.raises(MarkerError) as caught:
        parse_duration(spec)
    assert str(caught.value) == message


def test_parse_segments_lines_and_paragraphs():
    text = ("Welcome. Sit comfortably.\nFeel the seat. [pause 3s]\n\n"
            "[chapter The breath]\nNotice the breath.\n\nA new paragraph.\n"
            "[breathe 2m rate=5.5 ratio=4:6]\n[breathe 6 breaths]\n[bell]\n"
            'Then <break time="500ms"/> rest <break time=\'1s\'> here.\n')
    assert parse(text, source="t", line_offset=10) == (
        Speech("Welcome.", line=11, paragraph_start=True),
        Speech("Sit comfortably.", line=11),
        Speech("Feel the seat.", line=12),
        Pause(3.0, line=12),
        Chapter("The breath", line=14),
        Speech("Notice the breath.", line=15, paragraph_start=True),
        Speech("A new paragraph.", line=17, paragraph_start=True),
        Breathe(seconds=120.0, breaths_per_min=5.5, ratio=(4.0, 6.0), line=18),
        Breathe(breaths=6, line=19),
        Bell(line=20),
        Speech("Then", line=21, paragraph_start=True),
        Pause(0.5, line=21),
        Speech("rest", line=21, paragraph_start=True),
        Pause(1.0, line=21),
        Speech("here.", line=21, paragraph_start=True),
    )


def test_adjacent_pauses_stay_separate_and_escape_is_literal():
    assert parse("[pause 2s][pause 1m]Say [[this] [PAUSE 1s]", source="t") == (
        Pause(2.0, line=1), Pause(60.0, line=1),
        Speech("Say [this]", line=1, paragraph_start=True), Pause(1.0, line=1))


@pytest.mark.parametrize("text, message", [
    ("Hello.\n  [pasue 3s] there", "t.j2:2:3: unknown marker [pasue 3s] (did you mean [pause 3s]?)"),
    ("Rest [pause 3s", "t.j2:1:6: unclosed [ (close it with ] on the same line; write [[ for a literal [)"),
    ("[pause]", "t.j2:1:1: [pause] needs a duration (write e.g. [pause 30s])"),
    ("[breathe 0s]", "t.j2:1:1: [breathe] needs a length above zero (write e.g. [breathe 2m])"),
    ("[breathe 2m pace=3]", "t.j2:1:1: unknown [breathe] option 'pace' (options are rate=5.5 and ratio=4:6)"),
    ("[breathe 2.5 breaths]", "t.j2:1:1: bad breath count '2.5' "
                              "(write a whole number from 1 to 2000, e.g. [breathe 6 breaths])"),
    ("[breathe 1m ratio=4]", "t.j2:1:1: '4' is not an in:out ratio (write two positive numbers separated by ':', e.g. 4:6)"),
    ("[breathe 1m rate=0]", "t.j2:1:1: bad breathing rate '0' (write breaths per minute above 0 and up to 30, e.g. rate=5.5)"),
    ("[bell now]", "t.j2:1:1: [bell] takes nothing after it, found 'now' (write [bell])"),
    ("[chapter ]", "t.j2:1:1: [chapter] needs a title (write e.g. [chapter Arriving])"),
    ("a [name] b", "t.j2:1:3: unknown marker [name] (markers are [pause 30s], [breathe 2m], [bell] and "
                   "[chapter Title]; write [[ for a literal [)"),
    ("Say <emphasis>this</emphasis>", 't.j2:1:5: tag <emphasis> would be read aloud (use [pause 3s] or '
                                      '<break time="3s"/> for silence, and remove other tags)'),
    ("x <break time=\"-1s\"/>", "t.j2:1:3: negative duration '-1s' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("[pause 4h]", "t.j2:1:1: duration '4h' is longer than 3 hours (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
])
def test_exact_marker_errors(text, message):
    with pytest.raises(MarkerError) as caught:
        parse(text, source="t.j2")
    assert str(caught.value) == message


def test_less_than_that_is_not_a_tag_is_speech():
    assert parse("Breathe <3 times.", source="t") == (Speech("Breathe <3 times.", line=1, paragraph_start=True),)


@pytest.mark.parametrize("text, sentences", [
    ("Hello there.  How are you?", ["Hello there.", "How are you?"]),
    ("Dr. Lee said hi. Then e.g. a walk. Fine!", ["Dr. Lee said hi.", "Then e.g. a walk.", "Fine!"]),
    ("Wait... and breathe. Let go... Now rest.", ["Wait... and breathe.", "Let go...", "Now rest."]),
    ('She said "Rest now." Then you rest.', ['She said "Rest now."', "Then you rest."]),
    ("Is it?\n\nYes.", ["Is it?", "Yes."]),
    ("  \n ", []),
    ("Breathe in , and out ,, slowly .", ["Breathe in, and out, slowly."]),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_clean_text_and_word_count():
    assert clean_text("  a  b\n c ,d , . ") == "a b c,d."
    assert word_count("You're here, with 3 breaths... rest.") == 6


_ALPHABET = st.sampled_from(list("[]<>/=:\"' \n\t.!?abpusehrtmcl0123456789-") + ["[pause ", "[breathe ",
                                                                                  "<break time=", "[[", "s]"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_ALPHABET, max_size=25).map("".join)))
def test_parser_raises_only_marker_errors_with_a_place(text):
    try:
        segments = parse(text, source="fuzz")
    except MarkerError as error:
        lines = text.split("\n")
        assert error.line is not None and 1 <= error.line <= len(lines)
        assert error.column is not None and 1 <= error.column <= len(lines[error.line - 1]) + 1
        assert text.split("\n")[error.line - 1][error.column - 1] in "[<"
    else:
        for segment in segments:
            assert 1 <= segment.line <= text.count("\n") + 1


_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "seconds": 1.0, "m": 60.0, "min": 60.0, "minutes": 60.0}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 59), st.integers(0, 999), st.sampled_from(sorted(_UNIT_SECONDS)),
                          st.sampled_from(["", " "])), min_size=1, max_size=3))
def test_durations_round_trip(parts):
    spec = " ".join(f"{whole}.{frac:03d}{gap}{unit}" for whole, frac, unit, gap in parts)
    expected = sum((whole + frac / 1000) * _UNIT_SECONDS[unit] for whole, frac, unit, _ in parts)
    seconds = parse_duration(spec)
    assert seconds == pytest.approx(expected, abs=1e-9)
    # to the millisecond: half a millisecond off at most (plus float rounding: 5.5 ms -> "0.006s")
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=0.0005 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 3 * 3600, allow_nan=False))
def test_format_duration_round_trips_through_pause_markers(seconds):
    (pause,) = parse(f"[pause {format_duration(seconds)}]", source="t")
    assert math.isclose(pause.seconds, seconds, abs_tol=0.0005)
