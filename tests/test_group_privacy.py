"""A group track made with a client's profile says and shows nothing from it; one client's
tracks get default file names of their own that carry no profile value (issue 10, items 1 and 3).

The fullest profile fills every key of ``profile.FIELDS`` with a distinctive token, so a new
field is covered the day it is added. Real renders go through the CLI with the real engine;
every file written (audio, captions, transcript, timeline) is searched byte for byte, and the
tags are read back with mutagen.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import mutagen
import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.script.library import find_exercise, list_exercises
from compassion_audio.script.personalise import personalise
from compassion_audio.script.profile import FIELDS, client_file_id, empty_profile, load_profile
from compassion_audio.script.templates import render_text

from .conftest import decode

GROUP_EXERCISES = [ex.name for ex in list_exercises() if ex.group]
RENDERED = ("compassionate-place", "self-critic-refocus", "compassionate-other", "daily-compassionate-act")
NOTICE = "group variant: personal details from fullest.toml are not used"
CHOICES = {"figure.pronouns": "she/her"}   # personal, but only four values are valid
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


def fullest_profile() -> tuple[str, list[str]]:
    """TOML text with every FIELD set, and the distinctive strings its personal values hold.

    Neutral fields (breathing, length, voice) take their template example, length short."""
    tables: dict[str, list[str]] = {}
    tokens: list[str] = []
    for number, spec in enumerate(FIELDS):
        table, _, leaf = spec.key.rpartition(".")
        word = f"Qz{number}{re.sub('[^a-z]', '', leaf)}"
        if not spec.personal:
            value = "short" if spec.key == "length" else spec.example
        elif spec.key in CHOICES:
            value = CHOICES[spec.key]
        elif spec.type == "list":
            value = [f"{word}one", f"{word}two"]
            tokens += value
        else:
            assert spec.type == "str", f"add a distinctive value for {spec.key} ({spec.type})"
            value = word
            tokens.append(word)
        tables.setdefault(table, []).append(f"{leaf} = {json.dumps(value)}")
    text = "\n".join(tables.pop(""))
    for table, lines in tables.items():
        text += f"\n\n[{table}]\n" + "\n".join(lines)
    return text + "\n", tokens


PROFILE_TEXT, TOKENS = fullest_profile()


def leaks(text: str) -> list[str]:
    folded = text.casefold()
    return [token for token in TOKENS if token.casefold() in folded]


def byte_leaks(data: bytes) -> list[str]:
    lowered = data.lower()
    return [token for token in TOKENS for enc in ENCODINGS if token.lower().encode(enc) in lowered]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def fullest(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clients") / "fullest.toml"
    path.write_text(PROFILE_TEXT, encoding="utf-8")
    return path


def test_the_fullest_profile_sets_every_field(fullest):
    profile = load_profile(fullest)
    personal = {spec.key for spec in FIELDS if spec.personal}
    assert set(profile.values) == personal
    assert set(profile.breathing) == {spec.key.split(".", 1)[1] for spec in FIELDS
                                      if spec.key.startswith("breathing.")}
    assert profile.length == "short" and profile.voice
    assert len(TOKENS) >= len(personal) - len(CHOICES)


@pytest.mark.parametrize("name", GROUP_EXERCISES)
def test_group_script_is_the_same_with_or_without_the_profile(name, fullest):
    """Every exercise x length: the group script with the fullest profile is the group script
    with no profile at all, and holds none of its strings."""
    exercise = find_exercise(name)
    used = personalise(exercise, load_profile(fullest), {}, group=True)
    assert used.values == {} and used.notices == [NOTICE]
    assert set(used.withheld) == {spec.key for spec in FIELDS if spec.personal}
    for length in exercise.lengths:
        text = render_text(exercise, used.values, length=length, group=True)
        assert leaks(text) == [], (length, leaks(text))
        assert text == render_text(exercise, {}, length=length, group=True), length


def test_the_check_has_teeth(fullest):
    """The same profile in individual tracks does put its strings in the script."""
    profile = load_profile(fullest)
    for name in RENDERED:
        exercise = find_exercise(name)
        text = render_text(exercise, personalise(exercise, profile, {}).values, length="long")
        assert leaks(text), name


@pytest.mark.parametrize("name", GROUP_EXERCISES)
def test_show_group_prints_nothing_from_the_profile(name, fullest):
    for extra in ((), ("--json",)):
        result = run("show", name, "--group", "--client", fullest, *extra)
        assert result.exit_code == 0, result.output
        assert result.stderr == NOTICE + "\n"
        assert leaks(result.stdout) == []
        assert "Nobody has to" in result.stdout or "nothing you need to do" in result.stdout \
            or "whatever way suits you" in result.stdout


@pytest.mark.parametrize("key", ["name", "kind_phrases", "critic_thought", "daily_act"])
def test_individual_only_values_typed_with_group_are_left_out_with_a_line(key):
    """A name, or a client's own words or act, typed for a group track is never used, and the
    facilitator is told (tests/test_exercise_renders.py renders one through the real engine)."""
    exercise = find_exercise("compassionate-self" if key == "name" else "daily-compassionate-act"
                             if key == "daily_act" else "self-critic-refocus")
    result = run("show", exercise.name, "--group", "-s", f"{key}=Quillon", "-s", "length=short")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"group variant: -s {key} is not used (individual tracks only)\n"
    assert "Quillon" not in result.stdout
    used = personalise(exercise, empty_profile(), {key: "Quillon", "name": "Ann"}, group=True)
    assert used.values == {} and used.ignored == tuple(dict.fromkeys((key, "name")))
    assert used.notices == [f"group variant: -s {', '.join(used.ignored)} "
                            f"{'is' if len(used.ignored) == 1 else 'are'} not used (individual tracks only)"]


def test_a_shared_value_typed_for_a_group_is_used(fullest):
    """-s is the facilitator's own choice for this render: a place the whole group shares."""
    result = run("show", "compassionate-place", "--group", "--client", fullest,
                 "-s", "place.description=a walled garden")
    assert result.exit_code == 0, result.output
    assert "Now, if you like, bring to mind your place: a walled garden." in result.stdout
    assert leaks(result.stdout) == [] and result.stderr == NOTICE + "\n"
    assert "place.description" in next(line for line in result.stdout.splitlines()
                                       if "set by -s" in line)


def test_no_notice_without_a_profile_or_without_personal_values(tmp_path):
    assert run("show", "breathing-pacer", "--group").stderr == ""
    neutral = tmp_path / "pace.toml"
    neutral.write_text("[breathing]\nbreaths_per_min = 5\n", encoding="utf-8")
    assert run("show", "breathing-pacer", "--group", "--client", neutral).stderr == ""
    assert personalise(find_exercise("breathing-pacer"), empty_profile(), {}, group=True).notices == []


# ---------------------------------------------------------------- real renders

def _in_folder(cwd: Path, *args, env):
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return run(*args, env=env)
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def group_renders(tmp_path_factory, fullest):
    """Short group tracks of four exercises with the fullest profile, captions and timeline,
    to the default names under ./output."""
    base = tmp_path_factory.mktemp("group")
    env = {"COMPASSION_AUDIO_CACHE": str(base / "cache")}
    results = {name: _in_folder(base, "render", name, "--group", "--client", fullest, "--captions",
                                "--timeline", "-q", env=env) for name in RENDERED}
    results["individual"] = _in_folder(base, "render", RENDERED[0], "--client", fullest, "--captions",
                                       "-q", env=env)
    return base, results


def _tag_text(path: Path) -> str:
    audio = mutagen.File(path)
    assert audio is not None and audio.tags is not None
    parts = []
    for frame in audio.tags.values():
        parts.append(str(frame))
        parts += [str(sub) for sub in getattr(frame, "sub_frames", {}).values()]
    return "\n".join(parts)


@pytest.mark.parametrize("name", RENDERED)
def test_group_track_files_and_tags_carry_nothing_from_the_profile(group_renders, name):
    base, results = group_renders
    result = results[name]
    assert result.exit_code == 0, result.output
    assert result.stderr == NOTICE + "\n"
    audio = Path(result.stdout.strip())
    # A group track belongs to the group: its default name has no client id either.
    assert audio == Path("output") / f"{name}-short-group.mp3"
    written = sorted((base / "output").glob(f"{name}-short-group.*"))
    suffixes = {p.name[len(f"{name}-short-group"):] for p in written}
    assert {".mp3", ".vtt", ".srt", ".txt", ".timeline.json"} <= suffixes, suffixes
    for path in written:
        assert byte_leaks(path.read_bytes()) == [], path.name
    tags = _tag_text(base / audio)
    assert tags and leaks(tags) == []
    transcript = " ".join((base / "output" / f"{name}-short-group.txt").read_text(encoding="utf-8").split())
    assert re.search(r"Nobody has to|nobody will be asked", transcript)   # the group wording
    assert mutagen.File(base / audio).info.length > 30
    assert decode(base / audio).size > 30 * 44100


def test_the_file_check_has_teeth(group_renders):
    """The same search finds the profile in the captions of the client's own track."""
    base, results = group_renders
    result = results["individual"]
    assert result.exit_code == 0, result.output
    audio = base / result.stdout.strip()
    for suffix in (".vtt", ".srt", ".txt"):
        assert byte_leaks(audio.with_suffix(suffix).read_bytes()), suffix


# ---------------------------------------------------------------- per-client default names

@pytest.fixture(scope="module")
def two_clients(tmp_path_factory):
    """One short individual track each for two clients with default names, then the first
    client's again (same name: it must say so rather than overwrite)."""
    base = tmp_path_factory.mktemp("clients-two")
    env = {"COMPASSION_AUDIO_CACHE": str(base / "cache")}
    profiles = {}
    for stem, name in (("jane", "Jane"), ("john", "John")):
        path = base / f"{stem}.toml"
        path.write_text(f'name = "{name}"\nkind_phrases = ["I can rest, {name}"]\n'
                        f'daily_act = "a walk with {name}s dog"\nlength = "short"\n', encoding="utf-8")
        profiles[stem] = path
    results = {stem: _in_folder(base, "render", "daily-compassionate-act", "--client", path, env=env)
               for stem, path in profiles.items()}
    again = _in_folder(base, "render", "daily-compassionate-act", "--client", profiles["jane"], env=env)
    return base, profiles, results, again


def test_two_clients_default_names_differ_and_carry_no_profile_value(two_clients):
    base, profiles, results, again = two_clients
    paths = {}
    for stem, result in results.items():
        assert result.exit_code == 0, result.output
        line = result.stdout.splitlines()[0]
        match = re.match(r"^Wrote (\S+) \(", line)
        assert match, line
        paths[stem] = Path(match.group(1))
        expected = Path("output") / f"{client_file_id(profiles[stem])}-daily-compassionate-act-short.mp3"
        assert paths[stem] == expected
        assert re.fullmatch(r"client-[0-9a-f]{8}-daily-compassionate-act-short\.mp3", expected.name)
        profile = load_profile(profiles[stem])
        values = [profiles[stem].stem, *(v for value in profile.values.values()
                                          for v in ([value] if isinstance(value, str) else value))]
        for value in values:
            assert value.casefold() not in str(paths[stem]).casefold(), value
        assert (base / paths[stem]).is_file() and decode(base / paths[stem]).size > 0
    assert paths["jane"] != paths["john"]
    assert sorted(p.name for p in (base / "output").iterdir()) == sorted(p.name for p in paths.values())
    # The same client and track is the same name: the same request finds it up to date, not overwritten.
    assert again.exit_code == 0
    assert again.stdout == f"up to date: {paths['jane']}\n"


def test_client_file_id_is_stable_and_not_the_stem(tmp_path):
    a, b = tmp_path / "a" / "jane.toml", tmp_path / "b" / "jane.toml"
    assert client_file_id(a) == client_file_id(b) == client_file_id(Path("jane.toml"))
    assert client_file_id(Path("jane.toml")) != client_file_id(Path("jane2.toml"))
    assert "jane" not in client_file_id(a)
