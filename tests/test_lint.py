"""Template lint: a bad template's problems, reading checks, the scaffold passing clean."""
from __future__ import annotations

import pytest

from compassion_audio.core.errors import TemplateError
from compassion_audio.script.lint import check_exercise, estimate_seconds, reading_problems
from compassion_audio.script.markers import parse
from compassion_audio.script.scaffold import new_template
from compassion_audio.script.templates import find_exercise

GOOD_START = ("You can stop at any time. If it is too much, open your eyes and feel your feet on the floor. ")
GOOD_END = " Feel your feet, notice the room, and open your eyes."

BAD = """\
+++
title = "Bad"
lengths = ["short", "standard"]
group = true

[params]
name = { type = "str", default = "", help = "Name." }
unused = { type = "str", default = "", help = "Never read." }
"place.smell" = { type = "str", default = "", help = "Smell." }
+++
Welcome {{ name }}. You can stop at any time; open your eyes and feel your feet on the floor.
{{ mystery }}
[pause 5s]
Notice the smell of {{ place.smell }}.
Breathe in and.
"""


def exercise_from(tmp_path, name, text):
    path = tmp_path / f"{name}.txt.j2"
    path.write_text(text, encoding="utf-8")
    return find_exercise(str(path))


def test_bad_template_problems(tmp_path):
    report = check_exercise(exercise_from(tmp_path, "bad", BAD))
    messages = [(p.severity, p.message, p.line) for p in report.problems]
    assert ("error", "'mystery' is used but not declared in [params]", 12) in messages
    assert ("warning", "param 'unused' is declared but never used", 8) in messages
    # Rendering fails on the undefined name, so there are no durations.
    assert report.durations == {}
    assert not report.ok


def test_reading_problems_in_a_rendered_bad_template(tmp_path):
    text = BAD.replace("{{ mystery }}\n", "")
    report = check_exercise(exercise_from(tmp_path, "bad", text))
    found = " | ".join(p.message for p in report.problems)
    assert "a dangling 'and'/'or' before punctuation: 'and.'" in found
    assert "param 'unused' is declared but never used" in found
    assert "the client's name" not in found                     # the renderer blanks it in groups
    assert set(report.durations) == {(length, variant, kind) for length in ("short", "standard")
                                     for variant in ("solo", "group") for kind in ("empty", "full")}


def test_marker_error_is_reported_with_its_line(tmp_path):
    text = GOOD_START + "\n\n[pause {{ 'soon' if length == 'standard' else '5s' }}]\n" + GOOD_END + "\n"
    report = check_exercise(exercise_from(tmp_path, "marker", text))
    errors = [p for p in report.problems if p.severity == "error"]
    assert [p.message for p in errors] == [
        "standard, solo, empty profile: bad duration 'soon' (line 3 of the rendered text)"]


@pytest.mark.parametrize("text, expected", [
    ("Hello None.", "the word None"),
    ("Hello  there.", "a doubled space"),
    ("Hello,, there.", "doubled punctuation"),
    ("Hello , there.", "a space before punctuation"),
    ('Say "" now.', "empty quotes"),
    ("Bring to mind sand and.", "dangling"),
    ("Bring to mind {{ x }}.", "template code"),
    ("the the end.", "a doubled word"),
])
def test_reading_checks_each_rule(text, expected):
    problems = reading_problems(GOOD_START + text + GOOD_END, group=False, name=None)
    assert len(problems) == 1 and expected in problems[0]


def test_reading_checks_safety_lines_and_names():
    assert reading_problems(GOOD_START + GOOD_END.strip(), group=False, name=None) == []
    assert any("no way out" in p for p in reading_problems("Hello." + GOOD_END, group=False, name=None))
    assert any("no return" in p for p in reading_problems(GOOD_START + "Bye now, friend. " * 20, group=False, name=None))
    named = GOOD_START + "Welcome, Robin." + GOOD_END
    assert reading_problems(named, group=False, name="Robin") == []
    assert any("'Robin' appears" in p for p in reading_problems(named, group=True, name="Robin"))


def test_estimate_counts_words_pauses_and_breathing():
    words = " ".join(["word"] * 130)
    segments = parse(f"{words}.\n[pause 30s]\n[breathe 12 breaths rate=6]\n[breathe 1m]\n", source="t")
    assert estimate_seconds(segments) == pytest.approx(60 + 30 + 120 + 60)


def test_scaffold_passes_lint_clean(tmp_path):
    text = new_template("morning-kindness")
    exercise = exercise_from(tmp_path, "morning-kindness", text)
    report = check_exercise(exercise)
    assert report.problems == []
    assert exercise.title == "Morning kindness" and exercise.group
    assert len(report.durations) == 12 and all(s > 60 for s in report.durations.values())
    for marker in ("[pause", "[breathe", "[chapter", "bell", "pick(", "join_and", "pause(", "breathe("):
        assert marker in text


def test_scaffold_rejects_unusable_names():
    with pytest.raises(TemplateError):
        new_template("../evil name")
