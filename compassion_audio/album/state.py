"""The album state file (.album-state.json): each track's key, duration, files and page data, written atomically."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from compassion_audio.core.files import write_text_atomic

STATE_NAME = ".album-state.json"
STATE_FORMAT = 1


@dataclass
class TrackState:
    key: str
    title: str
    seconds: float
    """Duration of the file's packets when it was written (probe.packet_seconds)."""
    artist: str = ""
    sidecars: list[str] = field(default_factory=list)
    """File names of the files written beside it (captions, timeline)."""
    size: int = 0
    mtime_ns: int = 0
    """The audio file's size and time when its packets were checked: while both are the same, the
    file is the one checked (no ffmpeg needed); when either differs, it is checked again."""

    def unchanged(self, path: Path) -> bool:
        """The file still has the size and time it had when it was checked."""
        try:
            found = path.stat()
        except OSError:
            return False
        return bool(self.size) and (found.st_size, found.st_mtime_ns) == (self.size, self.mtime_ns)


@dataclass
class AlbumState:
    tracks: dict[str, TrackState] = field(default_factory=dict)
    """Audio file name -> its state."""
    single_file: dict = field(default_factory=dict)
    """{"name", "key", "seconds"} of the whole-album file, when one was written."""
    extra: list[str] = field(default_factory=list)
    """Other files the album wrote (playlist, track list, cover), for --prune."""
    stale: list[str] = field(default_factory=list)
    """Files an earlier build wrote that the manifest no longer makes, kept until pruned or gone."""
    pages: dict[str, dict] = field(default_factory=dict)
    """Render key -> the track's session-page data (page.PageTrack.to_json), so index.html lists
    the tracks this build does not render again; saved before the audio it describes is written."""

    def files(self) -> set[str]:
        """Every file name this state says the album wrote."""
        names = set(self.tracks) | set(self.extra) | set(self.stale)
        for track in self.tracks.values():
            names.update(track.sidecars)
        if self.single_file.get("name"):
            names.add(self.single_file["name"])
        return names


def load_state(folder: Path) -> AlbumState:
    """The folder's state (empty when missing or unreadable: the tracks' tags still hold their keys)."""
    try:
        data = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            return AlbumState()
        tracks = {name: TrackState(**entry) for name, entry in data.get("tracks", {}).items()}
        return AlbumState(tracks=tracks, single_file=dict(data.get("single_file") or {}),
                          extra=list(data.get("extra") or []), stale=list(data.get("stale") or []),
                          pages={str(k): dict(v) for k, v in (data.get("pages") or {}).items()})
    except (OSError, ValueError, TypeError, AttributeError):
        return AlbumState()


def save_state(folder: Path, state: AlbumState, *, private: bool) -> None:
    data = {"format": STATE_FORMAT,
            "tracks": {name: vars(track) for name, track in sorted(state.tracks.items())},
            "single_file": state.single_file, "extra": sorted(state.extra), "stale": sorted(state.stale),
            "pages": dict(sorted(state.pages.items()))}
    write_if_changed(folder / STATE_NAME, json.dumps(data, indent=2, ensure_ascii=False) + "\n", private=private)


def write_if_changed(path: Path, text: str, *, private: bool) -> bool:
    """Write ``text`` atomically unless the file already holds it (its time then stays as it was)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(path, text, private=private)
    return True
