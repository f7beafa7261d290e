"""Album manifests (TOML): [album] and [[track]] tables read and checked, every error at file:line naming the key."""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compassion_audio.album import options as opts
from compassion_audio.core.errors import AlbumError
from compassion_audio.core.tomlfile import line_of_key, parse_toml, read_toml_text

ALBUM_KEYS = ("title", "artist", "year", "cover", "client", "exercises", "name_in_file")
"""[album]'s own keys; every render option (options.OPTIONS) is allowed there too, as a default."""
TRACK_KEYS = ("exercise", "template", "title", "set")
"""[[track]]'s own keys; every render option is allowed there too."""
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


@dataclass(frozen=True)
class TrackEntry:
    """One [[track]] as written: what to render and its own render options."""

    number: int
    """1-based position in the manifest."""
    exercise: str | None = None
    """A built-in or user exercise name."""
    template: Path | None = None
    """A template file (resolved against the manifest's folder)."""
    title: str | None = None
    sets: dict[str, str] = field(default_factory=dict)
    """The -s overrides, as text (a list as 'a; b')."""
    options: dict[str, Any] = field(default_factory=dict)
    """Render options set on this track (typed; --no-x keys turned into x)."""
    line: int | None = None
    """The [[track]] header's line."""
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)

    @property
    def label(self) -> str:
        return f"[[track]] {self.number}"


@dataclass(frozen=True)
class Manifest:
    """An album as asked for: its tags, its default render options and its tracks."""

    source: str
    """The manifest file (or what stands for it, e.g. ``programme cmt-8-week week 3``)."""
    title: str
    tracks: tuple[TrackEntry, ...]
    artist: str | None = None
    year: str | None = None
    cover: Path | None = None
    client: Path | None = None
    exercise_dirs: tuple[Path, ...] = ()
    name_in_file: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    """Render options for every track (a track's own win)."""
    folder_name: str | None = None
    """The album folder's name (None: the title's slug)."""
    album_line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.album_line)

    def error(self, message: str, key: str | None = None, hint: str | None = None,
              track: TrackEntry | None = None) -> AlbumError:
        """An AlbumError at the line of ``key`` ([album]'s, or ``track``'s when given)."""
        where = track.label if track else "[album]"
        if track is not None:
            line = track.line_of(key) if key else track.line
        else:
            line = self.line_of(key) if key else self.album_line
        return AlbumError(f"{where}: {message}", source=self.source, line=line, hint=hint)


def load_manifest(path: Path) -> Manifest:
    """Read and check a manifest; the first mistake is an AlbumError at its file and line."""
    path = Path(path)
    text = read_toml_text(path, error=AlbumError)
    data = parse_toml(text, source=str(path), error=AlbumError)
    return parse_manifest(data, text, source=str(path), base=path.resolve().parent)


def parse_manifest(data: dict[str, Any], text: str, *, source: str, base: Path) -> Manifest:
    sections = _sections(text)
    for key in data:
        if key not in ("album", "track"):
            close = difflib.get_close_matches(key, ["album", "track"], n=1)
            raise AlbumError(f"unknown table or key {key!r}", source=source, line=line_of_key(text, key),
                             hint=f"did you mean {close[0]!r}?" if close
                             else "a manifest has [album] and [[track]] tables")
    album = data.get("album")
    album_line = sections["album"][0][0] if sections.get("album") else None
    if not isinstance(album, dict):
        raise AlbumError("no [album] table", source=source, line=album_line or 1,
                         hint='start the file with [album] and title = "..."')
    album_lines = {k: line_of_key(text, k, "album") for k in album}
    album_lines = {k: v for k, v in album_lines.items() if v is not None}
    tracks_data = data.get("track")
    if not isinstance(tracks_data, list) or not tracks_data:
        raise AlbumError("no [[track]] tables", source=source, line=len(text.splitlines()) or 1,
                         hint='add one per practice: [[track]] then exercise = "soothing-rhythm-breathing"')
    track_sections = sections.get("track", [])

    def album_fail(key, message, hint=None):
        return AlbumError(f"[album]: {message}", source=source, line=album_lines.get(key, album_line), hint=hint)

    own, render_options = _split_keys(album, ALBUM_KEYS, album_fail, "[album]")
    if "title" not in own:
        raise AlbumError("[album] needs a title", source=source, line=album_line,
                         hint='add title = "Week 3 practices"')
    title = _checked(album_fail, "title", own["title"], opts._text, base)
    artist = _checked(album_fail, "artist", own["artist"], opts._text, base) if "artist" in own else None
    year = _year(own["year"], album_fail) if "year" in own else None
    cover = _checked(album_fail, "cover", own["cover"], opts._file, base) if "cover" in own else None
    client = _checked(album_fail, "client", own["client"], opts._file, base) if "client" in own else None
    folders = _checked(album_fail, "exercises", own["exercises"], opts._folders, base) if "exercises" in own else ()
    name_in_file = _checked(album_fail, "name_in_file", own["name_in_file"], opts._flag, base) \
        if "name_in_file" in own else False
    options = _render_options(render_options, album_fail, base)
    tracks = []
    for number, entry in enumerate(tracks_data, start=1):
        start, end = track_sections[number - 1] if number - 1 < len(track_sections) else (None, None)
        tracks.append(_track(number, entry, text, start, end, source, base))
    manifest = Manifest(source=source, title=title, tracks=tuple(tracks), artist=artist, year=year, cover=cover,
                        client=client, exercise_dirs=tuple(folders), name_in_file=name_in_file, options=options,
                        album_line=album_line, key_lines=album_lines)
    _no_repeats(manifest)
    return manifest


def _track(number: int, data: Any, text: str, start: int | None, end: int | None, source: str,
           base: Path) -> TrackEntry:
    lines: dict[str, int] = {}
    if start is not None:
        body = "\n".join(text.splitlines()[start:end])
        for key in data if isinstance(data, dict) else ():
            found = line_of_key(body, key)
            if found is not None:
                lines[key] = found + start
    label = f"[[track]] {number}"

    def fail(key, message, hint=None):
        return AlbumError(f"{label}: {message}", source=source, line=lines.get(key, start), hint=hint)

    own, render_options = _split_keys(data, TRACK_KEYS, fail, label)
    if ("exercise" in own) == ("template" in own):
        what = "has both exercise and template" if "exercise" in own else "needs an exercise or a template"
        raise AlbumError(f"{label} {what}", source=source, line=lines.get("template", start),
                         hint='give one: exercise = "soothing-rhythm-breathing" or template = "scripts/mine.txt.j2"')
    exercise = _checked(fail, "exercise", own["exercise"], opts._text, base) if "exercise" in own else None
    template = None
    if "template" in own:
        template = _checked(fail, "template", own["template"], opts._path, base)
        if not template.is_file():
            raise fail("template", f"template {own['template']!r} not found", f"no file at {template}")
    title = _checked(fail, "title", own["title"], opts._text, base) if "title" in own else None
    sets = _sets(own.get("set", {}), fail)
    return TrackEntry(number=number, exercise=exercise, template=template, title=title, sets=sets,
                      options=_render_options(render_options, fail, base), line=start, key_lines=lines)


def _split_keys(table: Any, own_keys: tuple[str, ...], fail, where: str) -> tuple[dict, dict]:
    """(the table's own keys, its render options); an unknown key fails with a did-you-mean."""
    if not isinstance(table, dict):
        raise fail(None, f"{where} must be a table")
    known = list(own_keys) + [o.key for o in opts.OPTIONS]
    own, render = {}, {}
    for key, value in table.items():
        if key in own_keys:
            own[key] = value
        elif key in opts.BY_KEY:
            render[key] = value
        else:
            close = difflib.get_close_matches(key, known, n=1)
            raise fail(key, f"unknown key {key!r}",
                       f"did you mean {close[0]!r}?" if close else "see 'compassion-audio album new' for every key")
    return own, render


def _render_options(raw: dict, fail, base: Path) -> dict[str, Any]:
    for key, positive in opts.OPPOSITES.items():
        if key in raw and positive in raw:
            raise fail(key, f"{key} and {positive} both given", "keep one")
    return opts.normalised({key: _checked(fail, key, value, opts.BY_KEY[key].check, base)
                            for key, value in raw.items()})


def _checked(fail, key: str, value: Any, check, base: Path) -> Any:
    try:
        return check(key, value, base)
    except opts.BadValue as exc:
        raise fail(key, exc.message, exc.hint) from None


def _year(value: Any, fail) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}(-\d\d(-\d\d)?)?", text):
        raise fail("year", f"year = {value!r} is not a year", "write e.g. year = 2026")
    return text


def _sets(value: Any, fail) -> dict[str, str]:
    """``set = { name = "Jane", "place.smell" = "pine" }`` as -s text (nested tables dotted)."""
    if not isinstance(value, dict):
        raise fail("set", "set must be a table", 'e.g. set = { name = "Jane", "place.smell" = "pine" }')
    flat: dict[str, str] = {}

    def walk(table: dict, prefix: str) -> None:
        for key, item in table.items():
            if isinstance(item, dict):
                walk(item, f"{prefix}{key}.")
            elif isinstance(item, bool):
                flat[prefix + key] = "yes" if item else "no"
            elif isinstance(item, (int, float, str)):
                flat[prefix + key] = str(item)
            elif isinstance(item, list) and all(isinstance(i, str) and ";" not in i for i in item):
                flat[prefix + key] = "; ".join(item)
            else:
                raise fail("set", f"set: {prefix + key} is not text, a number, yes/no or a list of text")

    walk(value, "")
    return flat


def _no_repeats(manifest: Manifest) -> None:
    """Two tracks asking for the same practice with the same settings make one file twice."""
    seen: dict[str, TrackEntry] = {}
    for track in manifest.tracks:
        what = json.dumps([track.exercise, str(track.template), track.sets, track.options],
                          sort_keys=True, default=str)
        if what in seen:
            first = seen[what]
            raise manifest.error(f"repeats {first.label} (the same practice with the same settings)",
                                 hint="remove one, or change its settings", track=track)
        seen[what] = track


def _sections(text: str) -> dict[str, list[tuple[int, int]]]:
    """Top-level table name -> [(0-based index of its header line, index where it ends)], in order;
    ``[track.x]`` sub-tables belong to the [[track]] before them."""
    found: dict[str, list[list[int]]] = {}
    lines = text.splitlines()
    current: list[int] | None = None
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if not header:
            continue
        name = header.group(2).strip().strip("\"'")
        top = name.split(".")[0].strip().strip("\"'")
        if current is not None and top == "track" and name != "track":
            continue
        if current is not None:
            current[1] = index
        current = [index, len(lines)]
        found.setdefault(top, []).append(current)
    return {name: [(start + 1, end) for start, end in spans] for name, spans in found.items()}


def programme_manifest(name: str, week: int) -> Manifest:
    """A built-in programme's week as an album: its tracks at their lengths, titled by the week."""
    from compassion_audio.script.programmes import load_programme

    programme = load_programme(name)
    source = f"programme {programme.name}"
    if not 1 <= week <= len(programme.weeks):
        raise AlbumError(f"has no week {week}", source=source,
                         hint=f"weeks are 1 to {len(programme.weeks)} ('compassion-audio list --programmes')")
    chosen = programme.weeks[week - 1]
    tracks = tuple(TrackEntry(number=i, exercise=t.exercise, options={"length": t.length})
                   for i, t in enumerate(chosen.tracks, start=1))
    return Manifest(source=f"{source} week {week}", title=f"Week {week}: {chosen.title}", tracks=tracks,
                    folder_name=f"{programme.name}-week-{week}")
