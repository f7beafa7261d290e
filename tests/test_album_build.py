"""Albums built with the real engine: files, tags, pages, parallel = serial, incremental rebuilds, clients."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import replace

import mutagen
import pytest
from click.testing import CliRunner

from compassion_audio.album import BuildOptions, load_manifest, plan_albums
from compassion_audio.album.jobs import close_engines, render_job
from compassion_audio.album.jobs import job_for
from compassion_audio.album.state import STATE_NAME
from compassion_audio.cli.app import cli
from compassion_audio.core.errors import VoiceError

from .album_support import MANIFEST, build, copy_album, files_of, same_album, tags_of, write_project
from .conftest import decode, embedded_pictures, ffmetadata_view
from .test_tags import png_bytes

pytestmark = pytest.mark.engine

NAMES = ["01 Arriving", "02 Arriving, longer", "03 Closing", "04 Daily compassionate act"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("project")
    return write_project(folder), tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reference(project, tmp_path_factory):
    """The album built once, serially: every test compares against it or starts from a copy."""
    manifest, cache = project
    out = tmp_path_factory.mktemp("reference") / "album"
    report = build(manifest, out, cache, jobs=1)
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    return out


def test_album_files_tags_and_cover(reference):
    names = sorted(p.name for p in reference.iterdir() if not p.name.startswith("."))
    expected = [f"{n}{s}" for n in NAMES for s in (".chapters.vtt", ".mp3", ".srt", ".txt", ".vtt")]
    assert names == sorted(expected + ["cover.png", "index.html", "playlist.m3u8", "tracks.md"])
    assert (reference / "cover.png").read_bytes() == png_bytes()
    state = json.loads((reference / STATE_NAME).read_text(encoding="utf-8"))
    for number, name in enumerate(NAMES, start=1):
        path = reference / f"{name}.mp3"
        id3 = mutagen.File(path).tags
        assert str(id3["TRCK"]) == f"{number}/4"
        assert str(id3["TALB"]) == "Test practices" and str(id3["TPE1"]) == "Test Clinic"
        assert str(id3["TIT2"]) == name[3:]
        assert str(id3["TXXX:compassion-audio-render-key"]) == state["tracks"][f"{name}.mp3"]["key"]
        assert embedded_pictures(path) == [png_bytes()]
        tags, chapters = ffmetadata_view(path)
        assert (tags["title"], tags["album"], tags["artist"], tags["track"], tags["date"]) == \
            (name[3:], "Test practices", "Test Clinic", f"{number}/4", "2026")
        assert len(id3.getall("CHAP")) == len(chapters) >= 1
    _, chapters = ffmetadata_view(reference / "01 Arriving.mp3")
    assert [c[0] for c in chapters] == ["Arriving", "Breath"]
    # Personalised as the manifest asked: the transcript says what the track says.
    assert "Welcome, Jane." in (reference / "01 Arriving.txt").read_text(encoding="utf-8")
    assert "the garden" in (reference / "02 Arriving, longer.txt").read_text(encoding="utf-8")


def test_playlist_and_track_list_match_the_decoded_tracks(reference):
    lines = (reference / "playlist.m3u8").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 1 + 2 * len(NAMES)
    listing = (reference / "tracks.md").read_text(encoding="utf-8")
    total = 0.0
    for index, name in enumerate(NAMES):
        seconds = decode(reference / f"{name}.mp3").size / 44100
        total += seconds
        info, path = lines[1 + 2 * index], lines[2 + 2 * index]
        match = re.fullmatch(r"#EXTINF:(\d+),Test Clinic - (.+)", info)
        assert match and match.group(2) == name[3:] and path == f"{name}.mp3"
        assert abs(int(match.group(1)) - seconds) <= 1.0
        minutes, secs = divmod(int(round(seconds)), 60)
        assert f"| {index + 1} | {name[3:]} | {minutes}:{secs:02d} |" in listing
    minutes, secs = divmod(int(round(total)), 60)
    assert listing.startswith("# Test practices\n\nTest Clinic · 2026\n")
    assert f"Total: {minutes}:{secs:02d} (4 tracks)" in listing


def test_two_jobs_make_the_same_album_as_one(project, reference, tmp_path):
    manifest, cache = project
    report = build(manifest, tmp_path / "album", cache, jobs=2)
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    same_album(tmp_path / "album", reference)


def test_changing_one_value_renders_exactly_that_track(project, reference, tmp_path):
    manifest, cache = project
    album = copy_album(reference, tmp_path / "album")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in album.iterdir() if p.is_file()}
    edited = manifest.parent / "edited.toml"
    edited.write_text(MANIFEST.replace('place = "the garden"', 'place = "the park"'), encoding="utf-8")
    report = build(edited, album, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged", "built", "unchanged", "unchanged"]
    for name, (data, mtime) in before.items():
        if name.startswith(("01 ", "03 ", "04 ")) or name == "cover.png":
            assert (album / name).read_bytes() == data and (album / name).stat().st_mtime_ns == mtime, name
    assert "the park" in (album / "02 Arriving, longer.txt").read_text(encoding="utf-8")
    assert tags_of(album / "02 Arriving, longer.mp3") != tags_of(reference / "02 Arriving, longer.mp3")
    # Built again with nothing changed: not a file is touched, not even the pages.
    settled = {p.name: p.stat().st_mtime_ns for p in album.iterdir() if p.is_file()}
    report = build(edited, album, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged"] * 4
    assert {p.name: p.stat().st_mtime_ns for p in album.iterdir() if p.is_file()} == settled


def test_a_missing_or_damaged_track_is_made_again(project, reference, tmp_path):
    manifest, cache = project
    album = copy_album(reference, tmp_path / "album")
    (album / "03 Closing.mp3").unlink()
    damaged = album / "01 Arriving.mp3"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # cut off, tags intact
    report = build(manifest, album, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["built", "unchanged", "built", "unchanged"]
    same_album(album, reference)


def test_without_the_state_the_tags_and_packets_decide(project, reference, tmp_path):
    manifest, cache = project
    album = copy_album(reference, tmp_path / "album")
    (album / STATE_NAME).unlink()
    report = build(manifest, album, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged"] * 4
    same_album(album, reference)
    assert json.loads((album / STATE_NAME).read_text(encoding="utf-8"))["tracks"].keys() == \
        json.loads((reference / STATE_NAME).read_text(encoding="utf-8"))["tracks"].keys()


def test_a_removed_track_is_stale_until_pruned(project, reference, tmp_path):
    manifest, cache = project
    album = copy_album(reference, tmp_path / "album")
    shorter = manifest.parent / "shorter.toml"
    shorter.write_text(MANIFEST.split('[[track]]\ntemplate = "closing.txt.j2"')[0]
                       .replace("captions = true", "captions = false"), encoding="utf-8")
    report = build(shorter, album, cache)
    outcomes = report.albums[0].outcomes
    assert [o.status for o in outcomes] == ["built", "built"]  # track n/2 now: their tags changed
    stale = report.albums[0].stale
    assert "03 Closing.mp3" in stale and "04 Daily compassionate act.vtt" in stale
    assert "01 Arriving.srt" in stale  # captions turned off: the kept tracks' old captions too
    assert (album / "03 Closing.mp3").exists()
    report = build(shorter, album, cache, prune=True)
    assert report.albums[0].pruned and not (album / "03 Closing.mp3").exists()
    assert sorted(p.name for p in album.iterdir() if not p.name.startswith(".")) == \
        ["01 Arriving.mp3", "02 Arriving, longer.mp3", "cover.png", "index.html", "playlist.m3u8", "tracks.md"]


def test_single_file_has_a_chapter_per_track(project, reference, tmp_path):
    manifest, cache = project
    album = copy_album(reference, tmp_path / "album")
    report = build(manifest, album, cache, single_file=True)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged"] * 4
    assert report.albums[0].single_status == "built"
    whole = album / "Test practices.mp3"
    tags, chapters = ffmetadata_view(whole)
    assert tags["album"] == "Test practices" and embedded_pictures(whole) == [png_bytes()]
    assert [c[0] for c in chapters] == [n[3:] for n in NAMES]
    start = 0.0
    for (title, begins, ends), name in zip(chapters, NAMES):
        seconds = decode(reference / f"{name}.mp3").size / 44100
        assert abs(begins - start) < 0.05 and abs(ends - (start + seconds)) < 0.05, title
        start += seconds
    assert abs(decode(whole).size / 44100 - start) < 0.1
    assert build(manifest, album, cache, single_file=True).albums[0].single_status == "unchanged"


def test_m4a_album_single_file_is_m4b(tmp_path):
    manifest = write_project(tmp_path / "project", MANIFEST.split("[[track]]\ntemplate = \"closing")[0]
                             .replace('captions = true', 'format = "m4a"'))
    report = build(manifest, tmp_path / "album", tmp_path / "cache", single_file=True)
    assert report.albums[0].single_status == "built"
    tags, chapters = ffmetadata_view(tmp_path / "album" / "Test practices.m4b")
    assert [c[0] for c in chapters] == ["Arriving", "Arriving, longer"]
    assert tags["title"] == "Test practices" and tags["artist"] == "Test Clinic"


CLIENT_MANIFEST = """\
[album]
title = "Client practices"
voice = "calm-female"
length = "short"
bells = false
captions = true

[[track]]
template = "arriving.txt.j2"

[[track]]
template = "closing.txt.j2"
"""


def test_one_personal_album_per_client_profile(tmp_path):
    manifest = write_project(tmp_path / "project", CLIENT_MANIFEST)
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "ana-lima.toml").write_text('name = "Ana"\n', encoding="utf-8")
    (clients / "ben-okafor.toml").write_text('name = "Ben"\n', encoding="utf-8")
    out = tmp_path / "albums"
    result = CliRunner().invoke(cli, ["album", str(manifest), "--clients", str(clients), "-o", str(out),
                                      "--jobs", "2", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2 and all(re.fullmatch(r"client-[0-9a-f]{8}", f) for f in folders)
    everything = " ".join(str(p) for p in out.rglob("*"))
    assert not re.search(r"ana|ben", everything, re.I)  # no name in any path
    spoken = {}
    for folder in out.iterdir():
        assert sorted(p.name for p in folder.glob("*.mp3")) == ["01 Arriving.mp3", "02 Closing.mp3"]
        assert oct((folder / "01 Arriving.mp3").stat().st_mode & 0o777) == "0o600"  # personal
        text = (folder / "01 Arriving.txt").read_text(encoding="utf-8")
        spoken[folder.name] = "Ana" if "Welcome, Ana." in text else "Ben" if "Welcome, Ben." in text else None
        assert "Ana" not in " ".join(tags_of(folder / "01 Arriving.mp3").values())
        assert "Ben" not in " ".join(tags_of(folder / "01 Arriving.mp3").values())
    assert sorted(spoken.values()) == ["Ana", "Ben"]
    # The shared closing track is the same for both, spoken once.
    first, second = sorted(out.iterdir())
    assert (decode(first / "02 Closing.mp3") == decode(second / "02 Closing.mp3")).all()
    assert "total: 4 built, 0 unchanged, 0 failed" in result.output


def test_names_in_folders_and_tags_only_when_asked(tmp_path):
    manifest = write_project(tmp_path / "project", CLIENT_MANIFEST.replace("captions = true", ""))
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "c1.toml").write_text('name = "Ana"\n', encoding="utf-8")
    out = tmp_path / "albums"
    result = CliRunner().invoke(cli, ["album", str(manifest), "--clients", str(clients), "-o", str(out),
                                      "--jobs", "1", "--name-in-file", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["ana"]
    assert str(mutagen.File(out / "ana" / "01 Arriving.mp3").tags["TALB"]) == "Client practices - for Ana"


def test_a_failing_track_does_not_stop_the_others(tmp_path):
    manifest = write_project(tmp_path / "project", CLIENT_MANIFEST + '\n[[track]]\ntemplate = "broken.txt.j2"\nlength = "standard"\n')
    (manifest.parent / "broken.txt.j2").write_text('+++\ntitle = "Broken"\n+++\nHello.\n[pause 1s]\n( ) .\n', encoding="utf-8")
    out = tmp_path / "album"
    result = CliRunner().invoke(cli, ["album", str(manifest), "-o", str(out), "--jobs", "1",
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1
    assert f"{out}: 2 built, 0 unchanged, 1 failed" in result.output
    assert ("  failed: 03 Broken: could not speak phrase 2 of 2 (line 5 of broken.txt.j2): the speech engine "
            "failed (the engine wrote silence), and again in a fresh worker (the engine wrote silence)") in result.output
    assert sorted(p.name for p in out.glob("*.mp3")) == ["01 Arriving.mp3", "02 Closing.mp3"]
    listing = (out / "tracks.md").read_text(encoding="utf-8")
    assert "Not built yet: 03 Broken" in listing and "(2 tracks)" in listing
    assert "03 Broken" not in (out / "playlist.m3u8").read_text(encoding="utf-8")


def test_files_of_a_client_album_hold_no_partial_or_work_files(reference):
    hidden = sorted(p.name for p in reference.iterdir() if p.name.startswith("."))
    assert hidden == [".album-lock", STATE_NAME]
    assert files_of(reference)


WORKER = """
import pickle, sys
from compassion_audio.album.jobs import render_job
sys.stdout.buffer.write(pickle.dumps(render_job(pickle.load(sys.stdin.buffer))))
"""


def test_a_job_carries_everything_a_worker_elsewhere_needs(project, reference, tmp_path):
    # A job made for a remote worker (local=False), pickled, run in a fresh process in another
    # folder after the project's files are gone: the same track comes back, as bytes.
    manifest, cache = project
    copied = write_project(tmp_path / "gone")
    plan = plan_albums(load_manifest(copied), BuildOptions(output=tmp_path / "unused", cache_dir=cache))[0]
    job = job_for(plan, plan.tracks[0])
    assert job.cache_dir is None and job.scratch_root is None and set(job.files) == {"cover"}
    shutil.rmtree(copied.parent)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-c", WORKER], input=pickle.dumps(job), capture_output=True, cwd=elsewhere,
                          env={**os.environ, "COMPASSION_AUDIO_CACHE": str(cache)}, check=True)
    output = pickle.loads(proc.stdout)
    assert output.render_key == plan.tracks[0].key
    assert output.audio == (reference / "01 Arriving.mp3").read_bytes()
    assert output.sidecars == {s: (reference / f"01 Arriving{s}").read_bytes()
                               for s in (".vtt", ".chapters.vtt", ".srt", ".txt")}
    assert list(elsewhere.iterdir()) == []


def test_a_worker_with_another_voice_or_software_refuses_the_job(project, tmp_path):
    manifest, cache = project
    plan = plan_albums(load_manifest(manifest), BuildOptions(output=tmp_path / "unused", cache_dir=cache))[0]
    job = job_for(plan, plan.tracks[0])
    voice = {**job.identity["voice"], "espeak_version": "0.0.1"}
    with pytest.raises(VoiceError, match=r"this worker's voice 'calm-female' differs from the client's "
                                         r"\(voice\.espeak_version: client '0\.0\.1', worker '[0-9.]+'\)"):
        render_job(replace(job, identity={"voice": voice}))
    with pytest.raises(VoiceError, match=r"this worker's software differs from the client's \(ffmpeg: client 'old'"):
        render_job(replace(job, environment={**job.environment, "ffmpeg": "old"}))
    close_engines()
