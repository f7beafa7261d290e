"""On-disk cache of processed speech clips, keyed by engine identity, spoken text and rate."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from compassion_audio.core.timeline import Clip

PROCESSING_VERSION = 6
"""Bump whenever speech.py's trimming, fading or level-matching changes: old clips then miss."""

_HEX2 = re.compile(r"[0-9a-f]{2}")
_OURS = re.compile(r"([0-9a-f]{2})/(\1[0-9a-f]{62}\.(npy|json)|\.tmp-\w+)")


def default_cache_dir() -> Path:
    """$COMPASSION_AUDIO_CACHE, else the platform's per-user cache folder."""
    chosen = os.environ.get("COMPASSION_AUDIO_CACHE")
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "compassion-audio"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "compassion-audio" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "compassion-audio"


def _write_atomic(path: Path, write) -> None:
    """Write through a temp name in the same folder, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ClipCache:
    """Clips as float32 .npy files with a JSON sidecar, under ``root/<2 hex>/<key>``.

    File names are hashes only: the text (which may hold a client's name) is
    never in a file name. The sidecar holds the spoken text so ``get`` can
    return a whole ``Clip``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator["ClipCache"]:
        """A cache in a fresh temp folder, removed on exit (for --no-cache)."""
        folder = tempfile.mkdtemp(prefix="compassion-audio-clips-")
        try:
            yield cls(Path(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def key(identity: dict, text: str, sample_rate: int) -> str:
        canonical = json.dumps(
            {"processing": PROCESSING_VERSION, "identity": identity, "text": text,
             "sample_rate": int(sample_rate)},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npy", folder / f"{key}.json"

    def get(self, key: str) -> Clip | None:
        """The cached clip, or None when absent or unreadable (a corrupt entry is a miss)."""
        npy, sidecar = self._paths(key)
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            samples = np.load(npy, mmap_mode="r", allow_pickle=False)
            frames, lead, tail = int(meta["frames"]), int(meta["lead_frames"]), int(meta["tail_frames"])
            text = str(meta["text"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if (samples.dtype != np.float32 or samples.ndim != 1 or samples.shape[0] != frames
                or lead < 0 or tail < 0 or lead + tail > frames):
            return None
        return Clip(text=text, path=npy, frames=frames, lead_frames=lead, tail_frames=tail,
                    true_peak=float(meta.get("true_peak", 1.0)))

    def put(self, key: str, text: str, samples: np.ndarray, lead_frames: int,
            tail_frames: int, true_peak: float = 1.0) -> Clip:
        """Store a processed clip atomically (samples first; the sidecar marks it complete)."""
        npy, sidecar = self._paths(key)
        npy.parent.mkdir(parents=True, exist_ok=True)
        data = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        meta = {"frames": int(data.shape[0]), "lead_frames": int(lead_frames),
                "tail_frames": int(tail_frames), "text": text, "true_peak": float(true_peak),
                "processing": PROCESSING_VERSION}
        # Remove the sidecar first so a crash between the two writes leaves a miss.
        sidecar.unlink(missing_ok=True)
        _write_atomic(npy, lambda fh: np.save(fh, data, allow_pickle=False))
        _write_atomic(sidecar, lambda fh: fh.write(json.dumps(meta, ensure_ascii=False).encode("utf-8")))
        return Clip(text=text, path=npy, frames=meta["frames"], lead_frames=int(lead_frames),
                    tail_frames=int(tail_frames), true_peak=float(true_peak))

    def _files(self) -> list[Path]:
        """Only files this cache wrote: the root may be a folder the user shares with others."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.glob("*/*")
                if _OURS.fullmatch(f"{p.parent.name}/{p.name}") and p.is_file()]

    def clear(self) -> int:
        """Remove every cached clip (and any half-written temp file); return files removed."""
        removed = 0
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        for folder in self.root.glob("*") if self.root.is_dir() else []:
            if folder.is_dir() and _HEX2.fullmatch(folder.name):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return removed

    def size_bytes(self) -> int:
        total = 0
        for path in self._files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total
