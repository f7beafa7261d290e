"""The album's pages: playlist.m3u8 (extended M3U) and tracks.md (the track list for printing)."""
from __future__ import annotations

from dataclasses import dataclass

PLAYLIST_NAME = "playlist.m3u8"
TRACK_LIST_NAME = "tracks.md"


@dataclass(frozen=True)
class Entry:
    """One track as the pages show it."""

    number: int
    file_name: str
    title: str
    artist: str
    seconds: float


def clock(seconds: float) -> str:
    """``7:05``, or ``1:02:03`` past an hour."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def playlist(entries: list[Entry]) -> str:
    """Extended M3U, UTF-8: ``#EXTINF:<whole seconds>,<artist> - <title>`` then the file's relative path."""
    lines = ["#EXTM3U"]
    for entry in entries:
        who = f"{_one_line(entry.artist)} - " if entry.artist else ""
        lines.append(f"#EXTINF:{int(round(entry.seconds))},{who}{_one_line(entry.title)}")
        lines.append(entry.file_name)
    return "\n".join(lines) + "\n"


def track_list(title: str, entries: list[Entry], *, artist: str | None = None, year: str | None = None,
               missing: list[str] = ()) -> str:
    """A Markdown page: the album title, who and when, a table of tracks with durations, the total."""
    lines = [f"# {_one_line(title)}", ""]
    byline = " · ".join(part for part in (artist, year) if part)
    if byline:
        lines += [byline, ""]
    lines += ["| # | Practice | Length |", "|---:|---|---:|"]
    for entry in entries:
        lines.append(f"| {entry.number} | {_one_line(entry.title).replace('|', '/')} | {clock(entry.seconds)} |")
    lines += ["", f"Total: {clock(sum(e.seconds for e in entries))} ({len(entries)} tracks)"]
    if missing:
        lines += ["", "Not built yet: " + ", ".join(missing)]
    return "\n".join(lines) + "\n"
