"""Album manifests: every mistake is one line at file:line naming the key, found before anything is spoken."""
from __future__ import annotations

import inspect

import pytest
from click.testing import CliRunner

from compassion_audio.album import BuildOptions, load_manifest, plan_albums, programme_manifest
from compassion_audio.album import options as opts
from compassion_audio.album.example import EXAMPLE
from compassion_audio.album.manifest import ALBUM_KEYS, TRACK_KEYS
from compassion_audio.cli.app import cli
from compassion_audio.cli.tracks import render_command

from .album_support import write_project

HEAD = """\
[album]
title = "Errors"
voice = "calm-female"

[[track]]
exercise = "soothing-rhythm-breathing"
length = "short"
"""

# (the manifest after HEAD, the error line after "error: <file>:")
CASES = {
    "unknown track key": ('\n[[track]]\nexercise = "three-systems"\nlenght = "short"\n',
                          "11: [[track]] 2: unknown key 'lenght' (did you mean 'length'?)"),
    "unknown album key": (None, "3: [album]: unknown key 'titel' (did you mean 'title'?)"),
    "missing template": ('\n[[track]]\ntemplate = "scripts/nowhere.txt.j2"\n',
                         "10: [[track]] 2: template 'scripts/nowhere.txt.j2' not found (no file at {folder}/scripts/nowhere.txt.j2)"),
    "unknown exercise": ('\n[[track]]\nexercise = "soothing-rythm-breathing"\n',
                         "10: [[track]] 2: exercise: no exercise named 'soothing-rythm-breathing' (did you mean "
                         "soothing-rhythm-breathing?); 'compassion-audio list' shows them all"),
    "duplicate track": ('\n[[track]]\nexercise = "soothing-rhythm-breathing"\nlength = "short"\n',
                        "9: [[track]] 2: repeats [[track]] 1 (the same practice with the same settings) "
                        "(remove one, or change its settings)"),
    "bad value": ('\n[[track]]\nexercise = "three-systems"\nrate = 300\n',
                  "11: [[track]] 2: rate = 300 is out of range (use 100 to 220)"),
    "bad choice": ('\n[[track]]\nexercise = "three-systems"\ntone_style = "glyde"\n',
                   "11: [[track]] 2: tone_style = 'glyde' is not one of glide, chime, quiet (did you mean 'glide'?)"),
    "length the exercise lacks": ('\n[[track]]\nexercise = "three-systems"\nlength = "long"\nset = { }\n',
                                  None),
    "missing cover": (None, "3: [album]: cover 'nowhere.png' not found (no file at {folder}/nowhere.png)"),
    "unknown voice": ('\n[[track]]\nexercise = "three-systems"\nvoice = "calm-femal"\n',
                      "11: [[track]] 2: voice: unknown voice 'calm-femal' (close matches: calm-female, calm-male, warm-neutral)"),
    "bad set value": ('\n[[track]]\nexercise = "breathing-pacer"\nset = { breaths = "many" }\n',
                      "11: [[track]] 2: set: unknown parameter 'breaths' for breathing-pacer (known parameters: minutes, rate)"),
    "no exercise": ('\n[[track]]\ntitle = "Nothing"\n',
                    "9: [[track]] 2 needs an exercise or a template (give one: exercise = "
                    '"soothing-rhythm-breathing" or template = "scripts/mine.txt.j2")'),
    "missing bed file": ('\n[[track]]\nexercise = "three-systems"\nbackground = "sea.wav"\n',
                         "11: [[track]] 2: background 'sea.wav' is neither a built-in bed nor a file (choose one "
                         "of pink, brown, rain, waves, or give an audio file (no file at {folder}/sea.wav))"),
}


def _manifest_text(case: str) -> str:
    tail, _ = CASES[case]
    if case == "unknown album key":
        return HEAD.replace('title = "Errors"\n', 'title = "Errors"\ntitel = "x"\n')
    if case == "missing cover":
        return HEAD.replace('title = "Errors"\n', 'title = "Errors"\ncover = "nowhere.png"\n')
    return HEAD + tail


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1]])
def test_manifest_errors_are_one_line_at_the_key(case, tmp_path):
    path = tmp_path / "album.toml"
    path.write_text(_manifest_text(case), encoding="utf-8")
    result = CliRunner().invoke(cli, ["album", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output == f"error: {path}:{CASES[case][1].format(folder=tmp_path)}\n"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()  # nothing spoken, nothing written


def test_a_bad_client_profile_stops_the_batch_before_any_speech(tmp_path):
    manifest = write_project(tmp_path / "project", HEAD)
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "a.toml").write_text('name = "Ana"\n', encoding="utf-8")
    (clients / "z.toml").write_text('name = "Zoe"\n[breathing]\nbreaths_per_min = 30\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["album", str(manifest), "--clients", str(clients), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output == f"error: {clients}/z.toml:3: breathing.breaths_per_min is 30; it must be between 3 and 12\n"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_the_last_album_of_a_batch_is_checked_before_the_first_is_spoken(tmp_path):
    # Zoe's profile is valid but asks for a length the template lacks: found before Ana's album starts.
    manifest = write_project(tmp_path / "project", HEAD.replace('exercise = "soothing-rhythm-breathing"\nlength = "short"',
                                                               'template = "arriving.txt.j2"'))
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "a.toml").write_text('name = "Ana"\n', encoding="utf-8")
    (clients / "z.toml").write_text('name = "Zoe"\nlength = "long"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["album", str(manifest), "--clients", str(clients), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output == f"error: {manifest}:5: [[track]] 1: arriving has no long version (lengths are short, standard)\n"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_every_render_option_has_a_manifest_key():
    # The same names as `render`'s options, - as _; the rest are run-time or album-wide.
    not_per_track = {"exercise", "sets", "client", "exercise_dirs", "output", "fmt", "force", "name_in_file",
                     "voice_dirs", "rate_wpm", "breaths_per_min", "no_cache", "cache_dir", "quiet", "cover",
                     "title", "album", "track", "year", "page"}
    renamed = {"fmt": "format", "rate_wpm": "rate", "breaths_per_min": "breathing", "voice_dirs": "voices",
               "exercise_dirs": "exercises", "sets": "set"}
    manifest_keys = set(opts.BY_KEY) | set(ALBUM_KEYS) | set(TRACK_KEYS)
    for param in render_command.params:
        option = next((o for o in param.opts if o.startswith("--")), None)
        key = (option or f"--{param.name}")[2:].replace("-", "_")
        assert key in manifest_keys or param.name in not_per_track - set(renamed), key
        if param.name in renamed:
            assert renamed[param.name] in manifest_keys | {"set"}, param.name
    assert inspect.signature(render_command.callback)


def test_the_example_manifest_plans(tmp_path, monkeypatch):
    path = tmp_path / "album.toml"
    result = CliRunner().invoke(cli, ["album", "new", str(path)])
    assert result.exit_code == 0 and path.read_text(encoding="utf-8") == EXAMPLE
    again = CliRunner().invoke(cli, ["album", "new", str(path)])
    assert again.exit_code == 1 and "already exists" in again.output
    manifest = load_manifest(path)
    assert [t.exercise for t in manifest.tracks] == ["soothing-rhythm-breathing", "compassionate-place"]
    monkeypatch.chdir(tmp_path)
    plans = plan_albums(manifest, BuildOptions())
    assert plans[0].folder.as_posix() == "output/week-3-practices"
    assert [t.file_name for t in plans[0].tracks] == ["01 Soothing rhythm breathing.mp3", "02 Your compassionate place.mp3"]
    assert not (tmp_path / "output").exists()


def test_a_programme_week_is_an_album(tmp_path):
    manifest = programme_manifest("cmt-8-week", 3)
    assert manifest.title == "Week 3: The three systems" and manifest.folder_name == "cmt-8-week-week-3"
    assert [(t.exercise, t.options["length"]) for t in manifest.tracks] == [
        ("soothing-rhythm-breathing", "standard"), ("three-systems", "standard"),
        ("criticism-kindness-contrast", "short")]
    path = tmp_path / "week3.toml"
    assert CliRunner().invoke(cli, ["album", "new", str(path), "--programme", "cmt-8-week", "--week", "3"]).exit_code == 0
    written = load_manifest(path)
    assert [(t.exercise, t.options["length"]) for t in written.tracks] == \
        [(t.exercise, t.options["length"]) for t in manifest.tracks]
    result = CliRunner().invoke(cli, ["album", "--programme", "cmt-8-week", "--week", "9"])
    assert result.exit_code == 1
    assert result.output == "error: programme cmt-8-week: has no week 9 (weeks are 1 to 8 ('compassion-audio list --programmes'))\n"
    listing = CliRunner().invoke(cli, ["list", "--programmes"]).output
    assert "compassion-audio album --programme cmt-8-week --week N" in listing
