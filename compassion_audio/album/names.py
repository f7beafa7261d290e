"""File and folder names of an album: its slug, numbered track names, the client's subfolder."""
from __future__ import annotations

import re
import unicodedata

MAX_TITLE_CHARS = 80
"""A track title in a file name is cut to this (the tag keeps the whole title)."""
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def slug(text: str, fallback: str = "album") -> str:
    """``Week 3 practices`` -> ``week-3-practices``: ASCII letters and digits joined by '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_text).strip("-").lower() or fallback


def safe_title(title: str) -> str:
    """A title as a file name: characters no file system takes become '-', no leading dot
    (a hidden file) or trailing dot or space (Windows drops them), at most MAX_TITLE_CHARS."""
    text = _UNSAFE.sub("-", unicodedata.normalize("NFC", title)).strip()
    text = text[:MAX_TITLE_CHARS].rstrip(" .").lstrip(".") or "track"
    return text


def track_stem(number: int, total: int, title: str) -> str:
    """``01 Soothing rhythm breathing``: the number padded to the width of the total (two at least),
    so every file manager lists the tracks in order."""
    width = max(2, len(str(total)))
    return f"{number:0{width}d} {safe_title(title)}"
