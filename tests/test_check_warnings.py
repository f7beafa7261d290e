"""`check` warnings: the template file's own line numbers, no false doubled space, pause notes flagged."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from compassion_audio.cli.app import cli
from compassion_audio.script.library import find_exercise
from compassion_audio.script.lint import check_exercise, reading_problems
from compassion_audio.script.source_lines import template_lines
from compassion_audio.script.templates import render_text

START = "You can stop at any time. If it is too much, open your eyes and feel your feet on the floor."
END = "Feel your feet, notice the room, and open your eyes."
EXAMPLE = "write a pause marker with its length, e.g. [pause 10s]"
NOTES = f"""\
{{# A published script transcribed, its pause notes left in by mistake. #}}
+++
title = "Notes"
group = true
[params]
name = {{ type = "str", default = "", help = "First name." }}
+++
{{# The opening. #}}
{{% set who = name if name and not group else "" %}}
{{% macro note() %}}(10 secs){{% endmacro %}}
{START}
Think. [pause 15s] Alongside.
{{% if group %}}
Everyone, breathe gently (10 secs) and rest.
{{% else %}}
Breathe gently{{{{ ", " ~ who if who else "" }}}} (10 secs) and rest.
{{% endif %}}
(pause)
Pause for 30 seconds.
Rest here (PAUSE).
{{{{ note() }}}}

Notice how that feels...

…
[pause 1m]
Breathe in... and out. Notice the breath...
[pause 5s]
Pause for a moment and notice your feet.
{END}
"""
INDIVIDUAL, GROUP = "standard, individual, empty profile: ", "standard, group, empty profile: "
EXPECTED = [
    (INDIVIDUAL + '"(10 secs)" would be spoken; write [pause 10s]', 16),
    (INDIVIDUAL + f'"(pause)" would be spoken; {EXAMPLE}', 18),
    (INDIVIDUAL + '"Pause for 30 seconds." would be spoken; write [pause 30s]', 19),
    (INDIVIDUAL + f'"(PAUSE)" would be spoken; {EXAMPLE}', 20),
    (INDIVIDUAL + '"(10 secs)" would be spoken; write [pause 10s]', 21),
    (INDIVIDUAL + f'"..." makes no pause (the voice runs straight on); {EXAMPLE}', 23),
    (INDIVIDUAL + f'"…" makes no pause (the voice runs straight on); {EXAMPLE}', 25),
    (GROUP + '"(10 secs)" would be spoken; write [pause 10s]', 14),
]


def exercise_from(tmp_path, text: str, name: str = "notes"):
    path = tmp_path / f"{name}.txt.j2"
    path.write_text(text, encoding="utf-8")
    return find_exercise(str(path))


def test_warnings_carry_the_template_line_and_the_marker_to_write(tmp_path):
    """Comments, a set and a macro come first, so rendered and template lines differ; each
    note is reported once at its file line (both variants agree where they share a line)."""
    report = check_exercise(exercise_from(tmp_path, NOTES))
    assert [(p.severity, p.message, p.line) for p in report.problems] == [
        ("warning", message, line) for message, line in EXPECTED]


def test_check_command_prints_file_line_warnings(tmp_path):
    exercise = exercise_from(tmp_path, NOTES)
    result = CliRunner().invoke(cli, ["check", str(exercise.path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"{exercise.path}:{line}: warning: {message}" for message, line in EXPECTED]


def test_every_rendered_line_maps_to_its_template_line(tmp_path):
    exercise = exercise_from(tmp_path, NOTES)
    text = render_text(exercise, length="standard", group=False)
    lines = template_lines(exercise, {}, length="standard", group=False, text=text)
    source = exercise.path.read_text(encoding="utf-8").splitlines()
    mapped = dict(zip(text.splitlines(), lines))
    assert mapped[START] == 11 and source[10] == START
    assert mapped["Breathe gently (10 secs) and rest."] == 16
    assert mapped["(10 secs)"] == 21 and source[20] == "{{ note() }}"
    assert mapped[END] == 30 and source[29] == END
    assert all((line is None) == (words == "") for words, line in zip(text.splitlines(), lines))


@pytest.mark.parametrize("middle, expected", [
    ("Think. [pause 15s] Alongside.", []),
    ("Think.[pause 15s]Alongside. [bell] Rest.", []),
    ("Breathe gently (10 secs) and rest.", ['line 2: "(10 secs)" would be spoken; write [pause 10s]']),
    ("(Pause for 1 minute 30 seconds)", ['line 2: "(Pause for 1 minute 30 seconds)" would be spoken; '
                                         "write [pause 1m 30s]"]),
    ("(about thirty seconds)", ['line 2: "(about thirty seconds)" would be spoken; write [pause 30s]']),
    ("(2-3 minutes)", [f'line 2: "(2-3 minutes)" would be spoken; {EXAMPLE}']),
    ("PAUSE", [f'line 2: "PAUSE" would be spoken; {EXAMPLE}']),
    ("Long pause.", [f'line 2: "Long pause." would be spoken; {EXAMPLE}']),
    ("Rest. Pause 20 seconds. Then notice.", ['line 2: "Pause 20 seconds." would be spoken; write [pause 20s]']),
    ("...", [f'line 2: "..." makes no pause (the voice runs straight on); {EXAMPLE}']),
    ("Notice that...\n\nThen this.", [f'line 2: "..." makes no pause (the voice runs straight on); {EXAMPLE}']),
    ("Notice that…\n[chapter Next]\nThen this.",
     [f'line 2: "…" makes no pause (the voice runs straight on); {EXAMPLE}']),
    ("Notice that...\n\n[pause 10s]\nThen this.", []),
    ("Notice that... [breathe 2m]", []),
    ("Breathe in... and out.", []),
    ("Notice that...\nThen this.", []),
    ("Pause for a moment and notice your feet.", []),
    ("Take a pause, and rest (as long as you like).", []),
    ("Ask a friend (Jo, or someone at work).", []),
])
def test_reading_checks_on_rendered_text(middle, expected):
    assert reading_problems(f"{START}\n{middle}\n{END}\n", group=False, name=None) == expected


def test_a_template_that_reads_its_own_text_gets_rendered_lines(tmp_path):
    """Template code that measures its own text cannot be traced to file lines: the warning
    says which line of the rendered text it is on rather than pointing at a wrong one."""
    text = (f"{START}\n{{% set s %}}Breathe in and.{{% endset %}}\n"
            "{{ s }} That is {{ s|length }} letters.\n" + END + "\n")
    report = check_exercise(exercise_from(tmp_path, text, "measured"))
    assert [(p.message, p.line) for p in report.problems] == [
        ("standard, individual, empty profile: a dangling 'and'/'or' before punctuation: 'and.' "
         "(line 2 of the rendered text)", None)]


def test_a_first_chapter_after_speech_is_flagged(tmp_path):
    text = f"{START}\n[chapter Middle]\n[pause 2s]\n{END}\n"
    report = check_exercise(exercise_from(tmp_path, text, "late-chapter"))
    assert [(p.message, p.line) for p in report.problems] == [
        ("standard, individual, empty profile: the first [chapter] comes after speech; players "
         "start the first chapter at 0:00, so the words before it fall under its title: put the "
         "marker first", 2)]


def test_a_capital_pause_marker_without_a_length_stops_check_at_its_line(tmp_path):
    path = tmp_path / "capitals.txt.j2"
    path.write_text(f"{{# source #}}\n+++\ntitle = \"C\"\n+++\n{START}\n[PAUSE]\n{END}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {path}:6:1: [pause] needs a duration (write e.g. [pause 30s])\n"


def test_built_in_exercises_have_no_pause_notes():
    from compassion_audio.script.library import list_exercises

    for exercise in list_exercises():
        found = [p for p in check_exercise(exercise).problems
                 if "would be spoken" in p.message or "makes no pause" in p.message]
        assert found == [], exercise.name
