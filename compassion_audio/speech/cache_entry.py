"""One phrase-cache entry file: a standard .npy of the samples, then a trailer that lets a
reader check the whole entry before a single sample of it reaches a track."""
from __future__ import annotations

import hashlib
import io
import json
import struct
from typing import BinaryIO

import numpy as np

MAGIC = b"CAclip\r\n"
"""Ends every entry (after the trailer's length); CRLF also catches a text-mode copy."""
_END = struct.Struct("<Q8s")
"""The last 16 bytes: the trailer's length, then MAGIC."""
SAMPLE_DTYPE = np.dtype("<f4")


class BadEntry(Exception):
    """An entry that must not be used; the message says why, without the phrase's text."""


def encode_entry(samples: np.ndarray, meta: dict) -> bytes:
    """The bytes of an entry: np.load (and np.load with mmap) reads the samples as usual; the
    trailer after them holds ``meta`` plus the frame count and the samples' sha256."""
    data = np.ascontiguousarray(samples, dtype=SAMPLE_DTYPE).reshape(-1)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, data, allow_pickle=False)
    trailer = dict(meta, frames=int(data.shape[0]), sha256=hashlib.sha256(data.tobytes()).hexdigest())
    text = json.dumps(trailer, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    buf.write(text)
    buf.write(_END.pack(len(text), MAGIC))
    return buf.getvalue()


def read_entry(fh: BinaryIO, *, cache_format: int) -> dict:
    """The checked trailer of the entry open in ``fh``; BadEntry if anything is wrong.

    Checked: the trailer is there and readable, the format is ``cache_format``, the .npy
    header says float32 mono of the stored length, the file is exactly as long as header,
    samples and trailer, the samples hash to the stored sha256, and they are finite and
    not all zero (a stored clip is speech). Reads the whole file: a phrase is 0.1-2 MB.
    """
    raw = fh.read()
    meta = _trailer(raw)
    if meta.get("format") != cache_format:
        raise BadEntry(f"format {meta.get('format')!r}, not {cache_format}")
    head = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(head)
        shape, fortran, dtype = _HEADER_READERS[version](head)
        frames, lead, tail = (int(meta[k]) for k in ("frames", "lead_frames", "tail_frames"))
        digest = str(meta["sha256"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise BadEntry(f"unreadable header ({type(exc).__name__})") from None
    if dtype != SAMPLE_DTYPE or fortran or shape != (frames,):
        raise BadEntry(f"header says {dtype} {shape}, trailer {frames} frames")
    start = head.tell()
    end = start + frames * SAMPLE_DTYPE.itemsize
    if end + len(_trailer_bytes(raw)) + _END.size != len(raw):
        raise BadEntry(f"wrong size ({len(raw)} bytes for {frames} frames)")
    if hashlib.sha256(memoryview(raw)[start:end]).hexdigest() != digest:
        raise BadEntry("checksum mismatch")
    samples = np.frombuffer(raw, dtype=SAMPLE_DTYPE, count=frames, offset=start)
    if not np.isfinite(samples).all():
        raise BadEntry("samples not finite")
    if not samples.any():
        raise BadEntry("samples all zero")
    if not (0 <= lead and 0 <= tail and lead + tail < frames):
        raise BadEntry(f"margins {lead}+{tail} do not fit {frames} frames")
    return meta


def read_trailer(fh: BinaryIO) -> dict:
    """Only the trailer (for cache upkeep: its text, its format), read from the end of the file."""
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    if size < _END.size:
        raise BadEntry("empty" if size == 0 else "truncated")
    fh.seek(size - _END.size)
    length, magic = _END.unpack(fh.read(_END.size))
    if magic != MAGIC or length > size - _END.size:
        raise BadEntry("no trailer (an older format, or damaged)")
    fh.seek(size - _END.size - length)
    return _parse(fh.read(length))


def _trailer_bytes(raw: bytes) -> bytes:
    if len(raw) < _END.size:
        raise BadEntry("empty" if not raw else "truncated")
    length, magic = _END.unpack_from(raw, len(raw) - _END.size)
    if magic != MAGIC or length > len(raw) - _END.size:
        raise BadEntry("no trailer (an older format, or damaged)")
    return raw[len(raw) - _END.size - length:len(raw) - _END.size]


def _trailer(raw: bytes) -> dict:
    return _parse(_trailer_bytes(raw))


def _parse(text: bytes) -> dict:
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadEntry("trailer is not readable") from None
    if not isinstance(meta, dict):
        raise BadEntry("trailer is not readable")
    return meta


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
