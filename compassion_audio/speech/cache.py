"""The phrase cache: processed speech clips on disk, keyed by engine identity, spoken text
and rate - shared safely by renders running at once, checked on every read, bounded."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from compassion_audio.core.errors import CacheUnavailable, OutputError, SpeechError
from compassion_audio.core.files import HeldFolder, atomic_output, held_folder, sweep_orphans
from compassion_audio.core.signals import stop_on_sigterm
from compassion_audio.core.timeline import Clip
from compassion_audio.speech import cache_locks
from compassion_audio.speech.cache_entry import BadEntry, encode_entry, read_entry
from compassion_audio.speech.cache_locks import PhraseLock, UseRecord, gate
from compassion_audio.speech.cache_upkeep import PRUNE_TO, cache_cap, prune

log = logging.getLogger(__name__)

CACHE_FORMAT = 7
"""Part of every clip's key and stored in every entry: bump it whenever what turns engine
audio into a stored clip changes - clip_processing (trim, fade, resample, peak cap, level
match) or an engine's own clean-up (pack_engine.mute_room_noise) - or the entry's layout
(cache_entry.py); every old clip then misses, and ``cache prune`` takes the old files first.

One number for all of them, kept by hand: engines put only what they read (voice, model,
recording, settings) into their identity, never a version of their own. A number derived
from the code was considered and refused: a hash of the source changes with every comment
and needs the source installed, and a hash of the parameters misses a change in the code.
tests/test_cache.py pins the processed output of fixed signals to this number, so a
change to the processing that forgets the bump fails there.
(7: entries carry a checksum and their key material in a trailer.)"""

SPOOL_PREFIX = "compassion-audio-clips-"
"""The temp folders of --no-cache renders and of renders whose cache cannot be written."""


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


@dataclass(frozen=True)
class PhraseKey:
    """What decides a clip: the engine's identity, the spoken text and the track rate."""

    identity: Mapping[str, object]
    text: str
    sample_rate: int

    @functools.cached_property
    def material(self) -> dict:
        """The key material as stored in an entry (JSON values: it is hashed as JSON)."""
        return json.loads(_canonical({"processing": CACHE_FORMAT, "identity": self.identity,
                                      "text": self.text, "sample_rate": int(self.sample_rate)}))

    @functools.cached_property
    def hex(self) -> str:
        return material_hex(self.material)


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def material_hex(material: object) -> str:
    """The sha256 of key material: an entry's file name, and what its stored material must hash to."""
    return hashlib.sha256(_canonical(material).encode("utf-8")).hexdigest()


class _State:
    """What a ClipCache holds open; closed by ClipCache.close() or, failing that, by the
    garbage collector (weakref.finalize), so a forgotten cache still lets go."""

    def __init__(self) -> None:
        self.record: UseRecord | None = None
        self.record_failed = False
        self.spool: _Spool | None = None
        self.broken: str | None = None
        self.written = 0


def _finish(state: _State, root: Path, cap: int | None) -> None:
    # The record goes first: this render is done with its entries, so they count for the
    # cap like any other (as the most recently used, they are the last to go).
    if state.record is not None:
        state.record.close()
    if state.spool is not None:
        state.spool.close()
    if state.written and cap is not None:
        with contextlib.suppress(OSError, OutputError):
            prune(root, cap, target=int(cap * PRUNE_TO), only_if_over=True, wait_seconds=1.0)


class ClipCache:
    """Clips under ``root/<2 hex>/<key>.npy``, one file each (cache_entry.py): the samples as
    a plain .npy the mixer maps, then a trailer with their sha256, length, rate and the key
    material - the spoken text and the voice's identity. The text is stored by design: a
    read compares it with the phrase asked for, and ``cache clear --client`` finds a
    client's phrases by it. File names are hashes only; files 0600, folders 0700.

    Shared by renders running at once: entries appear whole (temp + link) and the first
    complete entry of a phrase wins; a phrase one render is speaking is waited for by the
    others (``claim``); entries a running render uses are left alone by clear and prune.
    ``private``: a throwaway cache (--no-cache) whose entries hold no text, only hashes.
    ``max_bytes``: the cap a render that added entries prunes to on close ("env":
    $COMPASSION_AUDIO_CACHE_MAX, else cache_upkeep.DEFAULT_MAX_BYTES; None: no cap).
    """

    def __init__(self, root: Path, *, private: bool = False, max_bytes: int | None | str = "env") -> None:
        self.root = Path(root)
        self.private = private
        self.max_bytes = cache_cap() if max_bytes == "env" else max_bytes
        self._mutex = threading.RLock()
        self._root_checked = False
        self._state = _State()
        self._finalizer = weakref.finalize(self, _finish, self._state, self.root,
                                           None if private else self.max_bytes)

    def close(self) -> None:
        """Prune to the cap if this cache added entries, and let go of what it held."""
        self._finalizer()

    def __enter__(self) -> "ClipCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator["ClipCache"]:
        """A private cache in a fresh temp folder, removed on exit - on Ctrl-C and SIGTERM too
        (for --no-cache). It holds samples under hash names only: no text, no names. Folders
        that killed renders left are removed first."""
        with stop_on_sigterm():
            spool = _Spool.create()
            try:
                yield spool.cache
            finally:
                spool.close()

    def _path(self, hexkey: str) -> Path:
        return self.root / hexkey[:2] / f"{hexkey}.npy"

    def get(self, key: PhraseKey) -> Clip | None:
        """The cached clip, or None. A bad entry (damaged, of an older format, or stored for
        another phrase or voice) is a miss: it is removed unless a render is writing it."""
        spool = self._state.spool
        if spool is not None:
            found = spool.cache.get(key)
            if found is not None:
                return found
        path = self._path(key.hex)
        self._record(key.hex)
        clip, bad = self._read(key, path)
        if bad is not None:
            lock = self._lock(key.hex)
            if lock is None or _try(lock):
                try:
                    _remove_if(path, bad)
                finally:
                    if lock is not None:
                        lock.release()
        return clip

    def _read(self, key: PhraseKey, path: Path) -> tuple[Clip | None, os.stat_result | None]:
        """The entry at ``path`` if it is sound; else None and, for a bad one, its file's stat
        (so that exactly that file, not a good one written since, can be removed)."""
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            log.debug("cache entry %s unreadable (%s): a miss", key.hex[:16], exc.strerror)
            return None, None
        with fh:
            try:
                meta = read_entry(fh, cache_format=CACHE_FORMAT)
                self._check_key(meta, key)
            except BadEntry as bad:
                log.debug("cache entry %s rejected (%s): a miss, spoken again and replaced",
                          key.hex[:16], bad)
                return None, os.fstat(fh.fileno())
        with contextlib.suppress(OSError):
            os.utime(path)  # last used: prune takes the least recently used first
        return Clip(text=key.text, path=path, frames=int(meta["frames"]),
                    lead_frames=int(meta["lead_frames"]), tail_frames=int(meta["tail_frames"]),
                    true_peak=float(meta.get("true_peak", 1.0))), None

    def _check_key(self, meta: dict, key: PhraseKey) -> None:
        if meta.get("key") != key.hex:
            raise BadEntry("stored for another phrase or voice")
        if not self.private and material_hex(meta.get("material")) != key.hex:
            raise BadEntry("its text or voice is not the phrase asked for")
        if meta.get("sample_rate") != int(key.sample_rate):
            raise BadEntry(f"sample rate {meta.get('sample_rate')!r}, not {key.sample_rate}")

    def put(self, key: PhraseKey, samples: np.ndarray, lead_frames: int, tail_frames: int,
            true_peak: float = 1.0) -> Clip:
        """Store a processed clip and return it - or the entry another render completed first.
        A cache that cannot be written (full disk, no permission) is announced once and the
        clip kept in a private temp folder instead: a cache problem never fails a render."""
        data = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if not np.isfinite(data).all() or not data.any():
            raise SpeechError(f"the speech engine's audio for phrase {key.hex[:12]} is silent or not "
                              "finite; nothing was cached (try again, or another voice)")
        if self._state.broken is None:
            meta = {"format": CACHE_FORMAT, "key": key.hex, "sample_rate": int(key.sample_rate),
                    "lead_frames": int(lead_frames), "tail_frames": int(tail_frames),
                    "true_peak": float(true_peak)}
            if not self.private:
                meta["material"] = key.material
            try:
                return self._publish(key, encode_entry(data, meta), data.shape[0], meta)
            except OSError as exc:
                if self.private:  # the temp folder itself: nowhere left to keep the clip
                    raise OutputError(f"cannot keep the spoken phrases in {self.root} ({exc.strerror or exc}): "
                                      "free some space there, or set TMPDIR to a folder with room") from None
                self._give_up(exc)
        return self._spool().cache.put(key, data, lead_frames, tail_frames, true_peak)

    def _publish(self, key: PhraseKey, blob: bytes, frames: int, meta: dict) -> Clip:
        path = self._path(key.hex)
        clip = Clip(text=key.text, path=path, frames=frames, lead_frames=meta["lead_frames"],
                    tail_frames=meta["tail_frames"], true_peak=meta["true_peak"])
        for _ in range(5):
            try:
                self._make_folder(path.parent)
                self._record(key.hex)
                # Not durable (no fsync): every read checks the entry, and one lost to a
                # power cut is only a miss.
                with atomic_output(path, private=True, exclusive=True) as tmp:
                    tmp.write_bytes(blob)
            except FileNotFoundError:
                continue  # the folder was removed meanwhile (cache clear): make it again
            except FileExistsError:
                # Another render completed this phrase first: its entry wins if it is sound,
                # so concurrent renders use one take and write identical tracks.
                found, bad = self._read(key, path)
                if found is not None:
                    return found
                if bad is not None:
                    _remove_if(path, bad)
                continue
            with self._mutex:
                self._state.written += 1
            return clip
        raise OSError(f"the entry {path.name} kept changing while it was written")

    def claim(self, key: PhraseKey, *, timeout: float = cache_locks.WAIT_SECONDS,
              stop: threading.Event | None = None) -> PhraseLock | None:
        """Wait while another render speaks ``key`` (up to ``timeout`` seconds, or until ``stop``
        is set) and hold it until ``release()``: read the cache again once it is held. None
        where there is nothing to wait for (a private cache) or no lock can be had (no fcntl,
        an unwritable folder); a lock not ``held`` when another render kept it that long."""
        lock = self._lock(key.hex)
        if lock is None:
            return None
        started = time.monotonic()
        try:
            self._make_folder(None)
            got = lock.acquire(timeout, stop=stop)
        except OSError as exc:
            log.debug("no phrase lock in %s (%s)", self.root, exc.strerror)
            return None
        waited = time.monotonic() - started
        if not got and timeout >= cache_locks.WAIT_SECONDS:
            log.debug("waited %.0f s for another render speaking %s: speaking it here too",
                      waited, key.hex[:16])
        elif got and waited > 0.01:
            log.debug("waited %.2f s for another render speaking %s", waited, key.hex[:16])
        return lock

    def _lock(self, hexkey: str) -> PhraseLock | None:
        if self.private or self._state.broken is not None or not cache_locks.LOCKING:
            return None
        return PhraseLock(self.root / ".locks" / f"{hexkey}.lock")

    def _record(self, hexkey: str) -> None:
        """Note that this render uses ``hexkey`` before its entry is read or written, so a
        clear or prune meanwhile leaves it alone (see cache_locks.UseRecord)."""
        if self.private or not cache_locks.LOCKING:
            return
        with self._mutex:
            state = self._state
            if state.record is None and not state.record_failed:
                try:
                    self._make_folder(None)
                    state.record = UseRecord(self.root / ".inuse")
                except OSError as exc:
                    state.record_failed = True
                    log.debug("cannot record entries in use in %s (%s)", self.root, exc.strerror)
                    return
                # Once a render: what killed renders left (records, locks, temp folders).
                with contextlib.suppress(OSError):
                    cache_locks.remove_stale_records(self.root / ".inuse")
                    cache_locks.remove_stale_locks(self.root / ".locks")
                sweep_orphans(Path(tempfile.gettempdir()), SPOOL_PREFIX)
            if state.record is not None:
                with contextlib.suppress(OSError), gate(self.root / ".inuse", exclusive=False):
                    state.record.add(hexkey)

    def _make_folder(self, folder: Path | None) -> None:
        """The cache folder (0700) and ``folder`` in it (0700), made again if removed."""
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._root_checked = True
        elif not self._root_checked:
            _make_private(self.root)
            self._root_checked = True
        if folder is not None:
            folder.mkdir(exist_ok=True, mode=0o700)

    def _give_up(self, exc: OSError) -> None:
        with self._mutex:
            if self._state.broken is not None:
                return
            reason = exc.strerror or str(exc)
            self._state.broken = reason
        log.debug("cache %s cannot be written: %r", self.root, exc)
        warnings.warn(CacheUnavailable(f"the phrase cache at {self.root} cannot be written ({reason}); "
                                       "rendering without it"), stacklevel=2)

    def _spool(self) -> "_Spool":
        with self._mutex:
            if self._state.spool is None:
                self._state.spool = _Spool.create(instead_of=self.root, reason=self._state.broken)
            return self._state.spool


def _make_private(root: Path) -> None:
    """Make an existing cache folder 0700 if it is this user's and holds folders only (its
    own, and others' caches such as remembered voice identities) - never a folder of the
    user's own files that --cache-dir happens to name (there the entries stay 0600 in 0700
    folders)."""
    st = root.stat()
    if os.name != "posix" or not st.st_mode & 0o077 or st.st_uid != os.getuid():
        return
    if all(p.is_dir() for p in root.iterdir()):
        root.chmod(0o700)


def _try(lock: PhraseLock) -> bool:
    try:
        return lock.try_acquire()
    except OSError:
        return False


def _remove_if(path: Path, bad: os.stat_result) -> None:
    """Remove ``path`` if it is still the file found bad (not a sound entry written since)."""
    with contextlib.suppress(OSError):
        now = os.stat(path)
        if (now.st_dev, now.st_ino) == (bad.st_dev, bad.st_ino):
            os.unlink(path)


class _Spool:
    """A private cache in its own temp folder (0700, hash names, no text), held by its owner
    while it lives (core/files.HeldFolder) and removed on close; a killed owner's is swept
    by the next render."""

    def __init__(self, folder: HeldFolder) -> None:
        self.folder = folder.path
        self._held = folder
        self.cache = ClipCache(folder.path, private=True, max_bytes=None)

    @classmethod
    def create(cls, *, instead_of: Path | None = None, reason: str | None = None) -> "_Spool":
        parent = Path(tempfile.gettempdir())
        try:
            folder = held_folder(SPOOL_PREFIX, parent)
        except OSError as exc:
            if instead_of is None:
                raise OutputError(f"cannot make a temp folder in {parent} ({exc.strerror}): "
                                  "free some space there, or set TMPDIR to a folder with room") from None
            raise OutputError(f"the phrase cache at {instead_of} cannot be written ({reason}), nor the "
                              f"temp folder {parent} ({exc.strerror}): free some space, or point "
                              "--cache-dir or TMPDIR at a disk with room") from None
        return cls(folder)

    def close(self) -> None:
        self.cache.close()
        self._held.close()
