"""The album folder's session page: index.html from the workers' page data, kept, rewritten on a hold change.

Albums of two short tracks built with the real engine (espeak-ng, calm-female); the page's
embedded data is read back and compared with the MP3s' own ID3 chapters (mutagen).
"""
from __future__ import annotations

import json
import re
import stat

import pytest

from compassion_audio.album import load_manifest
from compassion_audio.album.state import STATE_NAME
from compassion_audio.core.errors import AlbumError

from .album_support import build, copy_album, write_project
from .page_session import CHROMIUM, Session, chromium_or_skip, id3_chapters

pytestmark = pytest.mark.engine

MANIFEST = """\
[album]
title = "Page practices"
voice = "calm-female"
length = "short"
bells = false

[[track]]
template = "arriving.txt.j2"
set = { name = "Jane" }

[[track]]
template = "closing.txt.j2"
title = "Closing together"
hold = true
"""
NAMES = ["01 Arriving.mp3", "02 Closing together.mp3"]


def page_data(folder) -> dict:
    """The data index.html embeds (its <script type="application/json"> block)."""
    text = (folder / "index.html").read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', text, re.S)
    assert found, "index.html has no embedded data"
    return json.loads(found.group(1))


def stamp(path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("project")
    return write_project(folder, MANIFEST), tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def album(project, tmp_path_factory):
    manifest, cache = project
    out = tmp_path_factory.mktemp("built") / "album"
    report = build(manifest, out, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["built", "built"]
    return out


def test_the_page_lists_the_tracks_with_their_files_titles_chapters_and_hold(album):
    data = page_data(album)
    assert data["title"] == "Page practices"
    tracks = data["tracks"]
    assert [t["audio"] for t in tracks] == NAMES
    assert [t["title"] for t in tracks] == ["Arriving", "Closing together"]
    assert [t["hold"] for t in tracks] == [False, True]
    for track in tracks:
        marks = id3_chapters(album / track["audio"])
        assert [(c["title"], c["start"]) for c in track["chapters"]] == marks
        assert track["cues"] and track["duration"] > 0
    assert [c["title"] for c in tracks[0]["chapters"]] == ["Arriving", "Breath"]
    assert "index.html" in json.loads((album / STATE_NAME).read_text(encoding="utf-8"))["extra"]


def test_a_rebuild_with_nothing_changed_keeps_the_page(project, album, tmp_path):
    manifest, cache = project
    copy = copy_album(album, tmp_path / "album")
    before = stamp(copy / "index.html")
    report = build(manifest, copy, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged", "unchanged"]
    assert stamp(copy / "index.html") == before


def test_changing_a_hold_rewrites_the_page_not_the_audio(project, album, tmp_path):
    manifest, cache = project
    copy = copy_album(album, tmp_path / "album")
    audio = {name: stamp(copy / name) for name in NAMES}
    page = (copy / "index.html").read_bytes()
    held = manifest.parent / "held.toml"
    held.write_text(MANIFEST.replace('set = { name = "Jane" }', 'set = { name = "Jane" }\nhold = true'),
                    encoding="utf-8")
    report = build(held, copy, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged", "unchanged"]
    assert {name: stamp(copy / name) for name in NAMES} == audio
    assert (copy / "index.html").read_bytes() != page
    assert [t["hold"] for t in page_data(copy)["tracks"]] == [True, True]


def test_hold_in_album_is_every_tracks_default(project, album, tmp_path):
    manifest, cache = project
    copy = copy_album(album, tmp_path / "album")
    everywhere = manifest.parent / "everywhere.toml"
    # [album] hold = true, track 2's own hold = false.
    text = MANIFEST.replace("bells = false", "bells = false\nhold = true").replace("hold = true\n", "hold = false\n")
    everywhere.write_text(text.replace("false\nhold = false", "false\nhold = true"), encoding="utf-8")
    assert load_manifest(everywhere).options["hold"] is True
    assert load_manifest(everywhere).tracks[1].options["hold"] is False
    report = build(everywhere, copy, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged", "unchanged"]
    assert [t["hold"] for t in page_data(copy)["tracks"]] == [True, False]


def test_without_the_state_the_kept_tracks_page_data_comes_from_the_page(project, album, tmp_path):
    manifest, cache = project
    copy = copy_album(album, tmp_path / "album")
    (copy / STATE_NAME).unlink()
    before = stamp(copy / "index.html")
    report = build(manifest, copy, cache)
    assert [o.status for o in report.albums[0].outcomes] == ["unchanged", "unchanged"]
    assert stamp(copy / "index.html") == before
    assert len(json.loads((copy / STATE_NAME).read_text(encoding="utf-8"))["pages"]) == 2


def test_a_personal_albums_page_is_private(project, tmp_path):
    manifest, cache = project
    (manifest.parent / "jane.toml").write_text('name = "Jane"\n', encoding="utf-8")
    personal = manifest.parent / "personal.toml"
    personal.write_text(MANIFEST.replace('bells = false', 'bells = false\nclient = "jane.toml"'), encoding="utf-8")
    out = tmp_path / "album"
    build(personal, out, cache)
    assert stat.S_IMODE((out / NAMES[0]).stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "index.html").stat().st_mode) == 0o600


def test_a_misspelt_hold_is_named_with_a_suggestion(project, tmp_path):
    manifest, _ = project
    wrong = manifest.parent / "wrong.toml"
    wrong.write_text(MANIFEST.replace("hold = true", "hodl = true"), encoding="utf-8")
    with pytest.raises(AlbumError) as caught:
        load_manifest(wrong)
    assert "unknown key 'hodl'" in str(caught.value) and "did you mean 'hold'?" in str(caught.value)
    wrong.write_text(MANIFEST.replace("hold = true", 'hold = "yes"'), encoding="utf-8")
    with pytest.raises(AlbumError) as caught:
        load_manifest(wrong)
    assert "hold must be true or false" in str(caught.value)


def test_the_album_page_loads_in_chromium_with_no_errors(album):
    sync_playwright = chromium_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--autoplay-policy=no-user-gesture-required"])
        try:
            session = Session(browser, album / "index.html", viewport={"width": 1280, "height": 720})
            assert session.errors == [] and session.outside == []
            assert session.page.evaluate("() => document.getElementById('audio').currentSrc") \
                .endswith("/01%20Arriving.mp3")
            session.context.close()
        finally:
            browser.close()
