"""Driving a session page in Chromium for the browser tests: a recorded, offline page session and
readers for what the product wrote beside the audio (captions, timeline, ID3 chapters)."""
from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import pytest
from mutagen.id3 import ID3

CHROMIUM = Path(os.environ.get("COMPASSION_AUDIO_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parent / "artifacts" / "page"

SNAPSHOT = """() => {
  const $ = id => document.getElementById(id);
  const audio = $('audio'), ring = $('breath-circle').parentElement;
  return {
    time: audio.currentTime, paused: audio.paused, src: audio.currentSrc,
    caption: $('caption').innerText.trim(), countdown: $('countdown').textContent,
    chapter: $('chapter-title').textContent, track: $('track-title').textContent,
    breathShown: !$('breath').hidden, ringShown: getComputedStyle(ring).display !== 'none',
    circle: $('breath-circle').getBoundingClientRect().width, ring: ring.getBoundingClientRect().width,
    label: $('breath-label').textContent, labelHeight: $('breath-label').getBoundingClientRect().height,
    holding: !$('hold-panel').hidden, holdMessage: $('hold-message').textContent,
    focused: document.activeElement ? document.activeElement.id : '',
    captionsShown: getComputedStyle($('captions')).visibility !== 'hidden',
    captionPx: parseFloat(getComputedStyle($('caption')).fontSize),
    facilitator: document.documentElement.classList.contains('facilitator'),
    hold: $('hold-toggle').getAttribute('aria-pressed') === 'true',
    playLabel: $('play').getAttribute('aria-label'),
  };
}"""
SEEK = """t => new Promise(resolve => {
  const audio = document.getElementById('audio');
  audio.addEventListener('seeked', () => requestAnimationFrame(() => requestAnimationFrame(resolve)), {once: true});
  audio.currentTime = t;
})"""


def chromium_or_skip():
    """Playwright's sync_playwright; the test skips when it or Chromium is missing (under CI: fails)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright is not installed (pip install -e '.[test]')"
    else:
        reason = None if CHROMIUM.exists() else f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run under CI: {reason}")
        pytest.skip(reason)
    return sync_playwright


class Session:
    """One page in its own browser context; every request is recorded, and any that is not a
    local file is refused and kept in ``outside``."""

    def __init__(self, browser, path: Path, **options) -> None:
        self.context = browser.new_context(**options)
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        self.until("() => document.getElementById('audio').readyState >= 1")
        self.page.evaluate("() => { document.getElementById('audio').muted = true; }")

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if url.startswith("file:"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def state(self) -> dict:
        return self.page.evaluate(SNAPSHOT)

    def seek(self, seconds: float) -> dict:
        self.page.evaluate(SEEK, seconds)
        return self.state()

    def until(self, predicate: str, arg=None, timeout: float = 5.0) -> None:
        """Poll ``predicate`` (a JS function of ``arg``) until it is true. Not wait_for_function:
        the page's policy forbids eval, which Playwright's in-page polling needs."""
        deadline = time.monotonic() + timeout
        while not self.page.evaluate(predicate, arg):
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout} s: {predicate} ({arg!r})")
            self.page.wait_for_timeout(20)

    def wait_time(self, seconds: float) -> dict:
        self.until("t => Math.abs(document.getElementById('audio').currentTime - t) < 0.01", seconds)
        return self.state()

    def wait_playing(self, playing: bool = True) -> dict:
        # The state is the audio's; the button's label follows with the play/pause event.
        self.until("""p => document.getElementById('audio').paused === !p
                          && document.getElementById('play').getAttribute('aria-label') === (p ? 'Pause' : 'Play')""",
                   playing)
        return self.state()

    def wait_hold(self) -> dict:
        self.until("() => !document.getElementById('hold-panel').hidden")
        return self.state()

    def wait_track(self, name: str) -> dict:
        self.until("""n => { const a = document.getElementById('audio');
                             return a.currentSrc.endsWith('/' + n) && a.readyState >= 1; }""", name)
        return self.state()

    def shot(self, name: str, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def vtt_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text with its line breaks) for each cue of a WebVTT file."""
    stamp = r"(\d+):(\d\d):(\d\d)\.(\d{3})"
    cues = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip("\n").split("\n")
        found = re.fullmatch(f"{stamp} --> {stamp}", lines[0])
        if found:
            g = [int(v) for v in found.groups()]
            text = "\n".join(lines[1:]).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            cues.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                         g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000, text))
    return cues


def id3_chapters(path: Path) -> list[tuple[str, float]]:
    chaps = sorted(ID3(path).getall("CHAP"), key=lambda c: c.start_time)
    return [(str(c.sub_frames["TIT2"]), c.start_time / 1000) for c in chaps]


def timeline_of(audio: Path) -> dict:
    return json.loads(audio.with_suffix(".timeline.json").read_text(encoding="utf-8"))


def ease(u: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, u)))
