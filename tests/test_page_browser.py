"""The session page in a real browser: Debian's Chromium, driven by Playwright, pages opened from file://.

Tracks are rendered for real (espeak-ng, the calm-female voice, short group versions): one
through the CLI with --page, an album of two through render_track and write_album_page, as an
album command does. What the page should show is read from what the product wrote beside the
audio (the .vtt captions, the .timeline.json) and from the MP3's own ID3 chapters; the page's
state is read from its audio element and its DOM. Screenshots of the facilitator and phone
views are saved in tests/artifacts/page/ for a person to look at.

Without Chromium or Playwright these tests skip with the reason; under CI (CI=true) they fail.
"""
from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path

import pytest
from click.testing import CliRunner

from compassion_audio import page as session_page
from compassion_audio.cli import cli
from compassion_audio.core.settings import ExportSettings
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.sound.tones import BreathPattern
from compassion_audio.speech.voices import resolve_voice

from .page_session import (CHROMIUM, Session, chromium_or_skip, ease, id3_chapters, timeline_of,
                           vtt_cues)

pytestmark = pytest.mark.engine

FACILITATOR = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
HOLD_TOLERANCE = 0.3
"""A hold must stop this close to the section's end (seconds)."""


@pytest.fixture(scope="module")
def browser():
    sync_playwright = chromium_or_skip()
    with sync_playwright() as p:
        # Playwright's own browser download cannot work here: Debian's Chromium instead.
        launched = p.chromium.launch(executable_path=str(CHROMIUM),
                                     args=["--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser):
    with ExitStack() as stack:
        def opened(path: Path, **options) -> Session:
            session = Session(browser, path, **{"viewport": FACILITATOR, **options})
            stack.callback(session.context.close)
            return session

        yield opened


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """compassionate-self (short, group): a 15 s [breathe], pauses long enough for pause
    captions, six chapters; rendered by the CLI with --page."""
    chromium_or_skip()
    folder = tmp_path_factory.mktemp("single")
    audio = folder / "compassionate-self.mp3"
    result = CliRunner().invoke(cli, [
        "render", "compassionate-self", "--voice", "calm-female", "--length", "short", "--group",
        "--captions", "--timeline", "--page", "-o", str(audio), "--cache-dir", str(folder / "cache")])
    assert result.exit_code == 0, result.output
    assert f"and {audio.with_suffix('.html')}" in result.output
    return audio


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """Two tracks in a folder with their index.html; the first holds at its section ends."""
    chromium_or_skip()
    folder = tmp_path_factory.mktemp("week-3")
    voice = resolve_voice("calm-female")
    results = [render_track(TrackRequest(
        exercise=name, length="short", group=True, voice_profile=voice, output=folder / f"{i:02d}-{name}.mp3",
        export=ExportSettings(captions=True, timeline_json=True), cache_dir=folder / "cache"))
        for i, name in enumerate(["soothing-rhythm-breathing", "breathing-pacer"], start=1)]
    tracks = [session_page.track_data(r, page_dir=folder, hold=i == 0) for i, r in enumerate(results)]
    session_page.write_album_page(folder, tracks, title="Week 3: soothing rhythm")
    return folder, results


# ---------------------------------------------------------------- loading, offline


def test_the_request_recorder_sees_a_network_request(open_page, single):
    # The instrument itself: a request the page does not make is seen and refused.
    session = open_page(single.with_suffix(".html"))
    session.page.goto("about:blank")  # a page without the session page's no-connection policy
    session.page.evaluate("fetch('http://example.invalid/y').catch(() => null)")
    session.page.wait_for_timeout(300)
    assert session.outside == ["http://example.invalid/y"]


def test_the_track_page_loads_from_file_with_no_errors_and_no_network(open_page, single):
    session = open_page(single.with_suffix(".html"))
    state = session.state()
    assert state["src"] == single.as_uri()
    assert state["track"] == "The compassionate self" == session.page.title()
    assert state["playLabel"] == "Play" and not state["hold"]
    assert session.page.locator("#tracks-section").is_hidden()  # one track: no list
    session.page.click("#play")
    session.wait_playing()
    session.page.wait_for_timeout(500)
    assert session.errors == [] and session.outside == []
    assert set(session.requests) == {single.with_suffix(".html").as_uri(), single.as_uri()}


def test_the_album_page_loads_offline_and_lists_its_tracks(open_page, album):
    folder, results = album
    session = open_page(folder / "index.html")
    items = session.page.locator("#track-list .item")
    assert items.count() == len(results) == 2
    titles = [items.nth(i).locator(".item-title").inner_text() for i in range(items.count())]
    assert titles == [r.timeline.title for r in results]
    times = [items.nth(i).locator(".item-time").inner_text() for i in range(items.count())]
    assert times == [f"{int(r.timeline.seconds) // 60}:{int(r.timeline.seconds) % 60:02d}" for r in results]
    assert items.nth(0).get_attribute("aria-current") == "true"
    assert session.page.locator("#album-title").inner_text().lower() == "week 3: soothing rhythm"
    items.nth(1).click()
    assert session.wait_track("02-breathing-pacer.mp3")["track"] == results[1].timeline.title
    assert items.nth(1).get_attribute("aria-current") == "true"
    assert session.errors == [] and session.outside == []
    assert set(session.requests) == {(folder / "index.html").as_uri(), results[0].path.as_uri(),
                                     results[1].path.as_uri()}


def marks_of(session: Session) -> list[tuple[str, float]]:
    marks = session.page.evaluate(
        "() => [...document.querySelectorAll('#marks .mark')].map(m => [m.dataset.title, +m.dataset.start])")
    return [tuple(m) for m in marks]


def test_chapter_marks_are_the_chapters_in_the_audio_files(open_page, single, album):
    session = open_page(single.with_suffix(".html"))
    tagged = id3_chapters(single)
    assert len(tagged) == 6
    assert [(t, pytest.approx(s, abs=0.0005)) for t, s in tagged] == marks_of(session)
    assert session.page.locator("#chapter-list .item-title").all_inner_texts() == [t for t, _ in tagged]
    folder, results = album
    session = open_page(folder / "index.html")
    for i, result in enumerate(results):
        if i:
            session.page.locator("#track-list .item").nth(i).click()
            session.wait_track(result.path.name)
        assert [(t, pytest.approx(s, abs=0.0005)) for t, s in id3_chapters(result.path)] == marks_of(session)


# ---------------------------------------------------------------- playing, captions, breathing


def test_playing_advances_the_audio_clock(open_page, single):
    session = open_page(single.with_suffix(".html"))
    start = session.seek(20.0)["time"]
    session.page.click("#play")
    assert session.wait_playing()["playLabel"] == "Pause"
    session.page.wait_for_timeout(1500)
    state = session.state()
    assert 1.0 < state["time"] - start < 3.0
    assert state["caption"]  # speech is captioned as it plays
    session.page.click("#play")
    assert session.wait_playing(False)["playLabel"] == "Play"


def test_the_caption_at_a_moment_is_the_cue_the_track_holds_then(open_page, single):
    session = open_page(single.with_suffix(".html"))
    cues = vtt_cues(single.with_suffix(".vtt"))
    silent = [c for c in cues if c[2].startswith("(")]
    assert any(c[2].startswith("(pause") for c in silent) and any(c[2].startswith("(slow breathing") for c in silent)
    spoken = [c for c in cues if not c[2].startswith("(")]
    chosen = silent + spoken[:: max(1, len(spoken) // 6)]
    for start, end, text in chosen:
        state = session.seek((start + end) / 2)
        assert state["caption"] == text, (start, end)
        if text.startswith(("(pause", "(slow breathing")):
            left = math.ceil(end - state["time"] - 1e-6)
            assert state["countdown"] == f"{left // 60}:{left % 60:02d}"
        else:
            assert state["countdown"] == ""
    before = cues[0][0] / 2  # before the opening bell's cue: nothing
    assert session.seek(before)["caption"] == ""
    plan = timeline_of(single)
    chapter = plan["chapters"][2]
    assert session.seek(chapter["start"] + 0.5)["chapter"] == chapter["title"]


def breathing_stretch(audio: Path) -> tuple[float, float, BreathPattern]:
    """The first [breathe] stretch of a CLI-rendered track and its pattern (the CLI's defaults)."""
    stretch = next(s for s in timeline_of(audio)["segments"] if s["kind"] == "breathe")
    return stretch["start"], stretch["end"], BreathPattern.from_rate(6.0, (4, 6))


def test_the_breathing_visual_follows_the_tones_schedule(open_page, single):
    session = open_page(single.with_suffix(".html"))
    start, end, pattern = breathing_stretch(single)
    t_in, t_out, cycle = pattern.in_seconds, pattern.out_seconds, pattern.cycle_seconds
    assert end - start == pytest.approx(15.0, abs=0.01)  # one whole cycle, then 5 s at rest
    assert not session.seek(start - 0.5)["breathShown"]
    rest = session.seek(start + cycle + 2.0)
    assert rest["breathShown"] and rest["label"] == "Breathe naturally"
    smallest = rest["circle"] / rest["ring"]
    moments = {"start": 0.03, "quarter in": t_in / 4, "mid in": t_in / 2, "top": t_in + 0.03,
               "mid out": t_in + t_out / 2, "end of out": cycle - 0.03}
    sizes, labels = {}, {}
    for name, offset in moments.items():
        state = session.seek(start + offset)
        assert state["breathShown"] and state["ringShown"]
        u = state["time"] - start
        want = ease(u / t_in) if u < t_in else 1.0 - ease((u - t_in) / t_out)
        size = (state["circle"] / state["ring"] - smallest) / (1.0 - smallest)
        assert size == pytest.approx(want, abs=0.02), name
        sizes[name], labels[name] = size, state["label"]
    assert sizes["mid in"] > sizes["quarter in"] > sizes["start"]
    assert min(sizes, key=sizes.get) == "end of out"
    assert sizes["top"] == pytest.approx(1.0, abs=0.02)
    assert labels["start"] == labels["mid in"] == "Breathe in"
    assert labels["mid out"] == labels["end of out"] == "Breathe out"
    assert not session.seek(end + 0.5)["breathShown"]


def test_reduced_motion_shows_a_text_cue_instead_of_the_circle(open_page, single):
    session = open_page(single.with_suffix(".html"), reduced_motion="reduce")
    start, _, pattern = breathing_stretch(single)
    # A quarter second past the middle of the in-breath: not on a whole second, where the count
    # changes and a seek a hair early would read one more.
    state = session.seek(start + pattern.in_seconds / 2 + 0.25)
    assert state["breathShown"] and not state["ringShown"]
    assert state["label"] == "Breathe in \u2026 2" and state["labelHeight"] > 30
    state = session.seek(start + pattern.in_seconds + 1.2)
    assert state["label"] == "Breathe out \u2026 5"


# ---------------------------------------------------------------- holding at section ends


def test_hold_stops_at_a_section_end_and_continue_resumes(open_page, album):
    folder, results = album
    session = open_page(folder / "index.html")
    assert session.state()["hold"]  # the first track's hold flag
    chapter = timeline_of(results[0].path)["chapters"][0]
    session.seek(chapter["end"] - 1.2)
    session.page.click("#play")
    session.wait_hold()
    state = session.state()
    assert state["paused"] and abs(state["time"] - chapter["end"]) <= HOLD_TOLERANCE, state["time"]
    assert state["holdMessage"] == f"End of \u201c{chapter['title']}\u201d"
    assert state["focused"] == "continue"  # Enter, space or a clicker's click continues
    session.page.click("#continue")
    state = session.wait_playing()
    assert not state["holding"]
    session.page.wait_for_timeout(600)
    assert session.state()["time"] > chapter["end"] + 0.3
    # At the track's end the next track waits for Continue too.
    session.seek(results[0].timeline.seconds - 1.0)
    session.wait_hold()
    assert session.state()["holdMessage"] == f"End of \u201c{results[0].timeline.title}\u201d"
    session.page.keyboard.press("Enter")
    state = session.wait_playing()
    assert state["track"] == results[1].timeline.title and state["src"] == results[1].path.as_uri()
    assert session.errors == []


def test_without_hold_a_section_end_plays_through_and_h_turns_it_on(open_page, single):
    session = open_page(single.with_suffix(".html"))
    first, second = timeline_of(single)["chapters"][:2]
    session.seek(first["end"] - 0.6)
    session.page.click("#play")
    session.page.wait_for_timeout(1200)
    state = session.state()
    assert not state["paused"] and not state["holding"] and state["time"] > first["end"]
    session.page.keyboard.press("h")
    assert session.state()["hold"]
    session.seek(second["end"] - 0.8)
    session.wait_hold()
    assert abs(session.state()["time"] - second["end"]) <= HOLD_TOLERANCE


# ---------------------------------------------------------------- keyboard


def test_keyboard_controls_do_what_they_say(open_page, single):
    session = open_page(single.with_suffix(".html"))
    press = session.page.keyboard.press
    chapters = [c["start"] for c in timeline_of(single)["chapters"]]
    chapters[0] = 0.0  # the first section starts with the track, as in the tags
    for key in ("Space", "Enter"):
        press(key)
        session.wait_playing()
        press(key)
        session.wait_playing(False)
    press("ArrowRight")
    session.wait_time(chapters[1])
    press("PageDown")  # a presenter remote's "next"
    session.wait_time(chapters[2])
    press("ArrowLeft")
    session.wait_time(chapters[1])
    session.seek(chapters[1] + 10.0)
    press("ArrowLeft")  # well into a section: back to its start
    session.wait_time(chapters[1])
    before = session.state()
    press("c")
    assert not session.state()["captionsShown"]
    press("c")
    assert session.state()["captionsShown"]
    press("h")
    assert session.state()["hold"]
    press("h")
    assert not session.state()["hold"]
    press("+")
    larger = session.state()["captionPx"]
    press("-")
    press("-")
    smaller = session.state()["captionPx"]
    assert smaller < before["captionPx"] < larger
    press("f")
    assert session.state()["facilitator"]
    press("f")
    assert not session.state()["facilitator"]
    assert session.errors == []


def test_arrows_cross_to_the_next_and_previous_track(open_page, album):
    folder, results = album
    session = open_page(folder / "index.html")
    last = timeline_of(results[0].path)["chapters"][-1]
    session.seek(last["start"] + 1.0)
    session.page.keyboard.press("ArrowRight")
    assert session.wait_track("02-breathing-pacer.mp3")["track"] == results[1].timeline.title
    session.page.keyboard.press("ArrowLeft")  # at the first section's start: the track before
    assert session.wait_track("01-soothing-rhythm-breathing.mp3")["track"] == results[0].timeline.title


def test_every_control_is_reached_by_tab_and_has_a_name(open_page, album):
    folder, _ = album
    session = open_page(folder / "index.html")
    controls = session.page.evaluate("""() => [...document.querySelectorAll('button, input, summary')]
        .filter(el => el.getClientRects().length)
        .map(el => [el.id || el.textContent.trim(), (el.getAttribute('aria-label') || el.textContent).trim()])""")
    assert len(controls) >= 16
    assert all(name for _, name in controls), controls
    reached = []
    for _ in range(len(controls) + 3):
        session.page.keyboard.press("Tab")
        reached.append(session.page.evaluate(
            "() => { const el = document.activeElement; return el.id || el.textContent.trim(); }"))
    assert {key for key, _ in controls} <= set(reached)


# ---------------------------------------------------------------- how it looks


def test_screenshots_of_the_facilitator_and_phone_views(open_page, single, album):
    start, _, pattern = breathing_stretch(single)
    cues = vtt_cues(single.with_suffix(".vtt"))
    speech = next(c for c in cues if len(c[2].split("\n")) == 2 and not c[2].startswith("("))
    pause = next(c for c in cues if c[2].startswith("(pause"))
    moments = {"speech": (speech[0] + speech[1]) / 2, "breathing": start + pattern.in_seconds * 0.6,
               "pause": (pause[0] + pause[1]) / 2}

    room = open_page(single.with_suffix(".html"), viewport=FACILITATOR)
    room.page.keyboard.press("f")
    for name, seconds in moments.items():
        room.seek(seconds)
        assert room.shot(f"facilitator-{name}").stat().st_size > 10_000
    state = room.state()
    assert state["facilitator"] and state["captionPx"] >= 44  # very large on a 1280-wide screen
    fits = room.page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert fits[0] <= FACILITATOR["width"] and fits[1] <= FACILITATOR["height"]  # no scrolling in the room

    folder, results = album
    held = open_page(folder / "index.html", viewport=FACILITATOR)
    held.page.keyboard.press("f")
    held.seek(timeline_of(results[0].path)["chapters"][1]["end"] - 0.5)
    held.page.keyboard.press("Space")
    held.wait_hold()
    held.shot("facilitator-hold")

    for path, label in ((single.with_suffix(".html"), "track"), (folder / "index.html", "album")):
        phone = open_page(path, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        for name, seconds in list(moments.items())[:2] if label == "track" else [("start", 0.0)]:
            phone.seek(seconds)
            phone.shot(f"phone-{label}-{name}", full_page=True)
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the phone view scrolls sideways"
        assert phone.errors == [] and phone.outside == []
