"""Where a session page lives: <track stem>.html beside a track, index.html in an album folder."""
from __future__ import annotations

from pathlib import Path

from compassion_audio.core.errors import PageError

ALBUM_PAGE = "index.html"
PAGE_SUFFIX = ".html"
"""A single track's page is <audio stem>.html beside it, so tracks sharing a folder keep theirs."""


def track_page(audio: Path) -> Path:
    return Path(audio).with_suffix(PAGE_SUFFIX)


def find_page(path: Path) -> Path:
    """The session page for ``path``: a folder's index.html, a track's <stem>.html, or the page itself."""
    path = Path(path)
    if not path.exists():
        raise PageError(f"{path}: no such file or folder (give a track, its page or an album folder)")
    if path.is_dir():
        page = path / ALBUM_PAGE
        hint = "render an album into it, or give a track rendered with --page"
    elif path.suffix.lower() in (PAGE_SUFFIX, ".htm"):
        return path
    else:
        page = track_page(path)
        hint = "render the track again with --page"
    if not page.is_file():
        raise PageError(f"{path}: no session page {page.name} there ({hint})")
    return page
