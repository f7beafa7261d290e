"""ID3 chapter frames put in time order inside a written tag (mutagen orders frames by size)."""
from __future__ import annotations

import struct
from pathlib import Path

_HEADER = 10
"""Bytes in an ID3v2 tag header, and in each v2.3/v2.4 frame header."""
_UNREADABLE_TAG = 0xC0
"""Tag flags this leaves alone: unsynchronisation (0x80) and an extended header (0x40)."""
_UNREADABLE_FRAME = {3: 0x00C0, 4: 0x000F}
"""Frame flags (compressed, encrypted, unsynchronised...) that hide a CHAP frame's times."""


def chapters_in_time_order(path: Path, offset: int) -> None:
    """Rewrite the ID3v2.3/2.4 tag at ``offset`` in ``path`` with its CHAP frames in time order.

    mutagen writes frames smallest first, so chapters came out in the order of their title
    lengths; ffmpeg and players that ignore the table of contents list them in file order.
    Each CHAP frame moves into the place of another, so the tag keeps its size and the
    audio after it does not move.
    """
    with open(path, "r+b") as fh:
        fh.seek(offset)
        header = fh.read(_HEADER)
        if len(header) < _HEADER or header[:3] != b"ID3" or header[3] not in (3, 4) \
                or header[5] & _UNREADABLE_TAG:
            return
        body = fh.read(_syncsafe(header[6:10]))
        ordered = _ordered(body, header[3])
        if ordered is not None and ordered != body:
            fh.seek(offset + _HEADER)
            fh.write(ordered)


def wav_id3_offset(path: Path) -> int | None:
    """Where a WAV file's ID3 tag (its "id3 " chunk) starts, if it has one."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"RIFF":
            return None
        fh.seek(12)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return None
            kind, size = head[:4], struct.unpack("<I", head[4:])[0]
            if kind.lower() == b"id3 ":
                return fh.tell()
            fh.seek(size + (size & 1), 1)  # chunks are padded to an even length


def _syncsafe(data: bytes) -> int:
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


def _ordered(body: bytes, version: int) -> bytes | None:
    """The tag body with its CHAP frames in time order (None when a frame cannot be read)."""
    frames, at = [], 0
    while at + _HEADER <= len(body) and body[at:at + 4].isalnum():
        raw = body[at + 4:at + 8]
        size = _syncsafe(raw) if version == 4 else struct.unpack(">I", raw)[0]
        frames.append(body[at:at + _HEADER + size])
        at += _HEADER + size
    if at > len(body):
        return None
    chapters = [i for i, frame in enumerate(frames) if frame[:4] == b"CHAP"]
    starts = [_chap_start(frames[i], version) for i in chapters]
    if None in starts:
        return None
    by_time = [frames[i] for _, i in sorted(zip(starts, chapters))]
    for slot, frame in zip(chapters, by_time):
        frames[slot] = frame
    return b"".join(frames) + body[at:]


def _chap_start(frame: bytes, version: int) -> int | None:
    """A CHAP frame's start time in ms: after its null-terminated element id."""
    if struct.unpack(">H", frame[8:10])[0] & _UNREADABLE_FRAME[version]:
        return None
    end_of_id = frame.find(b"\x00", _HEADER)
    if end_of_id < 0 or end_of_id + 5 > len(frame):
        return None
    return struct.unpack(">I", frame[end_of_id + 1:end_of_id + 5])[0]
