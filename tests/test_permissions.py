"""One permissions rule: a personalised track and every file beside it are 0600; others follow the umask."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from compassion_audio.cli.app import cli
from compassion_audio.core import files
from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.render import TrackRequest, render_track

FORMATS = ("mp3", "m4a", "opus", "ogg", "flac", "wav")
SIDECARS = (".vtt", ".srt", ".txt", ".chapters.vtt", ".timeline.json")
SCRIPT = "[chapter Arriving]\nHello there.\n[pause 1s]\n[chapter Closing]\nGoodbye now.\n"


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def outputs(audio: Path) -> list[Path]:
    """The track and every file written beside it."""
    return [audio] + [audio.with_suffix(suffix) for suffix in SIDECARS]


def render(tmp_path: Path, engine, fmt: str, **request) -> Path:
    script = tmp_path / "practice.txt.j2"
    if not script.exists():
        script.write_text(SCRIPT, encoding="utf-8")
    out = tmp_path / "out" / f"practice.{fmt}"
    result = render_track(TrackRequest(
        exercise=str(script), output=out, force=True, mix=MixSettings(bells=False),
        export=ExportSettings(captions=True, timeline_json=True), **request), engine=engine)
    assert sorted(result.sidecars) == sorted(outputs(out)[1:])
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("personal", [True, False], ids=["personal", "shared"])
def test_every_format_and_sidecar_follows_the_rule(fmt, personal, umask, tmp_path, fake_engine):
    audio = render(tmp_path, fake_engine, fmt, personal=personal)
    expected = 0o600 if personal else 0o666 & ~umask
    assert {p.name: oct(mode(p)) for p in outputs(audio)} == {p.name: oct(expected) for p in outputs(audio)}
    assert sorted(p.name for p in audio.parent.iterdir()) == sorted(p.name for p in outputs(audio))


@pytest.mark.parametrize("values, group, private", [
    ({"name": "Jo"}, False, True),                        # -s name=Jo: words for one client
    ({"place": {"smell": "pine"}}, False, True),          # nested, as dotted parameters arrive
    ({"friends": ["Jo", "Sam"]}, False, True),
    ({"minutes": 5.0, "name": ""}, False, False),         # a setting, and an empty value, are not personal
    ({}, False, False),
    ({"place": {"smell": "pine"}}, True, False),          # a group track is shared
])
def test_personal_by_default_when_an_individual_track_has_words(values, group, private):
    assert TrackRequest(exercise="x", values=values, group=group).private is private
    assert TrackRequest(exercise="x", values=values, group=group, personal=not private).private is not private


def test_a_shared_render_replaces_a_private_file_with_a_shared_one(tmp_path, fake_engine):
    old = os.umask(0o022)
    try:
        audio = render(tmp_path, fake_engine, "wav", personal=True)
        assert mode(audio) == 0o600
        audio = render(tmp_path, fake_engine, "wav", personal=False)
        assert [mode(p) for p in outputs(audio)] == [0o644] * len(outputs(audio))
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o027, 0o077])
def test_atomic_output_private_or_by_the_umask(mask, tmp_path):
    old = os.umask(mask)
    try:
        with files.atomic_output(tmp_path / "private.bin") as tmp:
            assert mode(tmp) == 0o600  # never readable by others, even while being written
            tmp.write_bytes(b"x")
        with files.atomic_output(tmp_path / "shared.bin", private=False) as tmp:
            tmp.write_bytes(b"x")
        files.write_text_atomic(tmp_path / "shared.txt", "x", private=False)
        files.write_text_atomic(tmp_path / "given.txt", "x", mode=0o640)
    finally:
        os.umask(old)
    assert mode(tmp_path / "private.bin") == 0o600
    assert mode(tmp_path / "shared.bin") == mode(tmp_path / "shared.txt") == 0o666 & ~mask
    assert mode(tmp_path / "given.txt") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["given.txt", "private.bin", "shared.bin", "shared.txt"]


@pytest.mark.engine
def test_cli_client_tracks_are_private_and_group_tracks_shared(tmp_path):
    """--client makes a track personal even when the profile sets only the breathing pace;
    the group variant of the same render is shared (its personal details are left out)."""
    client = tmp_path / "jane.toml"
    client.write_text("[breathing]\nbreaths_per_min = 5\n", encoding="utf-8")
    script = tmp_path / "tiny.txt.j2"
    script.write_text('+++\ntitle = "Tiny"\ngroup = true\n+++\n[chapter One]\nHello.\n', encoding="utf-8")
    old = os.umask(0o022)
    try:
        runs = {name: CliRunner().invoke(cli, ["render", str(script), "--client", str(client), *extra,
                                               "-o", str(tmp_path / f"{name}.mp3"), "--captions", "-q"])
                for name, extra in (("individual", []), ("group", ["--group"]))}
    finally:
        os.umask(old)
    for run in runs.values():
        assert run.exit_code == 0, run.output
    for name, expected in (("individual", 0o600), ("group", 0o644)):
        audio = tmp_path / f"{name}.mp3"
        written = [audio] + [audio.with_suffix(s) for s in (".vtt", ".srt", ".txt", ".chapters.vtt")]
        assert [oct(mode(p)) for p in written] == [oct(expected)] * len(written), name
