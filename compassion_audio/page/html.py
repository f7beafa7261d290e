"""One self-contained session page (index.html): the template with its CSS, script and data inlined."""
from __future__ import annotations

import html
import json
import re
import stat
from functools import reduce
from importlib import resources
from pathlib import Path
from typing import Sequence

from compassion_audio.core.errors import OutputError, PageError
from compassion_audio.core.files import write_text_atomic
from compassion_audio.page.data import PageTrack, to_json, track_data
from compassion_audio.page.locate import ALBUM_PAGE, track_page
from compassion_audio.render import TrackResult

_SLOTS = ("<!--page:title-->", "/*page:css*/", "<!--page:data-->", "/*page:js*/")
_STYLES = ("player.css", "room.css")
_SCRIPTS = ("timing.js", "view.js", "player.js")
"""In this order: the room's view overrides the page's; the player uses timing and view."""


def _asset(name: str) -> str:
    return resources.files("compassion_audio.page").joinpath(name).read_text(encoding="utf-8")


def _script_json(data: dict) -> str:
    # Inside <script> only "</script" or "<!--" could end or confuse the block: escaping
    # every "<", ">" and "&" as \u escapes keeps the JSON identical once parsed.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_html(tracks: Sequence[PageTrack], title: str) -> str:
    """The page's HTML: no network, no fonts to fetch; the data is embedded so the page works
    from file:// (browsers refuse fetch, XHR and <track> there)."""
    if not tracks:
        raise PageError("a session page needs at least one track")
    fills = dict(zip(_SLOTS, (html.escape(title), "\n".join(map(_asset, _STYLES)),
                              _script_json(to_json(tracks, title)), "\n".join(map(_asset, _SCRIPTS)))))
    # One pass: a slot's spelling inside a title or a caption stays text.
    return re.sub("|".join(map(re.escape, _SLOTS)), lambda m: fills[m.group(0)], _asset("player.html"))


def _write(path: Path, text: str, mode: int | None) -> Path:
    try:
        write_text_atomic(path, text, mode=mode, private=mode is None)
    except OSError as exc:
        raise OutputError(f"cannot write {path.name} in {path.parent}: {exc.strerror or exc}") from exc
    return path


def write_track_page(result: TrackResult, *, hold: bool = False) -> Path:
    """Write <audio stem>.html beside a rendered track (with the track's permissions: the page
    holds its words); returns its path."""
    page = track_page(result.path)
    mode = stat.S_IMODE(result.path.stat().st_mode)
    return _write(page, build_html([track_data(result, hold=hold)], result.timeline.title), mode)


def write_album_page(folder: Path, tracks: Sequence[PageTrack], *, title: str) -> Path:
    """Write ``folder``/index.html for ``tracks`` (their ``audio`` relative to ``folder``).

    Its permissions are those every track's audio file shares (a private track makes the page
    private); 0600 when an audio file is not there to ask.
    """
    folder = Path(folder)
    modes = []
    for track in tracks:
        audio = folder / track.audio
        modes.append(stat.S_IMODE(audio.stat().st_mode) if audio.exists() else 0o600)
    mode = reduce(lambda a, b: a & b, modes, 0o7777) if modes else None
    return _write(folder / ALBUM_PAGE, build_html(tracks, title), mode)
