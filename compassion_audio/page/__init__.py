"""The session player page: one offline index.html with captions, chapters, holds and a breathing visual.

Public API: ``write_track_page(result)`` writes <track>.html beside a rendered track;
``write_album_page(folder, [track_data(result, page_dir=folder, hold=...), ...], title=...)``
writes an album folder's index.html; ``find_page(path)`` finds the page for a track or folder.
"""
from __future__ import annotations

_WHERE = {
    "BreathStretch": "data", "PageChapter": "data", "PageCue": "data", "PageTrack": "data",
    "timeline_track": "data", "track_data": "data",
    "build_html": "html", "write_album_page": "html", "write_track_page": "html",
    "find_page": "locate", "ALBUM_PAGE": "locate", "PAGE_SUFFIX": "locate",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    # Lazy, so `compassion-audio play` finds a page without loading the rendering stack.
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"compassion_audio.page.{_WHERE[name]}"), name)
    raise AttributeError(name)
