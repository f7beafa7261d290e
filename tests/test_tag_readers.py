"""Tags and chapters as real readers see them: ffmpeg (file order), eyeD3 and mutagen's raw frames."""
from __future__ import annotations

import logging
import re
import struct
import subprocess
import zlib
from pathlib import Path

import eyed3
import mutagen
import pytest
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from compassion_audio.core.errors import ParameterError
from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.core.timeline import Chapter
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output import tags
from compassion_audio.render import TrackRequest, render_track

SR = 44100
SECONDS = 12
ENCODERS = {"mp3": ["-c:a", "libmp3lame", "-q:a", "5"], "wav": ["-c:a", "pcm_s16le"],
            "flac": ["-c:a", "flac"], "opus": ["-c:a", "libopus"], "ogg": ["-c:a", "libopus"],
            "m4a": ["-c:a", "aac"]}
# Long and short titles: mutagen writes frames smallest first, which is not time order.
CHAPTERS = (Chapter("Arriving, and settling into the practice", int(5.08 * SR), 7 * SR),
            Chapter("Breath", 7 * SR, 8 * SR),
            Chapter("Bringing the compassionate self to mind", 8 * SR, 10 * SR),
            Chapter("End", 10 * SR, 12 * SR))
TITLES = [c.title for c in CHAPTERS]
STARTS_MS = [0, 7000, 8000, 10000]
"""The first chapter starts at 0:00 whatever its mark (here after a 5.08 s opening bell)."""
ENDS_MS = [7000, 8000, 10000, 12000]
TAGS = {"title": "Compassionate self", "artist": "Clinic voice", "album": "Week 3",
        "album_artist": "The clinic", "track": "3/12", "year": "2024", "genre": "Meditation",
        "comment": "Practise once a day", "language": "eng"}

logging.getLogger("eyed3").setLevel(logging.ERROR)  # it warns about frames it does not know


def png_bytes() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + b"\x00\x80\xff" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def encoded(folder: Path, fmt: str) -> Path:
    path = folder / f"track.{fmt}"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=330:duration={SECONDS}:sample_rate={SR}", *ENCODERS[fmt], str(path)],
                   check=True)
    return path


def ffmpeg_metadata(path: Path) -> tuple[dict[str, str], list[tuple[str, int, int]]]:
    """Tags and chapters (title, start ms, end ms) as ffmpeg lists them: in the file's order."""
    stream = ["-map_metadata", "0:s:0"] if path.suffix in (".ogg", ".opus") else []
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-copyts", "-i", str(path), *stream,
                          "-f", "ffmetadata", "-"], capture_output=True, text=True, check=True).stdout
    head, *sections = re.split(r"^\[CHAPTER\]\n", out, flags=re.M)
    found = dict(line.split("=", 1) for line in head.splitlines()[1:] if "=" in line)
    chapters = []
    for section in sections:
        fields = dict(line.split("=", 1) for line in section.splitlines() if "=" in line)
        num, den = map(int, fields["TIMEBASE"].split("/"))
        to_ms = lambda v: round(int(v) * num * 1000 / den)  # noqa: E731
        chapters.append((fields["title"], to_ms(fields["START"]), to_ms(fields["END"])))
    return {k.lower(): v for k, v in found.items()}, chapters


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_id3_chapters_are_in_time_order_in_the_file(fmt, tmp_path):
    path = encoded(tmp_path, fmt)
    tags.write_tags(path, fmt, TAGS, chapters=CHAPTERS, sample_rate=SR)
    _, chapters = ffmpeg_metadata(path)
    assert chapters == list(zip(TITLES, STARTS_MS, ENDS_MS))
    # Re-tagging (a second write) keeps them in order.
    tags.write_tags(path, fmt, {"title": "Again"}, chapters=CHAPTERS, sample_rate=SR)
    assert ffmpeg_metadata(path)[1] == list(zip(TITLES, STARTS_MS, ENDS_MS))


def test_eyed3_reads_the_chapters_in_order_with_a_table_of_contents(tmp_path):
    path = encoded(tmp_path, "mp3")
    tags.write_tags(path, "mp3", TAGS, chapters=CHAPTERS, sample_rate=SR)
    tag = eyed3.load(path).tag
    assert tag.version == (2, 3, 0)
    assert [(c.element_id, c.title, tuple(c.times)) for c in tag.chapters] == [
        (f"chp{i}".encode(), title, (start, end))
        for i, (title, start, end) in enumerate(zip(TITLES, STARTS_MS, ENDS_MS))]
    (toc,) = tag.table_of_contents
    assert (toc.toplevel, toc.ordered, toc.child_ids) == (True, True, [b"chp0", b"chp1", b"chp2", b"chp3"])


@pytest.mark.parametrize("date, tyer, tdat, best", [("2024", "2024", None, "2024"),
                                                    ("2024-05-31", "2024", "3105", "2024-05-31")])
def test_mp3_date_is_in_the_v23_year_frame(date, tyer, tdat, best, tmp_path):
    path = encoded(tmp_path, "mp3")
    tags.write_tags(path, "mp3", {**TAGS, "year": date}, chapters=CHAPTERS, sample_rate=SR)
    raw = ID3(path, translate=False)  # the frames as stored, not upgraded to v2.4
    assert raw.version == (2, 3, 0)
    assert "TDRC" not in raw and str(raw["TYER"]) == tyer
    assert (str(raw["TDAT"]) if "TDAT" in raw else None) == tdat
    assert str(eyed3.load(path).tag.getBestDate()) == best
    assert ffmpeg_metadata(path)[0]["date"].startswith("2024")
    tags.write_tags(path, "mp3", {"title": "Again"})  # a rewrite keeps the year where v2.3 has it
    raw = ID3(path, translate=False)
    assert "TDRC" not in raw and str(raw["TYER"]) == tyer
    assert str(eyed3.load(path).tag.getBestDate()) == best


def test_wav_date_is_in_the_v23_year_frame(tmp_path):
    path = encoded(tmp_path, "wav")
    tags.write_tags(path, "wav", TAGS)
    raw = mutagen.File(path).tags
    assert raw.version == (2, 3, 0)
    offset = tags.id3_order.wav_id3_offset(path)
    with open(path, "rb") as fh:
        fh.seek(offset)
        assert fh.read(4) == b"ID3\x03"
        body = fh.read(4000)
    assert b"TYER" in body and b"TDRC" not in body


def test_eyed3_reads_every_mp3_tag(tmp_path):
    cover = tmp_path / "cover.png"
    cover.write_bytes(png_bytes())
    path = encoded(tmp_path, "mp3")
    tags.write_tags(path, "mp3", TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover,
                    duration_frames=SECONDS * SR)
    tag = eyed3.load(path).tag
    assert (tag.title, tag.artist, tag.album, tag.album_artist) == (
        "Compassionate self", "Clinic voice", "Week 3", "The clinic")
    assert tuple(tag.track_num) == (3, 12)
    assert str(tag.getBestDate()) == "2024" and tag.genre.name == "Meditation"
    assert [(c.lang, c.text) for c in tag.comments] == [(b"eng", "Practise once a day")]
    (image,) = tag.images
    assert (image.mime_type, image.picture_type, image.image_data) == ("image/png", 3, png_bytes())
    assert [c.title for c in tag.chapters] == TITLES


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_first_chapter_starts_at_zero_in_every_format(fmt, tmp_path):
    path = encoded(tmp_path, fmt)
    tags.write_tags(path, fmt, TAGS, chapters=CHAPTERS, sample_rate=SR)
    _, chapters = ffmpeg_metadata(path)
    assert [c[0] for c in chapters] == TITLES
    assert [c[1] for c in chapters] == STARTS_MS
    audio = mutagen.File(path)  # each format's own chapter fields, read directly
    if fmt in ("mp3", "wav"):
        chaps = sorted(audio.tags.getall("CHAP"), key=lambda c: c.start_time)
        assert [c.start_time for c in chaps] == STARTS_MS
    elif isinstance(audio, MP4):
        assert [round(c.start * 1000) for c in audio.chapters] == STARTS_MS
    else:
        assert [audio.tags[f"CHAPTER00{i}"][0] for i in range(1, 5)] == [
            "00:00:00.000", "00:00:07.000", "00:00:08.000", "00:00:10.000"]


def test_two_chapters_at_one_instant_keep_the_later_one(tmp_path):
    path = encoded(tmp_path, "mp3")
    pair = (Chapter("Opening", 0, 0), Chapter("Arriving", 0, 6 * SR), Chapter("End", 6 * SR, 12 * SR))
    tags.write_tags(path, "mp3", {}, chapters=pair, sample_rate=SR)
    assert ffmpeg_metadata(path)[1] == [("Arriving", 0, 6000), ("End", 6000, 12000)]
    assert tags.chapter_marks(pair, SR) == [tags.Mark("Arriving", 0, 6000), tags.Mark("End", 6000, 12000)]


def test_a_date_that_is_not_a_date_is_named(tmp_path):
    path = encoded(tmp_path, "mp3")
    with pytest.raises(ParameterError) as info:
        tags.write_tags(path, "mp3", {"year": "spring 2024"})
    assert str(info.value) == ("tags: date 'spring 2024' is not a year or a date "
                               '(write it as "2024" or "2024-05-31")')


def test_a_rendered_track_with_an_opening_bell_starts_its_first_chapter_at_zero(tmp_path, fake_engine):
    script = tmp_path / "bell.txt.j2"
    script.write_text("[chapter Arriving]\nHello there.\n[pause 2s]\n[chapter Closing]\nGoodbye now.\n",
                      encoding="utf-8")
    result = render_track(TrackRequest(exercise=str(script), output=tmp_path / "bell.mp3",
                                       mix=MixSettings(), export=ExportSettings(tags={"year": "2024"})),
                          engine=fake_engine)
    first, second = result.timeline.chapters
    assert first.start / SR > 1.0  # the plan puts the first mark after the opening bell
    _, chapters = ffmpeg_metadata(result.path)
    assert [c[:2] for c in chapters] == [("Arriving", 0), ("Closing", round(second.start * 1000 / SR))]
    assert [tuple(c.times)[0] for c in eyed3.load(result.path).tag.chapters] == [0, chapters[1][1]]
    assert str(eyed3.load(result.path).tag.getBestDate()) == "2024"


def test_a_bad_date_stops_a_render_before_anything_is_spoken(tmp_path, fake_engine):
    script = tmp_path / "short.txt.j2"
    script.write_text("Hello there.\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="date 'spring' is not a year or a date"):
        render_track(TrackRequest(exercise=str(script), output=tmp_path / "short.mp3",
                                  export=ExportSettings(tags={"year": "spring"})), engine=fake_engine)
    assert fake_engine.calls == [] and not (tmp_path / "short.mp3").exists()
