"""TOML helpers: errors at file:line:column, the line of a key, and files that start with a byte-order mark."""
from __future__ import annotations

import pytest

from compassion_audio.core.errors import ProfileError, ProgrammeError, TemplateError
from compassion_audio.core.tomlfile import line_of_key, load_toml, parse_toml
from compassion_audio.script.library import load_exercise
from compassion_audio.script.profile import load_profile
from compassion_audio.script.programmes import load_programme
from compassion_audio.speech.voices import load_voice_profile

BOM = "\ufeff"


@pytest.mark.parametrize("text, first_line, where, message", [
    ('a = 1\nb = [x]\n', 1, "t.toml:2:6", "Invalid value"),
    ('a = 1\nb = [x]\n', 2, "t.toml:3:6", "Invalid value"),
    ('a = 1\nb = "open\n', 1, "t.toml:2:10", "Illegal character '\\n'"),
    ('a = 1\nb = ', 1, "t.toml:2", "Invalid value"),          # at the end of the document
    ('a = 1\na = 2\n', 1, "t.toml:2:6", "Cannot overwrite a value"),
])
def test_syntax_errors_name_line_and_column(text, first_line, where, message):
    with pytest.raises(ProfileError) as caught:
        parse_toml(text, source="t.toml", first_line=first_line)
    assert str(caught.value) == f"{where}: not valid TOML: {message} (check quotes and = signs)"


def test_the_error_class_and_the_part_are_the_callers(tmp_path):
    with pytest.raises(TemplateError) as caught:
        parse_toml("x = ", source="t.j2", error=TemplateError, first_line=2, part="front matter")
    assert str(caught.value) == "t.j2:2: front matter is not valid TOML: Invalid value (check quotes and = signs)"
    with pytest.raises(ProgrammeError) as missing:
        load_toml(tmp_path / "nowhere.toml", error=ProgrammeError)
    assert str(missing.value) == f"{tmp_path / 'nowhere.toml'}: file not found"


TEXT = '''\
title = "T"
"quoted" = 1
place.smell = "pine"
inline = { smell = 3 }

[params]
name = { type = "str" }
"place.sight" = { type = "str" }

[params.figure]
form = { type = "str" }

[[weeks]]
note = "one"

[lexicon]
CFT = "C F T"
"e.g." = "for example"
'''


@pytest.mark.parametrize("key, table, line", [
    ("title", None, 1), ("quoted", None, 2), ("place.smell", None, 3), ("inline.smell", None, 4),
    ("name", "params", 7), ("params.name", None, 7), ("place.sight", "params", 8),
    ("figure.form", "params", 11), ("figure", "params", 10), ("weeks.note", None, 14),
    ("CFT", "lexicon", 17), ("e.g.", "lexicon", 18), ("lexicon", None, 16),
    ("name", None, None), ("title", "params", None), ("missing", "params", None),
])
def test_line_of_key(key, table, line):
    assert line_of_key(TEXT, key, table) == line
    assert line_of_key(BOM + TEXT, key, table) == line


def test_files_with_a_byte_order_mark_load(tmp_path):
    """Windows editors write one; each kind of TOML file must still load, with errors on the right line."""
    profile = tmp_path / "client.toml"
    profile.write_text(BOM + 'name = "Sam"\n[breathing]\nratio = "4:6"\n', encoding="utf-8")
    assert load_profile(profile).values == {"name": "Sam"}
    profile.write_text(BOM + 'name = "Sam"\nnmae = "Sam"\n', encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(profile)
    assert str(caught.value) == f"{profile}:2: unknown key 'nmae' (did you mean 'name'?)"

    voice = tmp_path / "voice.toml"
    voice.write_text(BOM + 'name = "Mine"\nrate_wpm = 120\n', encoding="utf-8")
    assert load_voice_profile(voice).name == "Mine"

    programme = tmp_path / "course.toml"
    programme.write_text(BOM + 'title = "Course"\n[[weeks]]\ntracks = [{ exercise = "three-systems", '
                         'length = "short" }]\n', encoding="utf-8")
    assert load_programme(str(programme)).title == "Course"

    template = tmp_path / "bom.txt.j2"
    template.write_text(BOM + '+++\ntitle = "With a mark"\n+++\nHello there.\n', encoding="utf-8")
    exercise = load_exercise(template)
    assert exercise.title == "With a mark" and exercise.body_line == 4
