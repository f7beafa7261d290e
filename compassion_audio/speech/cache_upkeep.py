"""Looking after the phrase cache: what it holds, clearing it (all, or one client's phrases)
and pruning it to a size - never taking an entry a running render is using."""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from compassion_audio.core.errors import OutputError
from compassion_audio.speech import cache_locks
from compassion_audio.speech.cache_entry import BadEntry, read_trailer

_HEX2 = re.compile(r"[0-9a-f]{2}")
_OURS = re.compile(r"([0-9a-f]{2})/(?:(\.?)(\1[0-9a-f]{62})(\.\w+\.partial)?\.(npy|json)|\.tmp-\w+)")
"""An entry (<key>.npy), a sidecar of format 6 and before (<key>.json), or a temp file a
crash left mid-write (files.atomic_output's name; .tmp-* before format 7): nothing else in
the folder is ours."""
PARTIAL_AGE_SECONDS = 3600.0
"""A temp file this old is debris (a write takes milliseconds); prune removes it."""


MAX_SIZE_ENV = "COMPASSION_AUDIO_CACHE_MAX"
DEFAULT_MAX_BYTES = 2 * 1024 ** 3
"""The cap when $COMPASSION_AUDIO_CACHE_MAX is not set: 2 GiB, some 5,000 clients' own
phrases (0.36 MB each) beside every built-in exercise in a few voices. A render that added
entries prunes the least recently used down to PRUNE_TO of the cap when it is over."""
PRUNE_TO = 0.9
"""Prune to this share of the cap, so the next renders do not each prune again."""

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """Bytes for a size such as ``500M``, ``2G``, ``1.5GiB`` or ``800000`` (K, M, G, T are
    powers of 1024, as ``du`` counts); None for ``off``/``none`` (no cap). ValueError otherwise."""
    if text.strip().lower() in ("off", "none", "unlimited"):
        return None
    found = _SIZE.fullmatch(text)
    if not found:
        raise ValueError(f"{text!r} is not a size: write e.g. 500M, 2G, or off")
    number, unit = float(found.group(1)), found.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def cache_cap() -> int | None:
    """The size cap: $COMPASSION_AUDIO_CACHE_MAX, else DEFAULT_MAX_BYTES (None: no cap)."""
    chosen = os.environ.get(MAX_SIZE_ENV)
    if not chosen:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(chosen)
    except ValueError as exc:
        raise OutputError(f"${MAX_SIZE_ENV}: {exc}") from None


def format_size(n: int) -> str:
    """``n`` bytes as people read them: 512 bytes, 3.4 MiB, 2.0 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


@dataclass(frozen=True)
class CacheFile:
    path: Path
    key: str
    size: int
    used: float
    """Last use (mtime: a hit touches it)."""
    kind: str
    """entry, sidecar (an older format's) or partial."""


def cache_files(root: Path) -> list[CacheFile]:
    """Every file of ours under ``root`` (the root may be a folder the user shares)."""
    found = []
    for path in root.glob("*/*") if root.is_dir() else []:
        match = _OURS.fullmatch(f"{path.parent.name}/{path.name}")
        if not match or (match.group(3) and bool(match.group(2)) != bool(match.group(4))):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        kind = "partial" if not match.group(3) or match.group(4) else \
            "entry" if match.group(5) == "npy" else "sidecar"
        found.append(CacheFile(path, match.group(3) or path.name, st.st_size, st.st_mtime, kind))
    return found


@dataclass(frozen=True)
class CacheInfo:
    entries: int
    size_bytes: int
    oldest: float | None
    newest: float | None
    renders: int
    """Renders using the cache right now."""


def cache_info(root: Path) -> CacheInfo:
    files = cache_files(root)
    used = [f.used for f in files if f.kind == "entry"]
    renders = len(list((root / ".inuse").glob("*.keys"))) if (root / ".inuse").is_dir() else 0
    return CacheInfo(entries=len(used), size_bytes=sum(f.size for f in files),
                     oldest=min(used, default=None), newest=max(used, default=None), renders=renders)


@dataclass(frozen=True)
class Removal:
    removed: int
    """Entries removed (a format-6 entry and its sidecar count as one)."""
    freed_bytes: int
    kept_in_use: int
    """Entries left because a running render uses them."""
    remaining_bytes: int


@contextlib.contextmanager
def _alone(root: Path, wait_seconds: float):
    """The cache's gate held alone, and the keys running renders use (see cache_locks)."""
    folder = root / ".inuse"
    if not cache_locks.LOCKING or not root.is_dir():
        yield set()
        return
    try:
        with cache_locks.gate(folder, exclusive=True, timeout=wait_seconds) as held:
            if not held:
                raise OutputError(f"the phrase cache at {root} is busy: try again in a moment")
            yield cache_locks.keys_in_use(folder)
            cache_locks.remove_stale_locks(root / ".locks")
    except OSError as exc:
        raise OutputError(f"cannot change the phrase cache at {root} ({exc.strerror or exc})") from None


def _remove(files: Iterable[CacheFile]) -> int:
    freed = 0
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            f.path.unlink()
            freed += f.size
    return freed


def _entries(files: list[CacheFile]) -> int:
    return len({f.key for f in files if f.kind != "partial"})


def _remove_empty_folders(root: Path) -> None:
    for folder in root.glob("*") if root.is_dir() else []:
        if folder.is_dir() and _HEX2.fullmatch(folder.name):
            with contextlib.suppress(OSError):
                folder.rmdir()


def clear(root: Path, *, matching: Callable[[CacheFile], bool] | None = None,
          wait_seconds: float = 10.0) -> Removal:
    """Remove every entry (or those ``matching``) but the ones running renders use, and any
    temp file a crash left; a render meanwhile just finds a miss."""
    with _alone(root, wait_seconds) as in_use:
        files = cache_files(root)
        chosen = [f for f in files if f.kind == "partial" or matching is None or matching(f)]
        kept = [f for f in chosen if f.key in in_use and f.kind != "partial"]
        gone = [f for f in chosen if f not in kept]
        freed = _remove(gone)
        _remove_empty_folders(root)
    return Removal(_entries(gone), freed, _entries(kept),
                   sum(f.size for f in files) - freed)


def prune(root: Path, max_bytes: int, *, target: int | None = None, only_if_over: bool = False,
          wait_seconds: float = 10.0) -> Removal:
    """Remove the least recently used entries (older formats' first, and old temp files)
    until the cache holds at most ``target`` bytes (default ``max_bytes``); with
    ``only_if_over``, do nothing unless it holds more than ``max_bytes``."""
    target = max_bytes if target is None else target
    if only_if_over:
        total = sum(f.size for f in cache_files(root))
        if total <= max_bytes:
            return Removal(0, 0, 0, total)
    with _alone(root, wait_seconds) as in_use:
        files = cache_files(root)
        total = sum(f.size for f in files)
        now = time.time()
        debris = [f for f in files if f.kind == "partial" and now - f.used > PARTIAL_AGE_SECONDS]
        freed = _remove(debris)
        groups: dict[str, list[CacheFile]] = {}
        for f in files:
            if f.kind != "partial":
                groups.setdefault(f.key, []).append(f)
        # Older formats' entries first (they can never be hit), then by last use.
        order = sorted(groups.values(), key=lambda g: (all(f.kind == "entry" for f in g) and _current(g),
                                                        max(f.used for f in g)))
        removed = kept = 0
        for group in order:
            if total - freed <= target:
                break
            if group[0].key in in_use:
                kept += 1
                continue
            freed += _remove(group)
            removed += 1
        _remove_empty_folders(root)
    return Removal(removed, freed, kept, total - freed)


def _current(group: list[CacheFile]) -> bool:
    """An entry of this version's format (read from its trailer)."""
    from compassion_audio.speech.cache import CACHE_FORMAT

    try:
        with open(group[0].path, "rb") as fh:
            return read_trailer(fh).get("format") == CACHE_FORMAT
    except (OSError, BadEntry):
        return False


def stored_text(f: CacheFile) -> str | None:
    """The phrase an entry holds (a format-6 sidecar's too); None if it has none or is unreadable."""
    try:
        if f.kind == "sidecar":
            text = json.loads(f.path.read_text(encoding="utf-8")).get("text")
        else:
            with open(f.path, "rb") as fh:
                material = read_trailer(fh).get("material") or {}
            text = material.get("text") if isinstance(material, dict) else None
    except (OSError, ValueError, BadEntry, AttributeError):
        return None
    return text if isinstance(text, str) else None


def mentions(values: Iterable[str]) -> Callable[[CacheFile], bool]:
    """A test for ``clear(matching=...)``: the entry's text contains any of ``values`` as whole
    words, ignoring case. Entries whose text cannot be read are matched too (they may be
    anyone's). The older format's .npy has no text of its own: its sidecar decides."""
    words = sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)",
                         re.IGNORECASE) if words else None
    chosen: dict[str, bool] = {}

    def test(f: CacheFile) -> bool:
        if pattern is None:
            return False
        if f.key not in chosen:
            sidecar = f.path.with_suffix(".json")
            source = CacheFile(sidecar, f.key, 0, 0.0, "sidecar") if f.kind == "entry" and \
                os.path.exists(sidecar) else f
            text = stored_text(source)
            chosen[f.key] = text is None or bool(pattern.search(text))
        return chosen[f.key]

    return test
