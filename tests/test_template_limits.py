"""The limits on templates (core/limits.py), each reached quickly and refused before anything is
spoken: the file's size and encoding, the rendered text, the values a template makes, the work a
render does, and the track's length. Every refusal is a TemplateError naming the file, the line
when known, and the limit in the user's words; and no engine is asked for a phrase."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from compassion_audio.core.errors import TemplateError
from compassion_audio.core.limits import MAX_SCRIPT_CHARS, MAX_TEMPLATE_BYTES, MAX_TRACK_SECONDS
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.script import sandbox
from compassion_audio.script.library import list_exercises, load_exercise
from compassion_audio.script.lint import sample_profile, template_values
from compassion_audio.script.templates import render_script, render_text, shortest_seconds

FAST_SECONDS = 5.0
"""Each refusal comes within this (most take well under a second; the machine is shared)."""

TOO_LARGE = ("the template is larger than 1 MB (the largest template read) "
             "(a practice script is a few KB; split it or take out what is repeated)")
NOT_UTF8 = ("the template is not UTF-8 text (byte {} of the line cannot be read) "
            "(save it as UTF-8: in most editors, Save As with the encoding UTF-8)")
BINARY = "the template is a binary file, not text (give a .txt.j2 file of plain text saved as UTF-8)"
TEXT_TOO_LONG = ("the script would be longer than 200,000 characters (the most text a script may hold) "
                 "(look for a loop that repeats its text too often)")
VALUE_TOO_BIG = ("the template would make a value longer than 200,000 characters or items "
                 "(the most text a script may hold) "
                 "(look for text or a list multiplied, padded or repeated by a large number)")
TOO_MUCH_WORK = ("the template takes more than 1,000,000 steps to render (the most a render may take) "
                 "(look for a loop inside a loop, or a loop over a very long list or text)")
TRACK_TOO_LONG = ("the script would be longer than 3 hours (the longest track allowed) "
                  "(shorten its pauses, breathing stretches or text)")

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")

# (case id, template text, message after "<file>:<line>: " or "<file>: ", line or None)
RENDER_CASES = [
    ("nested-loops-writing", "Hello.\n{% for i in range(100000) %}{% for j in range(100000) %}x"
     "{% endfor %}{% endfor %}\n", TEXT_TOO_LONG, 2),
    ("one-loop-writing", "Hello.\n\n{% for i in range(100000) %}Breathe in. {% endfor %}\n", TEXT_TOO_LONG, 3),
    ("string-times-a-billion", 'Hello.\n{{ "x" * 10**9 }}\n', VALUE_TOO_BIG, 2),
    ("length-of-a-billion", 'Hello.\n{{ ("x" * 10**9)|length }}\n', VALUE_TOO_BIG, 2),
    ("list-times-a-billion", "Hello.\n{% set l = [1, 2] * 10**9 %}\n", VALUE_TOO_BIG, 2),
    ("power-tower", "Hello.\n{{ 10 ** (10 ** 7) }}\n", VALUE_TOO_BIG, 2),
    ("percent-width", 'Hello.\n{{ "%999999999d" % 1 }}\n', VALUE_TOO_BIG, 2),
    ("format-width", 'Hello.\n{{ "{:>999999999}".format(1) }}\n', VALUE_TOO_BIG, 2),
    ("format-width-argument", 'Hello.\n{{ "{:>{w}}".format(1, w=999999999) }}\n', VALUE_TOO_BIG, 2),
    ("center-filter", 'Hello.\n{{ "x"|center(999999999) }}\n', VALUE_TOO_BIG, 2),
    ("indent-filter", 'Hello.\n{{ ("a\\n" * 50000)|indent(100000) }}\n', VALUE_TOO_BIG, 2),
    ("replace-method", 'Hello.\n{% set s = "x" * 200000 %}{{ s.replace("", s) }}\n', VALUE_TOO_BIG, 2),
    ("join-of-lists", "Hello.\n{% set l = range(100000)|list %}{{ ([l] * 100000)|join }}\n", VALUE_TOO_BIG, 2),
    ("doubling-with-tilde", 'Hello.\n{% set ns = namespace(s="x") %}{% for i in range(40) %}'
     "{% set ns.s = ns.s ~ ns.s %}{% endfor %}\n", VALUE_TOO_BIG, 2),
    ("doubling-a-list", "Hello.\n{% set l = [1] %}{% for i in range(40) %}{% set _ = l.extend(l) %}"
     "{% endfor %}\n", VALUE_TOO_BIG, 2),
    ("silent-nested-loops", "Hello.\n{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
     "{% endfor %}\n", TOO_MUCH_WORK, 2),
    ("silent-loops-over-a-long-text", 'Hello.\n{% set s = "ab" * 100000 %}\n{% for a in s %}{% for b in s %}'
     "{% endfor %}{% endfor %}\n", TOO_MUCH_WORK, 3),
    ("silent-loops-over-a-long-list", "Hello.\n{% set l = range(100000)|list %}{% for a in l %}{% for b in l %}"
     "{% endfor %}{% endfor %}\n", TOO_MUCH_WORK, 2),
    ("filters-in-a-loop", 'Hello.\n{% set s = "x" * 200000 %}{% for i in range(100000) %}'
     "{% set y = s|list|sort|join %}{% endfor %}\n", TOO_MUCH_WORK, 2),
    ("macro-output-in-a-set-block", 'Hello.\n{% macro big() %}{{ "x" * 200000 }}{% endmacro %}'
     "{% set kept %}{% for i in range(100000) %}{{ big() }}{% endfor %}{% endset %}\n", TOO_MUCH_WORK, 2),
    ("pauses-over-three-hours", "Hello.\n[pause 2h]\nStill here.\n[pause 1h 1m]\nBye.\n", TRACK_TOO_LONG, None),
    ("words-over-three-hours", "Hello.\n{% for i in range(40000) %}a {% endfor %}\n", TRACK_TOO_LONG, None),
    ("breaths-over-three-hours", "Hello.\n[breathe 2000 breaths]\n[breathe 2000 breaths]\n[breathe 2000 breaths]\n"
     "Bye.\n", TRACK_TOO_LONG, None),
]


def write(tmp_path: Path, text: str | bytes, name: str = "t.txt.j2") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


@pytest.mark.parametrize("text, message, line", [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES])
def test_render_limit_is_refused_quickly(text: str, message: str, line: int | None, tmp_path: Path):
    exercise = load_exercise(write(tmp_path, text))
    start = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render_script(exercise, {})
    elapsed = time.perf_counter() - start
    assert str(caught.value) == f"{where(exercise.path, line)}: {message}"
    assert elapsed < FAST_SECONDS, f"refused after {elapsed:.1f} s"


@pytest.mark.parametrize("text, message, line", [c[1:] for c in RENDER_CASES if c[0] in (
    "nested-loops-writing", "string-times-a-billion", "silent-nested-loops", "pauses-over-three-hours")],
    ids=["text", "value", "work", "track"])
def test_render_limit_is_refused_before_any_speech(text, message, line, tmp_path: Path, fake_engine):
    path = write(tmp_path, text)
    output = tmp_path / "out" / "t.wav"
    request = TrackRequest(exercise=str(path), output=output, cache_dir=tmp_path / "cache")
    with pytest.raises(TemplateError) as caught:
        render_track(request, engine=fake_engine)
    assert str(caught.value) == f"{where(path, line)}: {message}"
    assert fake_engine.calls == []
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_template_over_the_size_limit_is_refused_unread(tmp_path: Path):
    path = tmp_path / "t.txt.j2"
    with open(path, "wb") as file:  # a sparse 4 GB file: reading it whole would take minutes
        file.truncate(4 * 1024 ** 3)
    start = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        load_exercise(path)
    assert str(caught.value) == f"{path}: {TOO_LARGE}"
    assert time.perf_counter() - start < 1.0


def test_template_at_the_size_limit_is_read(tmp_path: Path):
    text = "Hello there.\n{# " + "padding " * (MAX_TEMPLATE_BYTES // 8)
    text = text[:MAX_TEMPLATE_BYTES - 4] + " #}\n"
    path = write(tmp_path, text)
    assert path.stat().st_size == MAX_TEMPLATE_BYTES
    assert render_text(load_exercise(path), {}).strip() == "Hello there."
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(TemplateError) as caught:
        load_exercise(path)
    assert str(caught.value) == f"{path}: {TOO_LARGE}"


def test_non_utf8_template_names_the_line_and_byte(tmp_path: Path):
    path = write(tmp_path, "Hello.\nCaf\xe9 au lait.\n".encode("latin-1"))
    with pytest.raises(TemplateError) as caught:
        load_exercise(path)
    assert str(caught.value) == f"{path}:2: {NOT_UTF8.format(4)}"


def test_binary_template_is_refused(tmp_path: Path):
    path = write(tmp_path, PNG, "picture.txt.j2")
    with pytest.raises(TemplateError) as caught:
        load_exercise(path)
    assert str(caught.value) == f"{path}:3: {BINARY}"


def test_a_track_just_under_the_length_limit_is_not_refused(tmp_path: Path):
    # 2 h 59 m of pauses and a few words: under the limit even at the slowest rate... of the
    # lower bound, so it renders (the real track may come out longer; that is not refused here).
    exercise = load_exercise(write(tmp_path, "Hello there.\n[pause 2h]\nStill here.\n[pause 59m]\nBye.\n"))
    script = render_script(exercise, {})
    assert MAX_TRACK_SECONDS - 60 < shortest_seconds(script) < MAX_TRACK_SECONDS


def test_a_script_at_the_text_limit_is_not_refused(tmp_path: Path):
    # Exactly MAX_SCRIPT_CHARS characters written (by a loop) render; one more is refused.
    unit = "Be here. "
    times, rest = divmod(MAX_SCRIPT_CHARS - 1, len(unit))
    text = f"{{% for i in range({times}) %}}{unit}{{% endfor %}}{'x' * rest}\n"
    assert len(text) < MAX_SCRIPT_CHARS
    exercise = load_exercise(write(tmp_path, text))
    assert len(render_text(exercise, {})) == MAX_SCRIPT_CHARS
    exercise = load_exercise(write(tmp_path, text.replace("\n", "x\n")))
    with pytest.raises(TemplateError) as caught:
        render_text(exercise, {})
    assert str(caught.value) == f"{exercise.path}:1: {TEXT_TOO_LONG}"


def test_built_in_exercises_render_far_inside_the_step_budget(monkeypatch):
    # Every built-in exercise, at every length and variant, with an empty and a full profile,
    # renders within a hundredth of the real budget (the most any takes is under 3,000 steps).
    monkeypatch.setattr(sandbox, "MAX_TEMPLATE_STEPS", 10_000)
    renders = 0
    for exercise in list_exercises():
        for length in exercise.lengths:
            for group in (False, True) if exercise.group else (False,):
                for values in ({}, template_values(exercise, sample_profile())):
                    render_script(exercise, values, length=length, group=group)
                    renders += 1
    assert renders >= 100


def test_lint_reports_a_track_over_the_length_limit(tmp_path: Path):
    from compassion_audio.script.lint import check_exercise

    exercise = load_exercise(write(tmp_path, "Hello.\n[pause 2h]\nStill here.\n[pause 1h 1m]\nBye.\n"))
    errors = [p.message for p in check_exercise(exercise).problems if p.severity == "error"]
    assert errors == ["standard, individual, empty profile: the script would be longer than 3 hours "
                      "(the longest track allowed)"]
