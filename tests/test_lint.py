"""Template lint: a bad template's problems, reading checks, the scaffold passing clean."""
from __future__ import annotations

import pytest

from compassion_audio.core.errors import TemplateError
from compassion_audio.core.segments import Script
from compassion_audio.core.settings import BreathingSettings
from compassion_audio.script.library import find_exercise
from compassion_audio.script.lint import check_exercise, reading_problems
from compassion_audio.script.scaffold import new_template
from compassion_audio.sound.estimate import estimate_timeline

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
    # Rendering fails on the undefined name, so no version rendered.
    assert report.versions == {}
    assert not report.ok


def test_reading_problems_in_a_rendered_bad_template(tmp_path):
    text = BAD.replace("{{ mystery }}\n", "")
    report = check_exercise(exercise_from(tmp_path, "bad", text))
    found = " | ".join(p.message for p in report.problems)
    assert "a dangling 'and'/'or' before punctuation: 'and.'" in found
    assert "param 'unused' is declared but never used" in found
    assert "the client's name" not in found                     # the renderer blanks it in groups
    assert set(report.versions) == {(length, variant, kind) for length in ("short", "standard")
                                    for variant in ("individual", "group") for kind in ("empty", "full")}


def test_marker_error_is_reported_with_its_line(tmp_path):
    text = GOOD_START + "\n\n[pause {{ 'soon' if length == 'standard' else '5s' }}]\n" + GOOD_END + "\n"
    report = check_exercise(exercise_from(tmp_path, "marker", text))
    errors = [p for p in report.problems if p.severity == "error"]
    assert [p.message for p in errors] == [
        "standard, individual, empty profile: bad duration (line 3 of the rendered text)"]


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


def test_versions_carry_their_script_and_the_profile_breathing(tmp_path):
    """Lint hands back each version for the caller to time (sound.estimate): the full sample
    profile breathes at 5.5 breaths/min, the empty one at the default."""
    text = GOOD_START + "\n[breathe 6 breaths]\n" + GOOD_END + "\n"
    report = check_exercise(exercise_from(tmp_path, "breaths", text))
    assert report.problems == [] and set(report.versions) == {("standard", "individual", "empty"),
                                                              ("standard", "individual", "full")}
    empty, full = report.versions[("standard", "individual", "empty")], report.versions[
        ("standard", "individual", "full")]
    assert isinstance(empty.script, Script) and empty.script.meta["variant"] == "individual"
    assert empty.breathing == BreathingSettings()
    assert full.breathing == BreathingSettings(breaths_per_min=5.5, ratio=(4.0, 6.0))


def test_scaffold_passes_lint_clean(tmp_path):
    text = new_template("morning-kindness")
    exercise = exercise_from(tmp_path, "morning-kindness", text)
    report = check_exercise(exercise)
    assert report.problems == []
    assert exercise.title == "Morning kindness" and exercise.group
    assert len(report.versions) == 12
    assert all(estimate_timeline(v.script, breathing=v.breathing).seconds > 60 for v in report.versions.values())
    for marker in ("[pause", "[breathe", "[chapter", "bell", "pick(", "join_and", "pause(", "breathe("):
        assert marker in text


def test_scaffold_rejects_unusable_names():
    with pytest.raises(TemplateError):
        new_template("../evil name")
