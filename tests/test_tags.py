"""Tags, cover and chapters in real encoded files, read back with mutagen directly and with ffmpeg."""
from __future__ import annotations

import os
import stat
import struct
import subprocess
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest
import mutagen
from mutagen.flac import FLAC
from mutagen.id3 import ID3, CTOCFlags, PictureType
from mutagen.mp4 import MP4

from compassion_audio.output import export, tags
from compassion_audio.core import tools
from compassion_audio.core.errors import AudioError, ParameterError
from compassion_audio.core.timeline import Chapter

from .conftest import embedded_pictures, ffmetadata_view

SR = 44100
SECONDS = 3
TONE_HZ = 440.0
ENCODERS = {"mp3": ["-c:a", "libmp3lame", "-b:a", "128k"], "opus": ["-c:a", "libopus"],
            "ogg": ["-c:a", "libopus"], "flac": ["-c:a", "flac"], "m4a": ["-c:a", "aac"],
            "wav": ["-c:a", "pcm_s16le"]}
TAGS = {"title": "Soothing rhythm – évening", "artist": "Clinic voice", "album": "Week 3",
        "album_artist": "The clinic", "track": "3/12", "year": "2024", "genre": "Meditation",
        "comment": "Practise once a day", "language": "eng"}
CHAPTERS = (Chapter("Arriving", 0, SR), Chapter("Breath; = # \\ rhythm", SR, 2 * SR),
            Chapter("Returning", 2 * SR, 3 * SR))
EXPECTED_CHAPTERS = [("Arriving", 0.0, 1.0), ("Breath; = # \\ rhythm", 1.0, 2.0),
                     ("Returning", 2.0, 3.0)]


def png_bytes() -> bytes:
    """A 2x2 red RGB PNG, built by hand."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def jpeg_bytes() -> bytes:
    """SOI, an APP0 segment and a baseline SOF0 header for a 3x5 colour image."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 5, 3, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def ffmpeg(*args: str) -> str:
    result = subprocess.run([tools.ffmpeg_exe(), "-v", "error", "-nostdin", *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "tone.wav"
    t = np.arange(SR * SECONDS) / SR
    samples = (0.3 * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SR)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture
def cover(tmp_path) -> Path:
    path = tmp_path / "cover.png"
    path.write_bytes(png_bytes())
    return path


def encode(source: Path, folder: Path, fmt: str, *extra: str) -> Path:
    out = folder / f"track.{fmt}"
    ffmpeg("-y", "-i", str(source), *extra, *ENCODERS[fmt], str(out))
    return out


def decoded(path: Path) -> np.ndarray:
    raw = subprocess.run([tools.ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "s16le",
                          "-ac", "1", "-ar", str(SR), "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<i2").astype(np.float64) / 32768


# Each format's own tag names, as mutagen reads them from the file (not the product's reader).
ID3_FRAMES = {"TIT2": TAGS["title"], "TPE1": TAGS["artist"], "TALB": TAGS["album"],
              "TPE2": TAGS["album_artist"], "TRCK": "3/12", "TDRC": "2024", "TCON": "Meditation",
              "TLAN": "eng", "COMM::eng": TAGS["comment"]}
VORBIS_FIELDS = {"TITLE": TAGS["title"], "ARTIST": TAGS["artist"], "ALBUM": TAGS["album"],
                 "ALBUMARTIST": TAGS["album_artist"], "TRACKNUMBER": "3", "TRACKTOTAL": "12",
                 "DATE": "2024", "GENRE": "Meditation", "COMMENT": TAGS["comment"], "LANGUAGE": "eng"}
MP4_ATOMS = {"\xa9nam": TAGS["title"], "\xa9ART": TAGS["artist"], "\xa9alb": TAGS["album"],
             "aART": TAGS["album_artist"], "trkn": (3, 12), "\xa9day": "2024", "\xa9gen": "Meditation",
             "\xa9cmt": TAGS["comment"], "----:com.apple.iTunes:LANGUAGE": b"eng"}


def native_tags(path: Path) -> dict:
    """The file's tags under its own names, read by mutagen directly; plus the cover's bytes."""
    audio = mutagen.File(path)
    tags_ = audio.tags
    if isinstance(tags_, ID3):  # MP3, and WAV's id3 chunk
        found = {key: str(tags_[key].text[0]) for key in ID3_FRAMES if key in tags_}
    elif isinstance(audio, MP4):
        found = {key: (tags_[key][0] if key != "----:com.apple.iTunes:LANGUAGE" else bytes(tags_[key][0]))
                 for key in MP4_ATOMS if key in tags_}
        found = {k: (tuple(v) if k == "trkn" else v) for k, v in found.items()}
    else:  # Vorbis comments: FLAC, Ogg Opus
        found = {key: tags_[key][0] for key in VORBIS_FIELDS if key in tags_}
    return {**found, "pictures": embedded_pictures(path)}


EXPECTED_NATIVE = {"mp3": ID3_FRAMES, "wav": ID3_FRAMES, "flac": VORBIS_FIELDS, "opus": VORBIS_FIELDS,
                   "ogg": VORBIS_FIELDS, "m4a": MP4_ATOMS}
VORBIS_TRACK = {"track": "3", "tracktotal": "12"}
"""ffmpeg shows a Vorbis TRACKNUMBER/TRACKTOTAL pair as two keys (ID3 and MP4 keep '3/12')."""


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_tags_chapters_and_cover_round_trip(fmt, source, cover, tmp_path):
    """Read back by two readers that are not the product's: mutagen on the file's own tag
    names (and the cover's bytes), and ffmpeg's ffmetadata (tags and chapters)."""
    path = encode(source, tmp_path, fmt)
    tags.write_tags(path, fmt, TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover,
                    duration_frames=SECONDS * SR)
    native = native_tags(path)
    assert native.pop("pictures") == [png_bytes()]
    assert native == EXPECTED_NATIVE[fmt]
    found, chapters = ffmetadata_view(path)
    expected = {("date" if k == "year" else k): v for k, v in TAGS.items()}
    if EXPECTED_NATIVE[fmt] is VORBIS_FIELDS:
        expected.update(VORBIS_TRACK)
    assert {k: found.get(k) for k in expected} == expected
    assert [c[0] for c in chapters] == [c[0] for c in EXPECTED_CHAPTERS]
    for (_, start, end), (_, want_start, want_end) in zip(chapters, EXPECTED_CHAPTERS):
        assert start == pytest.approx(want_start, abs=0.001)
        # Opus stores starts only; the last chapter ends with the stream (codec padding).
        assert end == pytest.approx(want_end, abs=0.001 if fmt not in ("opus", "ogg") else 0.01)


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_ffmpeg_sees_the_chapters_and_title(fmt, source, cover, tmp_path):
    path = encode(source, tmp_path, fmt)
    tags.write_tags(path, fmt, TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover)
    found, chapters = ffmetadata_view(path)
    assert found["title"] == TAGS["title"]
    assert found.get("artist") == TAGS["artist"]
    assert [c[0] for c in chapters] == [c[0] for c in EXPECTED_CHAPTERS]
    assert [c[1] for c in chapters] == pytest.approx([c[1] for c in EXPECTED_CHAPTERS], abs=0.001)


@pytest.mark.parametrize("fmt", list(ENCODERS))
def test_audio_still_decodes_after_tagging(fmt, source, cover, tmp_path):
    path = encode(source, tmp_path, fmt)
    tags.write_tags(path, fmt, TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover)
    samples = decoded(path)
    # Lossy codecs add encoder delay and padding: tens of milliseconds at most.
    assert abs(len(samples) - SECONDS * SR) <= 0.06 * SR
    middle = samples[SR // 2: SR // 2 + SR]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    assert np.argmax(spectrum) * SR / len(middle) == pytest.approx(TONE_HZ, abs=1.0)
    rms_db = 20 * np.log10(np.sqrt(np.mean(middle ** 2)))
    assert rms_db == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.5)


def test_mp3_has_id3v23_chap_frames_and_an_ordered_top_level_toc(source, cover, tmp_path):
    path = encode(source, tmp_path, "mp3")
    tags.write_tags(path, "mp3", TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover,
                    duration_frames=SECONDS * SR)
    assert path.read_bytes()[:4] == b"ID3\x03"
    id3 = ID3(path)
    assert id3.version[:2] == (2, 3)
    (toc,) = id3.getall("CTOC")
    assert toc.flags & CTOCFlags.TOP_LEVEL and toc.flags & CTOCFlags.ORDERED
    assert toc.child_element_ids == ["chp0", "chp1", "chp2"]
    chaps = {c.element_id: c for c in id3.getall("CHAP")}
    assert [(chaps[i].start_time, chaps[i].end_time, str(chaps[i].sub_frames["TIT2"]))
            for i in toc.child_element_ids] == [
        (0, 1000, "Arriving"), (1000, 2000, "Breath; = # \\ rhythm"), (2000, 3000, "Returning")]
    (apic,) = id3.getall("APIC")
    assert apic.type == PictureType.COVER_FRONT == 3
    assert apic.mime == "image/png" and apic.data == png_bytes()
    assert str(id3["TLEN"]) == "3000"
    assert id3["COMM::eng"].text == ["Practise once a day"]


def test_jpeg_cover_is_detected_by_content(source, tmp_path):
    cover = tmp_path / "cover.png"  # the name says PNG; the bytes say JPEG
    cover.write_bytes(jpeg_bytes())
    mp3 = encode(source, tmp_path, "mp3")
    tags.write_tags(mp3, "mp3", {}, cover=cover)
    assert ID3(mp3).getall("APIC")[0].mime == "image/jpeg"
    flac = encode(source, tmp_path, "flac")
    tags.write_tags(flac, "flac", {}, cover=cover)
    (picture,) = FLAC(flac).pictures
    assert (picture.mime, picture.width, picture.height, picture.depth) == ("image/jpeg", 3, 5, 24)


def test_flac_picture_block_and_chapter_comments(source, cover, tmp_path):
    path = encode(source, tmp_path, "flac")
    tags.write_tags(path, "flac", {"title": "x"}, chapters=CHAPTERS, sample_rate=SR, cover=cover)
    flac = FLAC(path)
    (picture,) = flac.pictures
    assert (picture.type, picture.mime, picture.width, picture.height) == (3, "image/png", 2, 2)
    assert flac.tags["CHAPTER001"] == ["00:00:00.000"]
    assert flac.tags["CHAPTER002"] == ["00:00:01.000"]
    assert flac.tags["CHAPTER003NAME"] == ["Returning"]


def test_rewriting_keeps_other_tags_and_replaces_chapters(source, tmp_path):
    for fmt in ("mp3", "opus", "m4a"):
        path = encode(source, tmp_path, fmt)
        tags.write_tags(path, fmt, {"title": "First", "genre": "Spoken Word"}, chapters=CHAPTERS,
                        sample_rate=SR)
        tags.write_tags(path, fmt, {"title": "Second"}, chapters=CHAPTERS[:1], sample_rate=SR)
        found, chapters = ffmetadata_view(path)
        assert (found["title"], found["genre"]) == ("Second", "Spoken Word"), fmt
        assert [c[0] for c in chapters] == ["Arriving"], fmt
        assert native_tags(path)["pictures"] == [], fmt


def test_ffmetadata_escapes_and_times_in_milliseconds():
    text = tags.ffmetadata({"title": "a=b;c#d\\e\nf", "track": "2"},
                           [Chapter("One", 0, 22050), Chapter("Two", 22050, 44100)], 44100)
    assert text == (";FFMETADATA1\ntitle=a\\=b\\;c\\#d\\\\e\\\nf\ntrack=2\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=One\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n")


def test_ffmpeg_writes_m4a_chapters_from_ffmetadata(source, cover, tmp_path):
    meta = tmp_path / "meta.txt"
    meta.write_text(tags.ffmetadata(TAGS, CHAPTERS, SR), encoding="utf-8")
    path = encode(source, tmp_path, "m4a", "-i", str(meta), "-map", "0:a", "-map_metadata", "1")
    found, chapters = ffmetadata_view(path)
    assert found["title"] == TAGS["title"] and found["album"] == TAGS["album"]
    assert [c[0] for c in chapters] == [c[0] for c in EXPECTED_CHAPTERS]
    times = [t for c in chapters for t in c[1:]]
    assert times == pytest.approx([t for c in EXPECTED_CHAPTERS for t in c[1:]], abs=0.001)
    # The chapters are already there, so write_tags adds tags and cover without a remux.
    inode = path.stat().st_ino
    tags.write_tags(path, "m4a", TAGS, chapters=CHAPTERS, sample_rate=SR, cover=cover)
    assert path.stat().st_ino == inode
    assert native_tags(path)["pictures"] == [png_bytes()]
    assert [c[0] for c in ffmetadata_view(path)[1]] == [c[0] for c in EXPECTED_CHAPTERS]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cover.png", "meta.txt", "track.m4a"]


def test_m4a_remux_leaves_no_temp_files(source, tmp_path):
    path = encode(source, tmp_path, "m4a")
    tags.write_tags(path, "m4a", {"title": "t"}, chapters=CHAPTERS, sample_rate=SR)
    assert [p.name for p in tmp_path.iterdir()] == ["track.m4a"]


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 file's top-level box types, in file order."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8:at + 16])[0]
        boxes.append(kind.decode("latin-1"))
        at += size if size else len(data)
    return boxes


def test_one_remux_for_render_and_write_tags(source, tmp_path):
    """write_tags' M4A chapters go through export.remux_m4a, the remux the render path made:
    its copy moves the index before the audio (faststart), keeps the audio and the file's mode."""
    path = encode(source, tmp_path, "m4a")
    os.chmod(path, 0o644)
    before = decoded(path)
    assert top_level_boxes(path).index("moov") > top_level_boxes(path).index("mdat")
    tags.write_tags(path, "m4a", TAGS, chapters=CHAPTERS, sample_rate=SR)
    assert top_level_boxes(path).index("moov") < top_level_boxes(path).index("mdat")
    assert np.array_equal(decoded(path), before)  # copied, not re-encoded
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    found, chapters = ffmetadata_view(path)
    assert found["title"] == TAGS["title"]
    assert [c[0] for c in chapters] == [c[0] for c in EXPECTED_CHAPTERS]
    assert [t for c in chapters for t in c[1:]] == pytest.approx(
        [t for c in EXPECTED_CHAPTERS for t in c[1:]], abs=0.001)
    export.remux_m4a(path, tags.ffmetadata({"title": "Again"}, CHAPTERS[:2], SR))
    found, chapters = ffmetadata_view(path)
    assert found["title"] == "Again" and [c[0] for c in chapters] == [c[0] for c in EXPECTED_CHAPTERS[:2]]
    assert [p.name for p in tmp_path.iterdir()] == ["track.m4a"]


def test_a_failed_remux_keeps_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "notes.m4a"
    path.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match=r"^ffmpeg could not add chapters to the M4A file: "):
        export.remux_m4a(path, tags.ffmetadata({}, CHAPTERS, SR))
    assert path.read_bytes() == b"not audio at all"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.m4a"]


@pytest.mark.parametrize("bad, message", [
    ({"titel": "x"}, r"unknown tag 'titel' \(did you mean 'title'\? known tags: title, artist"),
    ({"mood": "x"}, r"unknown tag 'mood' \(known tags: "),
    ({"track": "three"}, r"track 'three' is not a number"),
])
def test_bad_tags_are_named(bad, message, source, tmp_path):
    path = encode(source, tmp_path, "mp3")
    with pytest.raises(ParameterError, match=message) as info:
        tags.write_tags(path, "mp3", bad)
    assert str(info.value).startswith("tags: ")


def test_bad_cover_format_and_chapter(source, tmp_path):
    path = encode(source, tmp_path, "wav")
    not_image = tmp_path / "cover.gif"
    not_image.write_bytes(b"GIF89a....")
    with pytest.raises(ParameterError, match="not a JPEG or PNG"):
        tags.write_tags(path, "wav", {}, cover=not_image)
    with pytest.raises(ParameterError, match="cannot be read"):
        tags.write_tags(path, "wav", {}, cover=tmp_path / "missing.png")
    with pytest.raises(ParameterError, match="cannot tag format 'aiff'"):
        tags.write_tags(path, "aiff", {})
    with pytest.raises(ParameterError, match="chapter 'Late' has no length inside the track"):
        tags.write_tags(path, "wav", {}, chapters=[Chapter("Late", 4 * SR, 5 * SR)],
                        sample_rate=SR)


def test_tagging_a_file_that_is_not_audio_is_a_named_error(tmp_path):
    junk = tmp_path / "notes.mp3"
    junk.write_bytes(b"hello")
    with pytest.raises(AudioError, match=r"cannot write tags into notes\.mp3: "):
        tags.write_tags(junk, "flac", {"title": "x"})
