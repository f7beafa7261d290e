"""What show and list tell the user (issue 10, item 5): parameters and who sets them, and JSON
with stable keys for scripts and clinic tooling."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.script.library import builtin_dir, exercise_name, find_exercise
from compassion_audio.script.programmes import list_programmes
from compassion_audio.script.templates import render_script
from compassion_audio.sound.estimate import estimate_timeline

EXERCISE_KEYS = {"name", "title", "summary", "lengths", "estimated_seconds", "group", "builtin", "path",
                 "params"}
PARAM_KEYS = {"name", "type", "default", "required", "help", "min", "max"}
SCRIPT_KEYS = {"length", "variant", "title", "duration_seconds", "sample_rate", "segments", "chapters"}
PROFILE = 'name = "Philippa"\nfriends = ["your sister Rosalind"]\n[place]\nsmell = "woodsmoke and pine"\n'


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def listed() -> dict:
    return json.loads(run("list", "--json").stdout)


def test_list_json_has_every_exercise_with_the_documented_keys(listed):
    assert set(listed) == {"exercises"}
    names = [entry["name"] for entry in listed["exercises"]]
    assert names == sorted(exercise_name(p) for p in builtin_dir().glob("*.j2"))
    for entry in listed["exercises"]:
        assert set(entry) == EXERCISE_KEYS, entry["name"]
        ex = find_exercise(entry["name"])
        assert (entry["title"], entry["summary"], entry["lengths"], entry["group"], entry["builtin"]) == \
            (ex.title, ex.summary, list(ex.lengths), ex.group, True)
        assert entry["path"] == str(ex.path)
        assert list(entry["estimated_seconds"]) == list(ex.lengths)
        for length, seconds in entry["estimated_seconds"].items():
            expected = estimate_timeline(render_script(ex, {}, length=length)).seconds
            assert seconds == round(expected, 1), (entry["name"], length)
        assert [p["name"] for p in entry["params"]] == list(ex.params)
        for param in entry["params"]:
            assert set(param) == PARAM_KEYS
            declared = ex.params[param["name"]]
            assert param == {"name": declared.name, "type": declared.type, "default": declared.default,
                             "required": False, "help": declared.help, "min": declared.min,
                             "max": declared.max}


def test_list_json_agrees_with_the_text_listing(listed):
    text = run("list").stdout.splitlines()
    for entry in listed["exercises"]:
        line = next(l for l in text if l.startswith(entry["name"] + " "))
        shown = dict(re.findall(r"\b(short|standard|long) ~(\d+)m\b", line))
        assert shown == {k: f"{v / 60:.0f}" for k, v in entry["estimated_seconds"].items()}, line


def test_breathing_pacer_params_in_json(listed):
    pacer = next(e for e in listed["exercises"] if e["name"] == "breathing-pacer")
    assert pacer["params"][1] == {
        "name": "rate", "type": "float", "default": 0.0, "required": False,
        "help": "Breaths per minute for this track (0: the track's breathing setting).", "min": 0.0, "max": 12.0}


def test_list_programmes_json():
    data = json.loads(run("list", "--programmes", "--json").stdout)
    assert set(data) == {"programmes"}
    assert [p["name"] for p in data["programmes"]] == [p.name for p in list_programmes()]
    for entry, prog in zip(data["programmes"], list_programmes()):
        assert set(entry) == {"name", "title", "summary", "weeks"}
        assert len(entry["weeks"]) == len(prog.weeks)
        for week in entry["weeks"]:
            assert set(week) == {"number", "title", "note", "tracks"}
            assert all(set(t) == {"exercise", "length"} for t in week["tracks"])


def test_a_user_exercise_with_a_required_parameter_is_listed(tmp_path):
    (tmp_path / "hello.txt.j2").write_text(
        '+++\ntitle = "Hello"\n[params]\nwho = { type = "str", help = "Who is listening." }\n+++\n'
        "Hello {{ who }}.\n[pause 1m]\nGoodbye.\n", encoding="utf-8")
    data = json.loads(run("list", "--exercises", tmp_path, "--json").stdout)
    entry = next(e for e in data["exercises"] if e["name"] == "hello")
    assert entry["builtin"] is False and entry["params"] == [
        {"name": "who", "type": "str", "default": None, "required": True, "help": "Who is listening.",
         "min": None, "max": None}]
    assert 60 < entry["estimated_seconds"]["standard"] < 90   # a minute of pause, two lines, bells
    show = run("show", tmp_path / "hello.txt.j2", "-s", "who=Ann").stdout.splitlines()
    assert show[-1] == "  who  str    default (required)  set by -s       Who is listening."


@pytest.fixture()
def client(tmp_path):
    path = tmp_path / "phil.toml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def test_show_lists_parameters_and_who_sets_them_without_values(client):
    result = run("show", "self-critic-refocus", "--client", client, "-s", "strengths=steadfastness")
    out = result.stdout.splitlines()
    start = out.index("Parameters (-s NAME=VALUE, or a client profile):")
    assert out[start - 1] == ""
    ex = find_exercise("self-critic-refocus")
    rows = out[start + 1:]
    assert [row.split()[0] for row in rows] == list(ex.params)
    state = {row.split()[0]: re.search(r"default \S+\s+(set by profile|set by -s|default)", row).group(1)
             for row in rows}
    assert state == {"name": "set by profile", "achievements": "default", "strengths": "set by -s",
                     "friends": "set by profile", "kind_phrases": "default", "critic_thought": "default"}
    for name, row in zip(ex.params, rows):
        param = ex.params[name]
        assert row.startswith(f"  {name}") and f" {param.type} " in row and row.endswith(param.help)
    block = "\n".join(rows)
    for value in ("Philippa", "Rosalind", "woodsmoke", "steadfastness"):
        assert value not in block
    assert "Think of your sister Rosalind, who has come to you" in result.stdout   # the script itself


def test_show_group_says_which_profile_values_are_not_used(client):
    result = CliRunner().invoke(cli, ["show", "compassionate-place", "--group", "--client", str(client)])
    assert result.exit_code == 0
    rows = result.stdout.split("Parameters (-s NAME=VALUE, or a client profile):\n")[1].splitlines()
    assert re.search(r"^  name\s.*in profile, not used in a group track", rows[0])
    assert re.search(r"^  place\.smell\s.*in profile, not used in a group track", rows[5])
    assert "woodsmoke" not in result.stdout and "Philippa" not in result.stdout
    assert result.stderr == "group variant: personal details from phil.toml are not used\n"


def test_show_json_keys_params_and_script(client):
    data = json.loads(run("show", "compassionate-place", "--client", client, "--length", "short",
                          "-s", "place.sight=morning mist", "--json").stdout)
    assert set(data) == EXERCISE_KEYS | {"script"}
    ex = find_exercise("compassionate-place")
    assert data["name"] == ex.name and data["lengths"] == list(ex.lengths)
    assert list(data["estimated_seconds"]) == list(ex.lengths)
    by_name = {p["name"]: p for p in data["params"]}
    assert list(by_name) == list(ex.params)
    for param in data["params"]:
        assert set(param) == PARAM_KEYS | {"set_by", "withheld"}
        assert param["default"] == ex.params[param["name"]].default   # never the profile's value
    assert {k: v["set_by"] for k, v in by_name.items() if v["set_by"]} == \
        {"name": "profile", "place.smell": "profile", "place.sight": "-s"}
    assert not any(p["withheld"] for p in data["params"])
    script = data["script"]
    assert set(script) == SCRIPT_KEYS
    assert (script["length"], script["variant"], script["title"]) == ("short", "individual", ex.title)
    texts = [s.get("text", "") for s in script["segments"]]
    assert "Welcome, Philippa." in " ".join(texts) and any("morning mist" in t for t in texts)
    assert script["duration_seconds"] > 60 and script["chapters"][0]["title"] == "Arriving"


def test_show_json_group_marks_withheld(client):
    result = CliRunner().invoke(cli, ["show", "compassionate-place", "--group", "--client", str(client),
                                      "--json"])
    data = json.loads(result.stdout)
    withheld = {p["name"] for p in data["params"] if p["withheld"]}
    assert withheld == {"name", "place.smell"}
    assert all(p["set_by"] is None for p in data["params"])
    assert data["script"]["variant"] == "group"
    assert "Philippa" not in result.stdout and "woodsmoke" not in result.stdout


def test_show_for_an_exercise_without_parameters(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("Hello there.\n[pause 5s]\nGoodbye.\n", encoding="utf-8")
    out = run("show", path).stdout.splitlines()
    assert out[-2:] == ["", "Parameters: none"]
    data = json.loads(run("show", path, "--json").stdout)
    assert data["params"] == [] and data["builtin"] is False
