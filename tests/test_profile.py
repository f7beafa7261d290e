"""Client profiles: loading, validation with exact lines, overrides and the fill-in template."""
from __future__ import annotations

import sys

import pytest

from compassion_audio.core.errors import ProfileError
from compassion_audio.script.lint import SAMPLE_PROFILE
from compassion_audio.script.profile import (apply_overrides, empty_profile, load_profile, parse_profile,
                                      profile_template)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def write(tmp_path, text):
    path = tmp_path / "client.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_profile_loads_typed_values(tmp_path):
    profile = load_profile(write(tmp_path, SAMPLE_PROFILE))
    assert profile.values["name"] == "Robin"
    assert profile.values["place.smell"] == "salt in the air"
    assert profile.values["figure.qualities"] == ["wise", "strong", "patient"]
    assert profile.breathing == {"breaths_per_min": 5.5, "ratio": (4.0, 6.0)}
    assert profile.length == "standard" and profile.voice is None
    assert "length" not in profile.values and "breathing.ratio" not in profile.values


def test_empty_profile_has_nothing():
    profile = empty_profile()
    assert profile.values == {} and profile.breathing == {} and profile.length is None


@pytest.mark.parametrize("text, line, message, hint", [
    ('name = "Sam"\n[place]\nsmel = "pine"\n', 3, "unknown key 'place.smel'", "did you mean 'place.smell'?"),
    ('name = "Sam"\nachievements = "a 5k"\n', 2, "achievements must be a list of strings", None),
    ('\n\n[breathing]\nbreaths_per_min = 20\n', 4, "breathing.breaths_per_min is 20; it must be between 3 and 12", None),
    ('[breathing]\nhold_out_seconds = -1\n', 2, "breathing.hold_out_seconds is -1; it must be between 0 and 10", None),
    ('[breathing]\nratio = "4-6"\n', 2, "breathing.ratio: '4-6' is not an in:out ratio",
     "write two positive numbers separated by ':', e.g. 4:6"),
    ('colour = "gold"\nname = "' + "x" * 1001 + '"\n', 2, "name is 1001 characters long; at most 1000", None),
    ('friends = [' + ", ".join(['"a"'] * 21) + ']\n', 1, "friends has 21 items; at most 20", None),
    ('name = "Sam\\u0007"\n', 1, "name contains the control character U+0007",
     "remove it; tabs and line breaks are fine"),
    ('[figure]\npronouns = "xe/xem"\n', 2, "figure.pronouns is not one of they/them, he/him, she/her or it/its", None),
    ('length = "medium"\n', 1, "length is not one of short, standard, long", None),
    ('nmae = "Sam"\n', 1, "unknown key 'nmae'", "did you mean 'name'?"),
    ('place = { smell = 3 }\n', 1, "place.smell must be text", None),
])
def test_validation_names_file_line_and_problem(tmp_path, text, line, message, hint):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    err = info.value
    assert (err.source, err.line, err.message) == (str(path), line, message)
    if hint:
        assert err.hint == hint
    assert str(err).startswith(f"{path}:{line}: {message}")


def test_syntax_error_has_line(tmp_path):
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, 'name = "Sam"\ncolour = \n'))
    assert info.value.line == 2 and "not valid TOML" in info.value.message


def test_overrides_parse_types_and_keep_the_rest():
    base = parse_profile(SAMPLE_PROFILE)
    new = apply_overrides(base, {"place.smell": "pine", "breathing.breaths_per_min": "5",
                                 "friends": "Jo; Sam", "kind_phrases": '["Easy now", "I can rest"]',
                                 "length": "long"})
    assert new.values["place.smell"] == "pine"
    assert new.values["friends"] == ["Jo", "Sam"]
    assert new.values["kind_phrases"] == ["Easy now", "I can rest"]
    assert new.breathing["breaths_per_min"] == 5.0 and new.breathing["ratio"] == (4.0, 6.0)
    assert new.length == "long" and new.values["name"] == "Robin"
    assert base.values["place.smell"] == "salt in the air"


@pytest.mark.parametrize("key, value, message", [
    ("breathing.breaths_per_min", "fast", "breathing.breaths_per_min must be a number, not 'fast'"),
    ("breathing.breaths_per_min", "2", "breathing.breaths_per_min is 2.0; it must be between 3 and 12"),
    ("place.smel", "pine", "unknown key 'place.smel'"),
])
def test_bad_overrides(key, value, message):
    with pytest.raises(ProfileError) as info:
        apply_overrides(empty_profile(), {key: value})
    assert info.value.message == message and info.value.source == "-s"


def test_profile_template_lists_every_key_and_loads_when_uncommented(tmp_path):
    text = profile_template()
    assert "health" in text and "PRIVACY" in text
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line
                            for line in text.splitlines())
    data = tomllib.loads(uncommented)
    assert set(data["place"]) == {"description", "sight", "sounds", "touch", "smell", "anchor_word"}
    profile = load_profile(write(tmp_path, uncommented))
    assert profile.values["figure.pronouns"] == "it/its"
    assert profile.breathing["hold_in_seconds"] == 0.0
    assert tomllib.loads(text) == {"place": {}, "figure": {}, "breathing": {}}
