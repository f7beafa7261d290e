"""Front matter after Jinja comments and blank lines: read, never spoken, errors at the file's own lines."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from compassion_audio.cli.app import cli
from compassion_audio.core.errors import TemplateError
from compassion_audio.core.segments import Chapter, Pause, Speech
from compassion_audio.script.library import load_exercise
from compassion_audio.script.lint import check_exercise
from compassion_audio.script.templates import render_script, render_text

SAFE = ("You can stop at any time. If it is too much, open your eyes and feel your feet on the floor.\n"
        "Feel your feet, notice the room, and open your eyes.\n")
SOURCED = (
    "{# Source: a published compassionate-place script, transcribed for this clinic. #}\n"  # 1
    "\n"                                                                                    # 2
    "{# Pauses follow the published timings.\n"                                             # 3
    "   Checked with the supervising psychologist. #}\n"                                    # 4
    "+++\n"                                                                                 # 5
    'title = "Safe place, sourced"\n'                                                       # 6
    'lengths = ["short", "standard"]\n'                                                     # 7
    "\n"                                                                                    # 8
    "[params]\n"                                                                            # 9
    'name = { type = "str", default = "", help = "First name." }\n'                         # 10
    'unused = { type = "str", default = "", help = "Never read." }\n'                       # 11
    "+++\n"                                                                                 # 12
    "[chapter Arriving]\n"                                                                  # 13
    "Welcome{{ ', ' ~ name if name else '' }}.\n"                                           # 14
    "[pause 3s]\n"                                                                          # 15
    + SAFE)                                                                                 # 16, 17


def write(tmp_path, text: str, name: str = "sourced.txt.j2"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_front_matter_after_comments_and_blank_lines_is_read_not_spoken(tmp_path):
    exercise = load_exercise(write(tmp_path, SOURCED))
    assert (exercise.title, exercise.lengths, list(exercise.params)) == (
        "Safe place, sourced", ("short", "standard"), ["name", "unused"])
    assert (exercise.front_line, exercise.body_line) == (6, 13)
    assert exercise.key_line("name", table="params") == 10
    assert exercise.key_line("lengths") == 7
    text = render_text(exercise, {"name": "Sam"})
    assert text == "[chapter Arriving]\nWelcome, Sam.\n[pause 3s]\n" + SAFE
    script = render_script(exercise, {"name": "Sam"})
    chapter, welcome, pause = script.segments[:3]
    assert isinstance(chapter, Chapter) and chapter.line == 13
    assert isinstance(welcome, Speech) and welcome.text == "Welcome, Sam."
    assert isinstance(pause, Pause) and pause.line == 15


def test_front_matter_on_line_one_is_unchanged(tmp_path):
    exercise = load_exercise(write(tmp_path, SOURCED.split("+++\n", 1)[1].join(["+++\n", ""])))
    assert (exercise.front_line, exercise.body_line) == (2, 9)
    assert exercise.key_line("name", table="params") == 6


def test_check_points_at_the_files_own_lines(tmp_path):
    report = check_exercise(load_exercise(write(tmp_path, SOURCED)))
    assert [(p.severity, p.message, p.line) for p in report.problems] == [
        ("warning", "param 'unused' is declared but never used", 11)]


def test_check_command_after_a_source_comment(tmp_path):
    path = write(tmp_path, SOURCED.replace("'unused' = ", "").replace(
        'unused = { type = "str", default = "", help = "Never read." }\n', ""))
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("No problems found.\n")


@pytest.mark.parametrize("text, message", [
    ("{# source #}\n+++\ntitle = \"T\"\ncolour = \"blue\"\n+++\n" + SAFE,
     "x.txt.j2:4: unknown front-matter key 'colour' (keys are title, summary, lengths, group, params)"),
    ("\n\n{# source #}\n+++\ntitle = \"T\n+++\n" + SAFE,
     "x.txt.j2:5: front matter is not valid TOML: Unterminated string (check quotes and = signs)"),
    ("{# source #}\n\n+++\ntitle = \"T\"\n",
     "x.txt.j2:3: front matter is not closed (end it with a line of +++)"),
    ("{# source #}\n+++\nparams = { x = { type = \"str\", default = 1 } }\n+++\n" + SAFE,
     None),
    ("{# source #}\nHello.\n+++\ntitle = \"T\"\n[params]\n+++\n" + SAFE,
     "x.txt.j2:3: front matter must come first "
     "(only blank lines and {# comments #} may come before its +++ line)"),
    ("{% set s = 1 %}\n+++\ntitle = \"T\"\n+++\n" + SAFE,
     "x.txt.j2:2: front matter must come first "
     "(only blank lines and {# comments #} may come before its +++ line)"),
])
def test_errors_name_the_files_own_line(tmp_path, text, message):
    with pytest.raises(TemplateError) as info:
        load_exercise(write(tmp_path, text, "x.txt.j2"))
    error = str(info.value).replace(str(tmp_path) + "/", "")
    if message is None:
        # A key not written on its own line (in an inline table) points at the opening +++.
        assert error.startswith("x.txt.j2:2: ") and "'x'" in error, error
    else:
        assert error == message


def test_a_plus_line_inside_a_comment_is_not_front_matter(tmp_path):
    text = "{# An example of front matter:\n+++\ntitle = \"No\"\n+++\n#}\n" + SAFE
    exercise = load_exercise(write(tmp_path, text))
    assert exercise.title == "Sourced" and exercise.params == {}
    assert render_text(exercise) == SAFE
