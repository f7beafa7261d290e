"""Exercise templates: reading quality, timing targets, front matter, params, errors (goldens: test_golden.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from compassion_audio.core.errors import ExerciseNotFound, MarkerError, ParameterError, TemplateError
from compassion_audio.core.segments import Chapter, Pause
from compassion_audio.script import library, templates
from compassion_audio.script.params import coerce_values
from compassion_audio.sound.estimate import estimate_timeline

EXERCISES = ("soothing-rhythm-breathing", "compassionate-self")
TARGET_MINUTES = {
    "soothing-rhythm-breathing": {"short": 2, "standard": 8, "long": 12},
    "compassionate-self": {"short": 3, "standard": 12, "long": 15},
}
FRAME_MINUTES = 0.3
"""What a track adds around the practice: 1 s lead-in, the opening bell's 4.1 s ring, the
closing bell's 8 s, the gaps around them and a 2 s tail (17.9 s)."""
# Every canonical client parameter, as a clinician's profile would carry them.
FULL = {
    "name": "Robin",
    "pronouns": "she/her",
    "place": {"description": "a quiet beach at dusk", "sight": "soft pink light on the water",
              "sounds": "small waves", "touch": "warm sand", "smell": "salt air", "anchor_word": "shore"},
    "figure.form": "an old oak tree",
    "figure.qualities": ["wise", "strong", "warm"],
    "figure.voice": "deep and slow",
    "figure.pronouns": "it/its",
    "colour": "gold",
    "kind_phrases": ["May I be gentle with myself.", "I'm doing the best I can"],
    "achievements": ["finished my course"],
    "strengths": ["patience", "honesty", "a sense of humour"],
    "friends": ["Alex"],
}
PROFILES = {"empty": {}, "full": FULL}
CASES = [(name, length, group, profile) for name in EXERCISES for length in templates.LENGTHS
         for group in (False, True) for profile in PROFILES]


def _id(case) -> str:
    name, length, group, profile = case
    return f"{name}-{length}-{'group' if group else 'individual'}-{profile}"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    out = {}
    for case in CASES:
        name, length, group, profile = case
        out[_id(case)] = templates.render_text(library.find_exercise(name), PROFILES[profile],
                                               length=length, group=group)
    return out


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_reading_quality(case, rendered):
    name, length, group, profile = case
    text = rendered[_id(case)]
    spoken = re.sub(r"\[(pause|breathe|chapter|bell)[^\]]*\]", "", text)
    for bad in ("None", "  ", " ,", ",,", "..", "{{", "{%", "[", "]", '""', "''", " and.", " and,"):
        assert bad not in spoken, f"{bad!r} in {_id(case)}"
    if group:
        assert "Robin" not in text
    elif profile == "full":
        assert 1 <= text.count("Robin") <= 3
    way_out = text.index("You can stop at any time")
    assert way_out <= 0.2 * len(text)
    assert "open your eyes, notice the room" in text[way_out:way_out + 120]
    assert text.rindex("come back into the room") >= 0.85 * len(text)
    assert "[bell]" not in text


@pytest.mark.parametrize("case", [c for c in CASES if c[3] == "full"], ids=_id)
def test_timing_targets(case):
    """The track's estimated length (sound.estimate: the default voice, gaps, bells, lead-in and
    tail) is within -10 % and +30 % of the practice's target, plus the track's frame."""
    name, length, group, _ = case
    script = templates.render_script(library.find_exercise(name), FULL, length=length, group=group)
    minutes = estimate_timeline(script).seconds / 60
    target = TARGET_MINUTES[name][length]
    assert target * 0.9 <= minutes <= target * 1.3 + FRAME_MINUTES, \
        f"{_id(case)}: {minutes:.1f} min for ~{target}"


def test_scripts_have_chapters_and_typed_meta():
    exercise = library.find_exercise("compassionate-self")
    script = templates.render_script(exercise, {"name": "Robin"}, length="short", group=True)
    assert script.title == "The compassionate self"
    assert script.meta == {"summary": exercise.summary, "lengths": ("short", "standard", "long"),
                           "group": True, "length": "short", "variant": "group"}
    assert [s.title for s in script.segments if isinstance(s, Chapter)][0] == "Arriving"
    assert script.segments[0] == Chapter("Arriving", line=13)
    first = script.speech[0]
    assert first.text == "Welcome, everyone." and first.paragraph_start and first.line == 15


def test_list_and_builtins():
    names = [e.name for e in library.list_exercises()]
    assert names == sorted(names) and set(EXERCISES) <= set(names)
    exercise = library.find_exercise("soothing-rhythm-breathing")
    assert exercise.builtin and exercise.group and exercise.lengths == ("short", "standard", "long")
    assert list(exercise.params) == ["name"] and exercise.params["name"].default == ""


def test_unknown_exercise_suggests_a_name():
    with pytest.raises(ExerciseNotFound) as caught:
        library.find_exercise("soothing-breathing")
    assert str(caught.value) == ("no exercise named 'soothing-breathing' (did you mean "
                                 "soothing-rhythm-breathing?); 'compassion-audio list' shows them all")


def test_user_dirs_shadow_builtins_in_order(tmp_path, monkeypatch):
    mine, env = tmp_path / "mine", tmp_path / "env"
    mine.mkdir(), env.mkdir()
    _write(mine, "compassionate-self.txt.j2", "Mine.\n")
    _write(env, "compassionate-self.j2", "From env.\n")
    _write(env, "evening.j2", "+++\ntitle = \"Evening\"\n+++\nGood evening.\n")
    monkeypatch.setenv(library.ENV_VAR, str(env))
    assert library.exercise_dirs([mine]) == [mine, env, library.builtin_dir()]
    found = library.find_exercise("compassionate-self", [mine])
    assert not found.builtin and templates.render_text(found) == "Mine.\n"
    assert library.find_exercise("compassionate-self").path == env / "compassionate-self.j2"
    listed = {e.name: e for e in library.list_exercises([mine])}
    assert listed["evening"].title == "Evening" and listed["compassionate-self"].path.parent == mine
    plain = library.find_exercise(str(mine / "compassionate-self.txt.j2"))
    assert plain.title == "Compassionate self" and plain.lengths == ("standard",) and plain.params == {}


FRONT = '+++\ntitle = "T"\nlengths = ["short", "standard"]\n[params]\n'


@pytest.mark.parametrize("front, message", [
    ('+++\ntitle = "T"\ncolour = "red"\n+++\nHi.\n',
     "x.j2:3: unknown front-matter key 'colour' (keys are title, summary, lengths, group, params)"),
    (FRONT + 'name = { type = "string" }\n+++\n',
     "x.j2:5: unknown type 'string' for parameter 'name' (types are str, int, float, bool, list)"),
    (FRONT + 'age = { type = "int", default = "ten" }\n+++\n',
     "x.j2:5: default for 'age' must be a whole number, not str 'ten'"),
    (FRONT + 'name = { type = "str", defualt = "" }\n+++\n',
     "x.j2:5: unknown key 'defualt' in parameter 'name' (keys are type, default, help, min, max)"),
    ('+++\nlengths = ["medium"]\n+++\n',
     "x.j2:2: bad lengths ['medium'] (use some of ['short', 'standard', 'long'], each once)"),
    ('+++\ntitle = "T\n+++\n',
     "x.j2:2: front matter is not valid TOML: Unterminated string (check quotes and = signs)"),
    ('+++\ntitle = "T"\nlengths = [short]\n+++\n',
     "x.j2:3:12: front matter is not valid TOML: Invalid value (check quotes and = signs)"),
    ('+++\ntitle = "T"\n', "x.j2:1: front matter is not closed (end it with a line of +++)"),
    (FRONT + '+++\nHello.\n{% if %}\n', "x.j2:7: template syntax: Expected an expression, got 'end of statement block'"),
    (FRONT + '+++\nHello.\n\n  Rest [pasue 5s] now.\n',
     "x.j2:8:8: unknown marker [pasue 5s] (did you mean [pause 5s]?)"),
    (FRONT + '+++\n{{ pause(3) }} and [breathe {{ 2 }}m rat=4]\nBad [chapter ]\n',
     "x.j2:7:5: [chapter] needs a title (write e.g. [chapter Arriving])"),
])
def test_load_errors_name_file_and_line(tmp_path, front, message):
    path = _write(tmp_path, "x.j2", front)
    with pytest.raises((TemplateError, MarkerError)) as caught:
        library.load_exercise(path)
    assert str(caught.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize("body, message", [
    ("Hello.\n\n{{ nmae }}\n", "x.j2:8: undefined: 'nmae' is undefined (declare it under [params] or check the spelling)"),
    ("One.\n{{ ''.__class__.__mro__ }}\n",
     "x.j2:7: not allowed in a template: access to attribute '__class__' of 'str' object is unsafe. "
     "(templates may use only their values and helpers)"),
    ("One.\nTwo.\n{{ pause(-3) }}\n",
     "x.j2:8: [pause -3s]: negative duration '-3s' (write e.g. 30s, 1m 30s, 2.5s or 500ms)"),
    ("{{ breathe(seconds=60, breaths=6) }}\n", "x.j2:6: breathe() needs either seconds= or breaths="),
    ("{{ pick(shrt=1) }}\n", "x.j2:6: pick() got shrt=; use short=, standard= and long="),
])
def test_render_errors_carry_the_template_line(tmp_path, body, message):
    exercise = library.load_exercise(_write(tmp_path, "x.j2", FRONT + "+++\n" + body))
    with pytest.raises(TemplateError) as caught:
        templates.render_text(exercise)
    assert str(caught.value) == f"{tmp_path}/{message}"


def test_helpers_emit_markers_and_pick_by_length(tmp_path):
    body = ("[chapter {{ 'Start' }}]\n{{ chapter('Arriving') }}\nIn.\n{{ pause(pick(short=2.5, standard=90)) }}\n"
            "{{ breathe(breaths=6, rate=5.5, ratio='4:6') }}{{ breathe(seconds=120, ratio=[4, 6]) }}{{ bell() }}\n"
            "{{ ['a', 'b', 'c']|join_and }}, {{ ['a']|join_and }}, {{ []|join_and }}x\n")
    exercise = library.load_exercise(_write(tmp_path, "x.j2", FRONT + "+++\n" + body))
    assert templates.render_text(exercise, length="short") == (
        "[chapter Start]\n[chapter Arriving]\nIn.\n[pause 2.5s]\n"
        "[breathe 6 breaths rate=5.5 ratio=4:6][breathe 2m ratio=4:6][bell]\na, b and c, a, x\n")
    script = templates.render_script(exercise)
    assert [s.line for s in script.segments][:4] == [6, 7, 8, 9]
    assert Pause(90.0, line=9) in script.segments


def _params_exercise(tmp_path):
    front = ('+++\ntitle = "P"\ngroup = true\n[params]\nname = { type = "str", default = "" }\n'
             '"place.sight" = { type = "str", default = "" }\n'
             'place.smell = { type = "str", default = "pine" }\n'
             'minutes = { type = "float", default = 5, min = 1, max = 60 }\n'
             'count = { type = "int", default = 2 }\nloud = { type = "bool", default = false }\n'
             'phrases = { type = "list", default = [] }\nclient = { type = "str", help = "Needed." }\n+++\n')
    body = ("Hi {{ name or 'there' }}. See {{ place.sight or 'nothing' }}, smell {{ place.smell }}.\n"
            "{{ minutes }} {{ count }} {{ loud }} {{ phrases|join_and }}. {% if place %}Place.{% endif %}\n")
    return library.load_exercise(_write(tmp_path, "p.j2", front + body))


def test_params_dotted_nested_defaults_and_required(tmp_path):
    exercise = _params_exercise(tmp_path)
    assert list(exercise.params) == ["name", "place.sight", "place.smell", "minutes", "count", "loud",
                                     "phrases", "client"]
    assert exercise.params["client"].required and exercise.params["minutes"].max == 60
    with pytest.raises(ParameterError) as caught:
        templates.render_text(exercise)
    assert str(caught.value) == "p: missing required parameter 'client' (pass it with -s client=...)"
    dotted = templates.render_text(exercise, {"client": "x", "place.sight": "sea [1]", "name": "Jo"})
    nested = templates.render_text(exercise, {"client": "x", "place": {"sight": "sea [1]"}, "name": "Jo",
                                              "colour": "ignored, not declared"})
    assert dotted == nested == "Hi Jo. See sea [[1], smell pine.\n5.0 2 False. Place.\n"
    assert templates.render_script(exercise, {"client": "x", "place.sight": "sea [1]"}).speech[1].text == \
        "See sea [1], smell pine."
    grouped = templates.render_text(exercise, {"client": "x", "name": "Jo"}, group=True)
    assert grouped.startswith("Hi there.")


def test_coerce_values_types_and_errors(tmp_path):
    exercise = _params_exercise(tmp_path)
    values = coerce_values(exercise, {"minutes": "2.5", "count": "3", "loud": "yes",
                                                "phrases": "May I rest, now; I am here", "place.sight": "sea"})
    assert values == {"minutes": 2.5, "count": 3, "loud": True, "phrases": ["May I rest, now", "I am here"],
                      "place.sight": "sea"}
    assert coerce_values(exercise, {"phrases": "a, b,,c"})["phrases"] == ["a", "b", "c"]
    cases = {
        "nmae": ("-s: unknown parameter 'nmae' for p (did you mean name? known parameters: name, place.sight, "
                 "place.smell, minutes, count, loud, phrases, client)"),
        "minutes": "-s: 'minutes' is 90.0, outside its range (give a value from 1 up to 60)",
        "count": "-s: 'count' must be a whole number",
        "loud": "-s: 'loud' must be true or false (use yes or no)",
    }
    raw = {"nmae": "Jo", "minutes": "90", "count": "many", "loud": "maybe"}
    for key, message in cases.items():
        with pytest.raises(ParameterError) as caught:
            coerce_values(exercise, {key: raw[key]})
        assert str(caught.value) == message


def test_length_and_group_errors(tmp_path):
    breathing = library.find_exercise("soothing-rhythm-breathing")
    with pytest.raises(ParameterError) as caught:
        templates.render_text(breathing, length="medium")
    assert str(caught.value) == ("soothing-rhythm-breathing: unknown length 'medium' for soothing-rhythm-breathing "
                                 "(lengths are short, standard, long)")
    individual = library.load_exercise(_write(tmp_path, "individual.j2", "Hello.\n"))
    with pytest.raises(ParameterError) as caught:
        templates.render_text(individual, group=True)
    assert str(caught.value) == ("individual: individual has no group variant "
                                 "(leave out --group, or give the template group = true and a group variant)")


def test_speech_lines_point_into_the_template():
    exercise = library.find_exercise("soothing-rhythm-breathing")
    source_lines = exercise.path.read_text(encoding="utf-8").splitlines()
    script = templates.render_script(exercise, FULL, length="long")
    for speech in script.speech:
        words = speech.text.split()[:3]
        if "Robin" not in speech.text:
            assert " ".join(words) in " ".join(source_lines[speech.line - 1].split()), speech
