"""The session page's data and files, without a browser: what it embeds is what the track holds.

A track rendered with the fake voice to FLAC (lossless, with chapter tags) and no loudness
gain, so the pacing tones in the file are the mixer's own, and the page's breathing schedule
can be checked against the decoded samples: the schedule, resynthesised with the product's
tone function, matches the file to 0.004 of a 16-bit step (measured); one frame later it
misses by 15.6 steps.
"""
from __future__ import annotations

import json
import re
import stat
import webbrowser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mutagen.flac import FLAC

from compassion_audio import page
from compassion_audio.cli import cli
from compassion_audio.core.errors import PageError
from compassion_audio.core.settings import BreathingSettings, ExportSettings, MixSettings
from compassion_audio.output.captions import cues as caption_cues
from compassion_audio.output.tags import chapter_marks
from compassion_audio.page.data import to_json
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.sound.tones import BreathPattern, cycle_start_frame, render_tones, whole_cycles

from .conftest import FakeEngine, decode

SR = 44100
LSB = 1.0 / 32768
SCRIPT = """+++
title = "Paced <practice> & rest"
+++
[chapter Arriving]
Hello and welcome to you.
[pause 8s]
[chapter Breathing]
Breathe with the tones now.
[breathe 40s rate=5.5 ratio=3:7]
[chapter Returning]
Come back now.
[pause 12s]
[bell]
That is all for today.
"""
BREATHING = BreathingSettings(hold_in_seconds=0.5, hold_out_seconds=1.0, tones_in_pauses_seconds=10.0)
"""Holds on both turns (a silent hold-out shows each cycle's start in the audio), and the
12 s pause paced too."""


def render(folder: Path, name: str = "paced.flac", **request):
    script = folder / "paced.txt.j2"
    script.write_text(SCRIPT, encoding="utf-8")
    req = TrackRequest(exercise=str(script), output=folder / name, force=True, breathing=BREATHING,
                       mix=MixSettings(bells=False, loudness_lufs=None), cache_dir=folder / "cache",
                       export=ExportSettings(captions=True), **request)
    return render_track(req, engine=FakeEngine())


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    result = render(tmp_path_factory.mktemp("paced"))
    return result, decode(result.path)


def embedded(html_text: str) -> dict:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html_text, re.S)
    assert found, "no embedded data block"
    return json.loads(found.group(1))


def test_breathing_schedule_is_the_tones_schedule_to_the_frame(paced):
    result, samples = paced
    track = page.track_data(result)
    timeline = result.timeline
    paced_events = [e for e in timeline.events if e.kind == "breathe"
                    or (e.kind == "pause" and e.end - e.start >= 10 * SR)]
    assert [round(b.start_seconds * SR) for b in track.breathing] == [e.start for e in paced_events]
    assert len(track.breathing) == 2  # the [breathe] and the 12 s pause; not the 8 s pause
    stretch, event = track.breathing[0], paced_events[0]
    pattern = BreathPattern.from_rate(5.5, (3, 7), hold_in_seconds=0.5, hold_out_seconds=1.0)
    assert (stretch.in_seconds, stretch.hold_in_seconds, stretch.out_seconds, stretch.hold_out_seconds) \
        == (pattern.in_seconds, 0.5, pattern.out_seconds, 1.0)
    cycles = whole_cycles(pattern, event.end - event.start, SR)
    assert cycles == 3
    starts = [round(s * SR) for s in stretch.cycle_starts_seconds]
    assert starts == [event.start + cycle_start_frame(k, pattern, SR) for k in range(cycles + 1)]

    # In the audio: each cycle after the first starts inside the hold-out's silence, and the
    # tone rises from it within a few ms of the page's cycle start (its fade-in starts at zero).
    sounding = np.abs(samples) > 2 * LSB
    for start in starts[1:-1]:
        before = np.flatnonzero(sounding[start - SR:start])
        after = np.flatnonzero(sounding[start:start + SR])
        assert before.size == 0 or start - SR + before[-1] < start - int(0.8 * SR)
        assert after.size and after[0] < int(0.03 * SR), after[:1]
    # After the last whole cycle the stretch is silent (the next phrase's 10 ms lead aside).
    assert not sounding[starts[-1]:event.end - int(0.02 * SR)].any()

    # The page's numbers resynthesise what the file holds, to its quantisation.
    a, b = event.start, event.end
    tones = render_tones(BreathPattern(stretch.in_seconds, stretch.hold_in_seconds, stretch.out_seconds,
                                       stretch.hold_out_seconds), "glide",
                         stretch_start=round(stretch.start_seconds * SR),
                         stretch_end=round(stretch.end_seconds * SR), block_start=a, block_frames=b - a,
                         sample_rate=SR).astype(np.float64)
    inner = slice(int(0.1 * SR), -int(0.1 * SR))  # away from the phrases' decay and lead
    heard, shown = samples[a:b].astype(np.float64)[inner], tones[inner]
    gain = float(heard @ shown / (shown @ shown))
    residual = np.abs(heard - gain * shown).max() / LSB
    shifted = np.abs(heard[1:] - gain * shown[:-1]).max() / LSB
    assert residual <= 0.5 and shifted > 4.0, (residual, shifted)


def test_cues_are_the_caption_cues_with_their_kinds(paced):
    result, _ = paced
    track = page.track_data(result)
    want = caption_cues(result.timeline)
    assert [(c.start_seconds, c.end_seconds) for c in track.cues] == \
        [(c.start_seconds, c.end_seconds) for c in want]
    assert [" ".join(c.lines) for c in track.cues] == [" ".join(c.text.split()) for c in want]
    kinds = {" ".join(c.lines): c.kind for c in track.cues}
    assert kinds["(pause – 8 seconds)"] == kinds["(pause – 12 seconds)"] == "pause"
    assert kinds["(slow breathing – 40 seconds)"] == "breathe"
    assert kinds["(bell)"] == "bell"
    assert kinds["Hello and welcome to you."] == "speech"
    # The lines are the caption files' lines.
    vtt = result.path.with_suffix(".vtt").read_text(encoding="utf-8")
    for cue in track.cues:
        assert "\n".join(cue.lines).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in vtt


def test_chapters_are_the_chapters_in_the_files_tags(paced):
    result, _ = paced
    track = page.track_data(result)
    tags = FLAC(result.path)
    written = [(tags[f"CHAPTER{i:03d}NAME"][0], tags[f"CHAPTER{i:03d}"][0]) for i in range(1, 4)]
    shown = [(c.title, c.start_seconds) for c in track.chapters]
    assert [t for t, _ in written] == [t for t, _ in shown] == ["Arriving", "Breathing", "Returning"]
    for (_, stamp), (_, start) in zip(written, shown):
        h, m, s = stamp.split(":")
        assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(start, abs=0.0005)
    marks = chapter_marks(result.timeline.chapters, SR, round(result.timeline.seconds * 1000))
    assert [c.end_seconds for c in track.chapters] == [m.end_ms / 1000 for m in marks]
    assert track.chapters[0].start_seconds == 0.0  # the lead-in belongs to the first, as in the tags


def test_the_page_embeds_its_data_and_nothing_from_outside(paced):
    result, _ = paced
    track = page.track_data(result)
    title = "Week 1 </script><script>alert(1)</script> /*page:js*/"
    html = page.build_html([track], title)
    data = embedded(html)
    assert data == json.loads(json.dumps(to_json([track], title)))
    assert data["tracks"][0]["audio"] == "paced.flac"
    assert "<script>alert(1)" not in html
    assert "<title>Week 1 &lt;/script&gt;" in html
    # Nothing to fetch: every src/href is inline data; no storage, no sending.
    links = re.findall(r'\b(?:src|href)\s*=\s*["\']([^"\']*)', html)
    assert links and all(link.startswith("data:") for link in links), links
    for word in ("fetch(", "XMLHttpRequest", "localStorage", "sessionStorage", "indexedDB",
                 "document.cookie", "sendBeacon", "WebSocket", "@import", "url("):
        assert word not in html, word
    assert "connect-src 'none'" in html  # and the browser is told to refuse any connection


def test_a_tracks_page_data_reads_back(paced):
    # What an album worker hands over, or keeps for tracks it does not render again.
    track = page.track_data(paced[0], hold=True)
    again = page.PageTrack.from_json(json.loads(json.dumps(track.to_json())))
    assert again.to_json() == track.to_json() and again.hold
    assert again.cues == track.cues and again.chapters == track.chapters
    with pytest.raises(PageError, match="page data for 'paced.flac' is incomplete"):
        page.PageTrack.from_json({k: v for k, v in track.to_json().items() if k != "cues"})


def test_a_page_needs_a_track():
    with pytest.raises(PageError, match="at least one track"):
        page.build_html([], "Empty")


def test_a_track_page_sits_beside_the_track_with_its_permissions(tmp_path):
    personal = render(tmp_path, "personal.flac", personal=True)
    shared = render(tmp_path, "shared.flac", personal=False)
    for result in (personal, shared):
        written = page.write_track_page(result)
        assert written == result.path.with_suffix(".html")
        mode = stat.S_IMODE(written.stat().st_mode)
        assert mode == stat.S_IMODE(result.path.stat().st_mode)
        assert embedded(written.read_text(encoding="utf-8"))["tracks"][0]["audio"] == result.path.name
    assert stat.S_IMODE(personal.path.with_suffix(".html").stat().st_mode) == 0o600


def test_an_album_page_lists_its_tracks_by_relative_path(tmp_path):
    folder = tmp_path / "week-3"
    (folder / "tracks").mkdir(parents=True)
    first = render(folder / "tracks", "01-paced.flac", personal=False)
    second = render(folder / "tracks", "02-paced.flac", personal=True)
    tracks = [page.track_data(first, page_dir=folder, hold=True), page.track_data(second, page_dir=folder)]
    written = page.write_album_page(folder, tracks, title="Week 3")
    assert written == folder / "index.html"
    data = embedded(written.read_text(encoding="utf-8"))
    assert data["title"] == "Week 3"
    assert [t["audio"] for t in data["tracks"]] == ["tracks/01-paced.flac", "tracks/02-paced.flac"]
    assert [t["hold"] for t in data["tracks"]] == [True, False]
    # One private track makes the page private: it holds that track's words.
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_play_finds_the_page_for_a_track_or_a_folder(tmp_path, monkeypatch):
    result = render(tmp_path, "paced.flac", personal=False)
    runner = CliRunner()
    missing = runner.invoke(cli, ["play", str(result.path), "--print-path"])
    assert missing.exit_code == 1
    assert missing.output.strip() == (f"error: {result.path}: no session page paced.html there "
                                      "(render the track again with --page)")
    written = page.write_track_page(result)
    shown = runner.invoke(cli, ["play", str(result.path), "--print-path"])
    assert shown.exit_code == 0 and shown.output.strip() == str(written.resolve())
    empty = runner.invoke(cli, ["play", str(tmp_path), "--print-path"])
    assert empty.exit_code == 1 and "no session page index.html there" in empty.output
    page.write_album_page(tmp_path, [page.track_data(result)], title="Album")
    folder = runner.invoke(cli, ["play", str(tmp_path), "--print-path"])
    assert folder.output.strip() == str((tmp_path / "index.html").resolve())
    gone = runner.invoke(cli, ["play", str(tmp_path / "nothing.mp3")])
    assert gone.exit_code == 1 and "no such file or folder" in gone.output
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    launched = runner.invoke(cli, ["play", str(written)])
    assert launched.exit_code == 0, launched.output
    assert opened == [written.resolve().as_uri()]
