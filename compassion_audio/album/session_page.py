"""The album folder's session page (index.html): from the page data the state keeps, rewritten only if changed."""
from __future__ import annotations

import json
import re
from dataclasses import replace

from compassion_audio.album import probe
from compassion_audio.album.plan import AlbumPlan, PlannedTrack
from compassion_audio.album.state import AlbumState
from compassion_audio.core.errors import PageError
from compassion_audio.page.data import DATA_VERSION, PageTrack
from compassion_audio.page.html import build_html, write_album_page
from compassion_audio.page.locate import ALBUM_PAGE

_DATA = re.compile(r'<script type="application/json" id="page-data">(.*?)</script>', re.S)
"""The page's embedded data (its "<" are \\u003c escapes, so "</script>" only ends the block)."""


def page_track(track: PlannedTrack, state: AlbumState) -> PageTrack | None:
    """The track as its page shows it: the rendered data, with the album's file name, title and hold."""
    data = state.pages.get(track.key)
    if not data:
        return None
    try:
        found = PageTrack.from_json(data)
    except PageError:
        return None
    return replace(found, audio=track.file_name, title=track.title, hold=track.hold)


def write_page(plan: AlbumPlan, tracks: list[PlannedTrack], state: AlbumState) -> bool:
    """Write index.html for ``tracks`` unless it already holds that page (its bytes and time then stay);
    True when the folder has a page for them."""
    shown = [page_track(track, state) for track in tracks]
    shown = [t for t in shown if t is not None]
    if not shown:
        return False
    path = plan.folder / ALBUM_PAGE
    try:
        if path.read_text(encoding="utf-8") == build_html(shown, plan.title):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    write_album_page(plan.folder, shown, title=plan.title)
    return True


def recover(plan: AlbumPlan, track: PlannedTrack, seconds: float, state: AlbumState) -> bool:
    """Take a kept track's page data from the folder's index.html when the state has none (the
    state lost, or from before pages): only the entry for its file, as long as the file lasts."""
    try:
        match = _DATA.search((plan.folder / ALBUM_PAGE).read_text(encoding="utf-8"))
        data = json.loads(match.group(1)) if match else {}
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("version") != DATA_VERSION:
        return False
    for entry in data.get("tracks") or ():
        if not isinstance(entry, dict) or entry.get("audio") != track.file_name:
            continue
        try:
            found = PageTrack.from_json(entry)
        except PageError:
            return False
        if abs(found.duration_seconds - seconds) > probe.TOLERANCE_SECONDS:
            return False
        state.pages[track.key] = found.to_json()
        return True
    return False
