"""Tags, cover art and chapters written into the encoded file (mutagen; ffmpeg for M4A chapters)."""
from __future__ import annotations

import base64
import difflib
import os
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import (APIC, CHAP, COMM, CTOC, ID3, TALB, TCON, TDRC, TIT2, TLAN, TLEN, TPE1,
                         TPE2, TRCK, CTOCFlags, ID3NoHeaderError, PictureType)
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from compassion_audio.core import tools
from compassion_audio.core.errors import AudioError, ParameterError
from compassion_audio.core.timeline import Chapter

KNOWN_TAGS = ("title", "artist", "album", "album_artist", "track", "date", "year", "genre",
              "comment", "language")
"""Tag keys write_tags accepts; ``year`` is another name for ``date``."""
TAG_FORMATS = ("mp3", "ogg", "opus", "flac", "wav", "m4a")

_ID3_TEXT = {"title": TIT2, "artist": TPE1, "album": TALB, "album_artist": TPE2,
             "track": TRCK, "date": TDRC, "genre": TCON, "language": TLAN}
_VORBIS = {"title": "TITLE", "artist": "ARTIST", "album": "ALBUM", "album_artist": "ALBUMARTIST",
           "date": "DATE", "genre": "GENRE", "comment": "COMMENT", "language": "LANGUAGE"}
_MP4 = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "album_artist": "aART",
        "date": "\xa9day", "genre": "\xa9gen", "comment": "\xa9cmt"}
_MP4_LANGUAGE = "----:com.apple.iTunes:LANGUAGE"
_CHAPTER_KEY = re.compile(r"CHAPTER(\d+)(NAME|URL)?", re.IGNORECASE)


@dataclass(frozen=True)
class Mark:
    """A chapter as stored in files: title and whole milliseconds."""

    title: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class _Cover:
    data: bytes
    mime: str
    width: int
    height: int
    depth_bits: int


def _ms(frames: int, sample_rate: int) -> int:
    return (2 * frames * 1000 + sample_rate) // (2 * sample_rate)


def _normalise(tags: Mapping[str, str]) -> dict[str, str]:
    """Check keys and values; returns non-empty values under their canonical keys."""
    values: dict[str, str] = {}
    for key, value in tags.items():
        if key not in KNOWN_TAGS:
            close = difflib.get_close_matches(key, KNOWN_TAGS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ParameterError(f"unknown tag {key!r}", source="tags",
                                 hint=f"{hint}known tags: {', '.join(KNOWN_TAGS)}")
        text = str(value).strip()
        if text:
            values["date" if key == "year" else key] = text
    track = values.get("track")
    if track is not None and not re.fullmatch(r"\d+(/\d+)?", track):
        raise ParameterError(f"track {track!r} is not a number", source="tags",
                             hint='write it as "3" or "3/12"')
    return values


def _image_size(data: bytes) -> tuple[int, int, int]:
    """Width, height and bits per pixel from a PNG or JPEG header (zeros when unreadable)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 26:
        width, height, bit_depth, colour = struct.unpack(">IIBB", data[16:26])
        return width, height, bit_depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height, 8 * data[i + 9]
        i += 2 + length
    return 0, 0, 0


def _load_cover(path: Path) -> _Cover:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ParameterError(f"cover image cannot be read: {exc.strerror or exc}",
                             source=str(path)) from exc
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        raise ParameterError("cover image is not a JPEG or PNG file", source=str(path),
                             hint="players only show JPEG and PNG covers")
    return _Cover(data, mime, *_image_size(data))


def _marks(chapters: Sequence[Chapter], sample_rate: int, duration_ms: int | None) -> list[Mark]:
    """Chapters in time order, in milliseconds, ends kept inside the track."""
    marks = []
    for chapter in sorted(chapters, key=lambda c: c.start):
        start, end = _ms(chapter.start, sample_rate), _ms(chapter.end, sample_rate)
        if duration_ms is not None:
            end = min(end, duration_ms)
        if end <= start:
            raise ParameterError(f"chapter {chapter.title!r} has no length inside the track",
                                 source="tags", hint="chapters must start before they end")
        marks.append(Mark(chapter.title, start, end))
    return marks


def _hms(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _parse_hms(text: str) -> int | None:
    found = re.fullmatch(r"\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)\s*", text)
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


# ---- ID3 (MP3 and WAV) ----

def _fill_id3(id3: ID3, values: dict[str, str], marks: list[Mark], cover: _Cover | None,
              duration_ms: int | None) -> None:
    for key, frame in _ID3_TEXT.items():
        if key in values:
            id3.setall(frame.__name__, [frame(encoding=3, text=[values[key]])])
    if "comment" in values:
        lang = values.get("language", "eng")
        lang = lang if re.fullmatch(r"[a-z]{3}", lang) else "und"
        id3.delall("COMM")
        id3.add(COMM(encoding=3, lang=lang, desc="", text=[values["comment"]]))
    if duration_ms is not None:
        id3.setall("TLEN", [TLEN(encoding=0, text=[str(duration_ms)])])
    if cover:
        id3.delall("APIC")
        id3.add(APIC(encoding=3, mime=cover.mime, type=PictureType.COVER_FRONT, desc="",
                     data=cover.data))
    if marks:
        id3.delall("CHAP")
        id3.delall("CTOC")
        ids = [f"chp{i}" for i in range(len(marks))]
        # Offsets of 0xFFFFFFFF tell players to use the times, not byte positions.
        for element_id, mark in zip(ids, marks):
            id3.add(CHAP(element_id=element_id, start_time=mark.start_ms, end_time=mark.end_ms,
                         start_offset=0xFFFFFFFF, end_offset=0xFFFFFFFF,
                         sub_frames=[TIT2(encoding=3, text=[mark.title])]))
        id3.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                     child_element_ids=ids, sub_frames=[]))


def _write_mp3(path, values, marks, cover, duration_ms) -> None:
    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        id3 = ID3()
    _fill_id3(id3, values, marks, cover, duration_ms)
    id3.save(path, v2_version=3)  # v2.3: the version every player reads


def _write_wav(path, values, marks, cover, duration_ms) -> None:
    wave = WAVE(path)
    if wave.tags is None:
        wave.add_tags()
    _fill_id3(wave.tags, values, marks, cover, duration_ms)
    wave.save(v2_version=3)


# ---- Vorbis comments (FLAC, Ogg) ----

def _fill_vorbis(comments, values: dict[str, str], marks: list[Mark]) -> None:
    for key, name in _VORBIS.items():
        if key in values:
            comments[name] = [values[key]]
    if "track" in values:
        number, _, total = values["track"].partition("/")
        comments["TRACKNUMBER"] = [number]
        if total:
            comments["TRACKTOTAL"] = [total]
    if marks:
        for key in [k for k in comments.keys() if _CHAPTER_KEY.fullmatch(k)]:
            del comments[key]
        for number, mark in enumerate(marks, start=1):
            comments[f"CHAPTER{number:03d}"] = [_hms(mark.start_ms)]
            comments[f"CHAPTER{number:03d}NAME"] = [mark.title]


def _flac_picture(cover: _Cover) -> Picture:
    picture = Picture()
    picture.type = PictureType.COVER_FRONT
    picture.mime = cover.mime
    picture.width, picture.height, picture.depth = cover.width, cover.height, cover.depth_bits
    picture.data = cover.data
    return picture


def _write_flac(path, values, marks, cover, duration_ms) -> None:
    flac = FLAC(path)
    if flac.tags is None:
        flac.add_tags()
    _fill_vorbis(flac.tags, values, marks)
    if cover:
        flac.clear_pictures()
        flac.add_picture(_flac_picture(cover))
    flac.save()


def _write_ogg(path, values, marks, cover, duration_ms) -> None:
    ogg = mutagen.File(path, options=[OggOpus, OggVorbis])
    if ogg is None:
        raise AudioError(f"{Path(path).name} is not an Ogg Opus or Vorbis file")
    if ogg.tags is None:
        ogg.add_tags()
    _fill_vorbis(ogg.tags, values, marks)
    if cover:
        block = base64.b64encode(_flac_picture(cover).write()).decode("ascii")
        ogg.tags["METADATA_BLOCK_PICTURE"] = [block]
    ogg.save()


# ---- MP4 (M4A) ----

def _ffmetadata_escape(text: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def _ffmetadata_text(values: Mapping[str, str], marks: Sequence[Mark]) -> str:
    lines = [";FFMETADATA1"]
    lines += [f"{key}={_ffmetadata_escape(value)}" for key, value in values.items()]
    for mark in marks:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={mark.start_ms}", f"END={mark.end_ms}",
                  f"title={_ffmetadata_escape(mark.title)}"]
    return "\n".join(lines) + "\n"


def ffmetadata(tags: Mapping[str, str], chapters: Sequence[Chapter], sample_rate: int) -> str:
    """ffmpeg FFMETADATA1 text (tags and [CHAPTER] sections) for ``-i meta.txt -map_metadata 1``."""
    return _ffmetadata_text(_normalise(tags), _marks(chapters, sample_rate, None))


def _mp4_marks(mp4: MP4) -> list[tuple[str, int]]:
    return [(c.title, round(c.start * 1000)) for c in (mp4.chapters or ())]


def _remux_mp4_chapters(path: Path, marks: list[Mark]) -> None:
    """mutagen cannot write MP4 chapters, so ffmpeg copies the audio with them added."""
    folder = Path(path).parent
    fd, meta = tempfile.mkstemp(dir=folder, prefix=".chapters-", suffix=".txt")
    out = Path(tempfile.mkstemp(dir=folder, prefix=".chapters-", suffix=".m4a")[1])
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_ffmetadata_text({}, marks))
        cmd = [tools.ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(path),
               "-i", meta, "-map", "0:a", "-map_chapters", "1", "-c", "copy", "-f", "mp4",
               str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise AudioError(f"ffmpeg could not add chapters to the M4A file: {last}")
        os.replace(out, path)
    finally:
        for leftover in (Path(meta), out):
            leftover.unlink(missing_ok=True)


def _write_m4a(path, values, marks, cover, duration_ms) -> None:
    mp4 = MP4(path)
    kept = dict(mp4.tags or {})
    if marks and _mp4_marks(mp4) != [(m.title, m.start_ms) for m in marks]:
        _remux_mp4_chapters(path, marks)
        mp4 = MP4(path)
    if mp4.tags is None:
        mp4.add_tags()
    mp4.tags.update(kept)  # the remux copies audio and chapters only; tags come back here
    for key, atom in _MP4.items():
        if key in values:
            mp4.tags[atom] = [values[key]]
    if "language" in values:
        mp4.tags[_MP4_LANGUAGE] = [MP4FreeForm(values["language"].encode("utf-8"))]
    if "track" in values:
        number, _, total = values["track"].partition("/")
        mp4.tags["trkn"] = [(int(number), int(total or 0))]
    if cover:
        kind = MP4Cover.FORMAT_PNG if cover.mime == "image/png" else MP4Cover.FORMAT_JPEG
        mp4.tags["covr"] = [MP4Cover(cover.data, imageformat=kind)]
    mp4.save()


_WRITERS = {"mp3": _write_mp3, "wav": _write_wav, "flac": _write_flac, "ogg": _write_ogg,
            "opus": _write_ogg, "m4a": _write_m4a}


def _file_ms(path: Path) -> int | None:
    try:
        info = getattr(mutagen.File(path), "info", None)
    except mutagen.MutagenError:
        return None
    return round(info.length * 1000) if info and info.length else None


def write_tags(path: Path, fmt: str, tags: Mapping[str, str], *,
               chapters: Sequence[Chapter] = (), sample_rate: int = 44100,
               cover: Path | None = None, duration_frames: int | None = None) -> None:
    """Write tags, front cover and chapters into an encoded file, in place.

    Call it on the export's temp file before the final rename, so readers never
    see a half-tagged file. Chapter frames are at ``sample_rate``; chapters and
    cover replace any already there; other existing tags are kept.
    """
    if fmt not in _WRITERS:
        raise ParameterError(f"cannot tag format {fmt!r}", source="tags",
                             hint=f"formats: {', '.join(TAG_FORMATS)}")
    values = _normalise(tags)
    image = _load_cover(cover) if cover is not None else None
    duration_ms = (_ms(duration_frames, sample_rate) if duration_frames is not None
                   else _file_ms(path))
    marks = _marks(chapters, sample_rate, duration_ms)
    try:
        _WRITERS[fmt](path, values, marks, image, duration_ms)
    except mutagen.MutagenError as exc:
        raise AudioError(f"cannot write tags into {Path(path).name}: {exc}") from exc


# ---- reading back ----

def _ends(starts: list[tuple[str, int]], length_ms: int | None) -> list[tuple[str, float, float]]:
    """Chapters stored as starts only end where the next begins (the last at the track end)."""
    out = []
    for i, (title, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else (length_ms or start)
        out.append((title, start / 1000, end / 1000))
    return out


def _read_id3(id3: ID3) -> dict:
    found: dict = {key: str(id3[frame.__name__].text[0])
                   for key, frame in _ID3_TEXT.items() if frame.__name__ in id3}
    comments = id3.getall("COMM")
    if comments:
        found["comment"] = str(next((c for c in comments if not c.desc), comments[0]).text[0])
    chaps = {c.element_id: c for c in id3.getall("CHAP")}
    tocs = [t for t in id3.getall("CTOC") if t.flags & CTOCFlags.TOP_LEVEL]
    order = (list(tocs[0].child_element_ids) if tocs
             else sorted(chaps, key=lambda k: chaps[k].start_time))
    found["chapters"] = [
        (str(chaps[k].sub_frames["TIT2"].text[0]) if "TIT2" in chaps[k].sub_frames else k,
         chaps[k].start_time / 1000, chaps[k].end_time / 1000)
        for k in order if k in chaps]
    found["cover"] = bool(id3.getall("APIC"))
    return found


def _read_vorbis(comments, length_ms: int | None) -> dict:
    first = {k.upper(): v[0] for k, v in comments.as_dict().items() if v}
    found: dict = {key: first[name] for key, name in _VORBIS.items() if name in first}
    if "TRACKNUMBER" in first:
        total = first.get("TRACKTOTAL") or first.get("TOTALTRACKS")
        found["track"] = first["TRACKNUMBER"] + (f"/{total}" if total else "")
    starts = []
    for key in sorted(k for k in first if re.fullmatch(r"CHAPTER\d+", k)):
        start = _parse_hms(first[key])
        if start is not None:
            starts.append((first.get(f"{key}NAME", key), start))
    found["chapters"] = _ends(sorted(starts, key=lambda s: s[1]), length_ms)
    found["cover"] = "METADATA_BLOCK_PICTURE" in first
    return found


def _read_mp4(mp4: MP4, length_ms: int | None) -> dict:
    tags = mp4.tags or {}
    found: dict = {key: str(tags[atom][0]) for key, atom in _MP4.items() if atom in tags}
    if _MP4_LANGUAGE in tags:
        found["language"] = bytes(tags[_MP4_LANGUAGE][0]).decode("utf-8")
    if "trkn" in tags:
        number, total = tags["trkn"][0]
        found["track"] = f"{number}/{total}" if total else str(number)
    found["chapters"] = _ends(_mp4_marks(mp4), length_ms)
    found["cover"] = bool(tags.get("covr"))
    return found


def read_tags(path: Path) -> dict:
    """The write_tags keys found in a file, plus ``chapters`` [(title, start_s, end_s)] and ``cover``."""
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError as exc:
        raise AudioError(f"cannot read tags from {Path(path).name}: {exc}") from exc
    if audio is None:
        raise AudioError(f"{Path(path).name} is not an audio file mutagen can read")
    length_ms = round(audio.info.length * 1000) if getattr(audio.info, "length", 0) else None
    if isinstance(audio, MP4):
        return _read_mp4(audio, length_ms)
    if isinstance(audio.tags, ID3):
        return _read_id3(audio.tags)
    if audio.tags is None:
        return {"chapters": [], "cover": False}
    found = _read_vorbis(audio.tags, length_ms)
    found["cover"] = found["cover"] or bool(getattr(audio, "pictures", None))
    return found
