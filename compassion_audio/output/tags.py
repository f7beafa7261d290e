"""Tags, cover art and chapters written into the encoded file (mutagen; ffmpeg for M4A chapters)."""
from __future__ import annotations

import base64
import difflib
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import mutagen
from mutagen.flac import FLAC, Picture
from mutagen.id3 import (APIC, CHAP, COMM, CTOC, ID3, TALB, TCON, TDRC, TIT2, TLAN, TLEN, TPE1,
                         TPE2, TRCK, TXXX, CTOCFlags, ID3NoHeaderError, PictureType)
from mutagen.mp4 import MP4, MP4Cover, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from compassion_audio.core.audio import frames_to_ms
from compassion_audio.core.errors import AudioError, ParameterError
from compassion_audio.core.timeline import Chapter
from compassion_audio.output import id3_order
from compassion_audio.output.chapters import Mark, chapter_marks
from compassion_audio.output.export import remux_m4a
from compassion_audio.output.targets import check_cover

KNOWN_TAGS = ("title", "artist", "album", "album_artist", "track", "date", "year", "genre",
              "comment", "language", "render_key")
"""Tag keys write_tags accepts; ``year`` is another name for ``date``. ``render_key`` is our own
(album/keys.py): a custom frame - ID3 TXXX, a Vorbis comment, an MP4 freeform atom - named RENDER_KEY_NAME."""
RENDER_KEY_NAME = "compassion-audio-render-key"
TAG_FORMATS = ("mp3", "ogg", "opus", "flac", "wav", "m4a")
ID3_VERSION = 3
"""ID3v2.3, the version every player reads (MP3 and WAV); its date frame is TYER."""

_ID3_TEXT = {"title": TIT2, "artist": TPE1, "album": TALB, "album_artist": TPE2,
             "track": TRCK, "date": TDRC, "genre": TCON, "language": TLAN}
_VORBIS = {"title": "TITLE", "artist": "ARTIST", "album": "ALBUM", "album_artist": "ALBUMARTIST",
           "date": "DATE", "genre": "GENRE", "comment": "COMMENT", "language": "LANGUAGE",
           "render_key": RENDER_KEY_NAME.upper().replace("-", "_")}
_MP4 = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "album_artist": "aART",
        "date": "\xa9day", "genre": "\xa9gen", "comment": "\xa9cmt"}
_MP4_LANGUAGE = "----:com.apple.iTunes:LANGUAGE"
_MP4_RENDER_KEY = f"----:com.apple.iTunes:{RENDER_KEY_NAME}"
_CHAPTER_KEY = re.compile(r"CHAPTER(\d+)(NAME|URL)?", re.IGNORECASE)


@dataclass(frozen=True)
class _Cover:
    data: bytes
    mime: str
    width: int
    height: int
    depth_bits: int


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
    date = values.get("date")
    if date is not None and not re.fullmatch(r"\d{4}(-\d\d(-\d\d)?)?", date):
        # ID3 keeps only a date it can read (its year frame); other formats would keep any text.
        raise ParameterError(f"date {date!r} is not a year or a date", source="tags",
                             hint='write it as "2024" or "2024-05-31"')
    return values


def check_tags(tags: Mapping[str, str]) -> None:
    """Raise the ParameterError write_tags would for these tags, before anything is rendered."""
    _normalise(tags)


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


def cover_mime(head: bytes, path: Path) -> str:
    """The cover's MIME type from its first bytes; a ParameterError unless JPEG or PNG."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise ParameterError("cover image is not a JPEG or PNG file", source=str(path),
                         hint="players only show JPEG and PNG covers")


def _load_cover(path: Path) -> _Cover:
    """The cover image, checked as targets.check_cover checks it before a render: a regular
    file, at most MAX_IMAGE_BYTES, JPEG or PNG."""
    path = check_cover(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ParameterError(f"cover image cannot be read: {exc.strerror or exc}",
                             source=str(path)) from exc
    return _Cover(data, cover_mime(data, path), *_image_size(data))


def _hms(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


# ---- ID3 (MP3 and WAV) ----

def _fill_id3(id3: ID3, values: dict[str, str], marks: list[Mark], cover: _Cover | None,
              duration_ms: int | None) -> None:
    for key, frame in _ID3_TEXT.items():
        if key in values:
            id3.setall(frame.__name__, [frame(encoding=3, text=[values[key]])])
    if "render_key" in values:
        id3.setall(f"TXXX:{RENDER_KEY_NAME}", [TXXX(encoding=3, desc=RENDER_KEY_NAME, text=[values["render_key"]])])
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
    # mutagen holds tags as v2.4 (the date in TDRC) and saves them as they are: v2.3 has no
    # TDRC, so readers of v2.3 (eyeD3, many players) found no year. This writes TYER instead.
    id3.update_to_v23()


def _write_mp3(path, values, marks, cover, duration_ms) -> None:
    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        id3 = ID3()
    _fill_id3(id3, values, marks, cover, duration_ms)
    id3.save(path, v2_version=ID3_VERSION)
    id3_order.chapters_in_time_order(Path(path), 0)


def _write_wav(path, values, marks, cover, duration_ms) -> None:
    wave = WAVE(path)
    if wave.tags is None:
        wave.add_tags()
    _fill_id3(wave.tags, values, marks, cover, duration_ms)
    wave.save(v2_version=ID3_VERSION)
    offset = id3_order.wav_id3_offset(Path(path))
    if offset is not None:
        id3_order.chapters_in_time_order(Path(path), offset)


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
    return _ffmetadata_text(_normalise(tags), chapter_marks(chapters, sample_rate))


def _mp4_marks(mp4: MP4) -> list[tuple[str, int]]:
    return [(c.title, round(c.start * 1000)) for c in (mp4.chapters or ())]


def _write_m4a(path, values, marks, cover, duration_ms) -> None:
    mp4 = MP4(path)
    kept = dict(mp4.tags or {})
    if marks and _mp4_marks(mp4) != [(m.title, m.start_ms) for m in marks]:
        # mutagen cannot write MP4 chapters: ffmpeg copies the audio with them added.
        remux_m4a(Path(path), _ffmetadata_text(values, marks))
        mp4 = MP4(path)
    if mp4.tags is None:
        mp4.add_tags()
    mp4.tags.update(kept)  # the remux keeps only the tags it was given; the others come back here
    for key, atom in _MP4.items():
        if key in values:
            mp4.tags[atom] = [values[key]]
    if "language" in values:
        mp4.tags[_MP4_LANGUAGE] = [MP4FreeForm(values["language"].encode("utf-8"))]
    if "render_key" in values:
        mp4.tags[_MP4_RENDER_KEY] = [MP4FreeForm(values["render_key"].encode("utf-8"))]
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
    duration_ms = (frames_to_ms(duration_frames, sample_rate) if duration_frames is not None
                   else _file_ms(path))
    marks = chapter_marks(chapters, sample_rate, duration_ms)
    try:
        _WRITERS[fmt](path, values, marks, image, duration_ms)
    except mutagen.MutagenError as exc:
        raise AudioError(f"cannot write tags into {Path(path).name}: {exc}") from exc


def read_render_key(path: Path) -> str | None:
    """The render key write_tags stored in a file (None: no key, or not a file mutagen reads)."""
    try:
        tags = getattr(mutagen.File(path), "tags", None)
    except (mutagen.MutagenError, OSError):
        return None
    if tags is None:
        return None
    for name in (f"TXXX:{RENDER_KEY_NAME}", _VORBIS["render_key"], _MP4_RENDER_KEY):
        try:
            found = tags.get(name) if hasattr(tags, "get") else None
        except (KeyError, ValueError):
            found = None
        if found:
            first = found.text[0] if hasattr(found, "text") else found[0]
            return bytes(first).decode("utf-8") if isinstance(first, (bytes, MP4FreeForm)) else str(first)
    return None
