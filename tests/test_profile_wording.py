"""Profile wording (issue 10, item 2): descriptions are said to the client, own words are theirs.

Convention: a [said to them] entry is written as the track says it to the client ("your
sister"); one written in the first person ("my sister") is spoken in the second person and
'client check' warns. A [their own words] entry (kind phrases, the critic's thought) is the
client's own, spoken as written inside a frame that says so ("your own kind words").
Either style must give correct sentences in every exercise that speaks a profile list or phrase.
"""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.script.library import find_exercise, list_exercises
from compassion_audio.script.lint import reading_problems
from compassion_audio.script.personalise import personalise
from compassion_audio.script.profile import ABOUT, BY_KEY, FIELDS, OWN, parse_profile, profile_template
from compassion_audio.script.templates import LENGTHS, render_text
from compassion_audio.script.wording import has_first_person, to_second_person

FIRST = """\
name = "Sam"
colour = "my favourite blue"
kind_phrases = ["I am doing my best", "May I be gentle with myself"]
critic_thought = "I always get things wrong"
daily_act = "phoning my sister"
achievements = ["finishing my nursing degree", "the day I stood up for myself"]
strengths = ["my patience", "my sense of humour"]
friends = ["my sister", "an old friend of mine"]

[place]
description = "my gran's garden"
touch = "the sun on my face"

[figure]
form = "my grandmother"
voice = "as warm as my old teacher's"
"""
"""Every [said to them] entry written as the client would say it."""
SECOND = """\
name = "Sam"
colour = "your favourite blue"
kind_phrases = ["I am doing my best", "May I be gentle with myself"]
critic_thought = "I always get things wrong"
daily_act = "phoning your sister"
achievements = ["finishing your nursing degree", "the day you stood up for yourself"]
strengths = ["your patience", "your sense of humour"]
friends = ["your sister", "an old friend of yours"]

[place]
description = "your gran's garden"
touch = "the sun on your face"

[figure]
form = "your grandmother"
voice = "as warm as your old teacher's"
"""
"""The same entries written as the track says them; own words left in the first person."""
OWN_SECOND = (SECOND.replace('"I am doing my best", "May I be gentle with myself"',
                             '"You are doing your best", "May you be gentle with yourself"')
              .replace("I always get things wrong", "You always get things wrong"))
"""Own words written in the second person too (a client may say them that way)."""

# What each exercise must say, at the long length, for FIRST and SECOND alike.
SAID_TO_THEM = {
    "compassion-flows": ["Perhaps your sister and an old friend of yours, or someone else who comes "
                         "to mind easily."],
    "compassionate-colour": ["Now, if you like, bring to mind your colour: your favourite blue.",
                             "Imagine your favourite blue slowly surrounding you,"],
    "compassionate-letter": ["Remind yourself of the strengths you bring, such as your patience and "
                             "your sense of humour."],
    "compassionate-other": ["Now, if you like, bring to mind your compassionate figure: your grandmother.",
                            "Imagine their voice: as warm as your old teacher's."],
    "compassionate-place": ["Now, if you like, bring to mind your place: your gran's garden.",
                            "Notice what you can feel. Perhaps the sun on your face."],
    "compassionate-self": ["Think of strengths you already have, like your patience and your sense of humour."],
    "daily-compassionate-act": ["You may already have chosen one: phoning your sister. You can keep it, "
                                "or choose something else that feels right today."],
    "self-critic-refocus": [
        "You might remember finishing your nursing degree and the day you stood up for yourself.",
        "Some of the strengths you bring are your patience and your sense of humour.",
        "Think of your sister and an old friend of yours, who have come to you when they needed support."],
}
# The frame each exercise puts round the client's own kind phrases, then the phrases.
OWN_FRAME = {
    "compassion-flows": "You might add your own kind words.",
    "compassionate-letter": "You might borrow some of your own kind words.",
    "compassionate-other": "You might join in with your own kind words.",
    "compassionate-self": "Now, in that warm, steady voice, you might offer yourself your own kind words.",
    "criticism-kindness-contrast": "You might add your own kind words.",
    "daily-compassionate-act": "You might take one of your own kind phrases with you today.",
    "self-critic-refocus": "And you might add your own kind words.",
}
CRITIC = "It may have been a familiar thought, one you know in your own words: {}."


def render(name: str, profile_text: str, length: str = "long") -> str:
    exercise = find_exercise(name)
    values = personalise(exercise, parse_profile(profile_text), {}).values
    return " ".join(render_text(exercise, values, length=length).split())


def speaks_profile_text(name: str) -> bool:
    return any(BY_KEY.get(key) is not None and BY_KEY[key].wording
               for key in find_exercise(name).params)


SPEAKING = [ex.name for ex in list_exercises() if speaks_profile_text(ex.name)]


def test_every_exercise_that_speaks_profile_text_is_checked():
    assert sorted(SPEAKING) == sorted(set(SAID_TO_THEM) | set(OWN_FRAME) | {"compassionate-place"})


@pytest.mark.parametrize("text, expected", [
    ("my sister", "your sister"),
    ("My sister and me", "Your sister and you"),
    ("an old friend of mine", "an old friend of yours"),
    ("the day I was brave", "the day you were brave"),
    ("I am patient", "You are patient"),
    ("when I'm tired", "when you're tired"),
    ("I've learned to swim", "You've learned to swim"),
    ("looking after myself", "looking after yourself"),
    ("Jo", "Jo"),
    ("Imagine a meadow", "Imagine a meadow"),
    ("your sister", "your sister"),
])
def test_first_person_is_said_in_the_second(text, expected):
    assert to_second_person(text) == expected
    assert has_first_person(text) == (text != expected)


@pytest.mark.parametrize("name", SPEAKING)
@pytest.mark.parametrize("length", LENGTHS)
def test_both_styles_of_description_read_the_same(name, length):
    """A [said to them] entry written 'my sister' or 'your sister' gives the same track."""
    assert render(name, FIRST, length) == render(name, SECOND, length)


@pytest.mark.parametrize("name", SPEAKING)
@pytest.mark.parametrize("style", [FIRST, SECOND, OWN_SECOND], ids=["first", "second", "own-second"])
def test_sentences_are_correct_english_in_every_style(name, style):
    text = render(name, style)
    for sentence in SAID_TO_THEM.get(name, []):
        assert sentence in text, sentence
    assert not re.search(r"\bmy (?:sister|favourite|nursing|patience|sense|gran|face|grandmother|old)\b"
                         r"|of mine|I stood up", text), text
    own = ["You are doing your best.", "May you be gentle with yourself."] if style == OWN_SECOND \
        else ["I am doing my best.", "May I be gentle with myself."]
    if name in OWN_FRAME:
        frame = OWN_FRAME[name]
        quoted = [f'"{p}"' for p in own] if name == "compassionate-self" else own
        assert f"{frame} {quoted[0]}" in text or re.search(
            re.escape(frame) + r" (\[pause \d+s\] )?" + re.escape(quoted[0]), text), text
        assert quoted[1] in text
    if name == "self-critic-refocus":
        thought = "You always get things wrong" if style == OWN_SECOND else "I always get things wrong"
        assert CRITIC.format(thought) in text
    assert reading_problems(render_text(find_exercise(name), personalise(
        find_exercise(name), parse_profile(style), {}).values, length="long"), group=False, name="Sam") == []


def test_the_profile_templates_own_examples_read_correctly():
    """The commented examples in 'client new', uncommented, in the exercises that speak them."""
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line else line
                            for line in profile_template().splitlines())
    texts = {name: render(name, uncommented, "standard") for name in SPEAKING}
    assert "Think of your sister and an old school friend, who have come to you when they needed " \
           "support." in texts["self-critic-refocus"]
    assert "You might remember finishing your course and learning to swim." in texts["self-critic-refocus"]
    assert "It may have been a familiar thought, one you know in your own words: I always get things " \
           "wrong. You can notice it as a thought" in texts["self-critic-refocus"]
    assert "Perhaps warm sand under your feet." in texts["compassionate-place"]
    assert "You may already have chosen one: a short walk at lunchtime." in texts["daily-compassionate-act"]
    assert "You might add your own kind words. May I be kind to myself." in texts["compassion-flows"]
    for name, text in texts.items():
        assert not re.search(r"\b(?:their feet|my sister|my course)\b", text), name


def test_the_template_says_the_convention_and_its_examples_follow_it():
    text = profile_template()
    assert '[said to them]: write it as you would say it to the client: "your sister",' in text
    assert "[their own words]: the client's words as they say them" in text
    for spec in FIELDS:
        examples = spec.example if isinstance(spec.example, list) else [spec.example]
        if spec.wording == ABOUT:
            assert f"# {spec.help}" in text and "[said to them]" in text
            assert not any(has_first_person(str(e)) for e in examples), spec.key
        if spec.wording == OWN:
            assert any(has_first_person(str(e)) for e in examples), spec.key


def test_client_check_flags_first_person_descriptions_by_file_line_and_key(tmp_path):
    path = tmp_path / "sam.toml"
    path.write_text(FIRST, encoding="utf-8")
    result = CliRunner().invoke(cli, ["client", "check", str(path)])
    assert result.exit_code == 0, result.output
    tail = ('says I/me/my; the track says it to the client, so write it that way ("your sister"); '
            "it is spoken as your/you meanwhile")
    assert result.stderr.splitlines() == [
        f"{path}:2: warning: colour {tail}",
        f"{path}:5: warning: daily_act {tail}",
        f"{path}:6: warning: achievements item 1 {tail}",
        f"{path}:6: warning: achievements item 2 {tail}",
        f"{path}:7: warning: strengths item 1 {tail}",
        f"{path}:7: warning: strengths item 2 {tail}",
        f"{path}:8: warning: friends item 1 {tail}",
        f"{path}:8: warning: friends item 2 {tail}",
        f"{path}:11: warning: place.description {tail}",
        f"{path}:12: warning: place.touch {tail}",
        f"{path}:15: warning: figure.form {tail}",
        f"{path}:16: warning: figure.voice {tail}",
    ]
    # Own words in the first person are as they should be; no value is ever printed.
    assert "kind_phrases" not in result.stderr and "critic_thought" not in result.stderr
    assert "sister" not in result.stdout and "gran" not in result.output
    path.write_text(SECOND, encoding="utf-8")
    clean = CliRunner().invoke(cli, ["client", "check", str(path)])
    assert clean.exit_code == 0 and clean.stderr == ""


@pytest.mark.parametrize("strengths, sentence", [
    ('["patience"]', "One of the strengths you bring is patience."),
    ('["my patience", "humour"]', "Some of the strengths you bring are your patience and humour."),
])
def test_one_strength_or_several_agree(strengths, sentence):
    assert sentence in render("self-critic-refocus", f"strengths = {strengths}\n", "standard")
