"""Every read of the phrase cache is checked: a damaged, old, or swapped entry is a miss,
removed and spoken again - never assembled into a track. Real renders with espeak-ng."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import struct

import numpy as np
import pytest

from compassion_audio.speech.cache import ClipCache, PhraseKey

from .cache_helpers import decoded, entry_for, entry_parts, newly_spoken, render, write_script

NAME = "Quintessa"
IDENTITY = {"engine": "fake", "voice": "v1"}


def _rewrite(path, *, samples=None, trailer=None, rehash=False) -> None:
    """Rewrite an entry's samples and/or trailer in place, keeping its .npy header."""
    raw = path.read_bytes()
    start, frames, meta, trailer_start = entry_parts(path)
    data = raw[start:trailer_start] if samples is None else np.asarray(samples, "<f4").tobytes()
    meta = dict(meta, **(trailer or {}))
    if rehash:
        meta["sha256"] = hashlib.sha256(data).hexdigest()
    text = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    path.write_bytes(raw[:start] + data + text + struct.pack("<Q", len(text)) + b"CAclip\r\n")


def zeroed(path, _):
    """The samples zeroed, trailer kept: the checksum fails."""
    frames = entry_parts(path)[1]
    _rewrite(path, samples=np.zeros(frames))


def zeroed_rehashed(path, _):
    """Zeroed with a matching checksum: silence where speech is expected."""
    _rewrite(path, samples=np.zeros(entry_parts(path)[1]), rehash=True)


def nan(path, _):
    frames = entry_parts(path)[1]
    _rewrite(path, samples=np.full(frames, np.nan))


def nan_rehashed(path, _):
    x = np.load(path).copy()
    x[::3] = np.nan
    _rewrite(path, samples=x, rehash=True)


def truncated(path, _):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path, _):
    path.write_bytes(np.random.default_rng(3).bytes(path.stat().st_size))


def empty(path, _):
    path.write_bytes(b"")


def wrong_size(path, _):
    raw = path.read_bytes()
    cut = entry_parts(path)[3]
    path.write_bytes(raw[:cut] + b"\0\0\0\0" + raw[cut:])


def old_format(path, _):
    """As format 6 wrote it: a bare .npy with a JSON sidecar (under this key, as if copied)."""
    x = np.load(path)
    with open(path, "wb") as fh:
        np.save(fh, x)
    path.with_suffix(".json").write_text(json.dumps({"frames": int(x.size), "lead_frames": 441,
                                                    "tail_frames": 1764, "text": "x", "processing": 6}))


def old_format_trailer(path, _):
    _rewrite(path, trailer={"format": 6})


def swapped(path, cache):
    """Two entries' files swapped: each is another phrase's clip under the right name."""
    other = entry_for(cache, "shoulders")
    tmp = path.with_suffix(".swap")
    path.rename(tmp)
    other.rename(path)
    tmp.rename(other)


DAMAGE = [zeroed, zeroed_rehashed, nan, nan_rehashed, truncated, garbage, empty, wrong_size,
          old_format, old_format_trailer, swapped]
REASON = {zeroed: "checksum mismatch", zeroed_rehashed: "samples all zero", nan: "checksum mismatch",
          nan_rehashed: "samples not finite", truncated: "no trailer", garbage: "no trailer",
          empty: "empty", wrong_size: "wrong size", old_format: "no trailer",
          old_format_trailer: "format 6, not 7", swapped: "stored for another phrase or voice"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean build: its samples and the cache it left."""
    folder = tmp_path_factory.mktemp("clean")
    script = write_script(folder)
    proc = render(script, folder / "clean.wav", name=NAME, cache=folder / "cache")
    assert proc.returncode == 0, proc.stderr
    return script, decoded(folder / "clean.wav"), folder / "cache"


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_bad_entry_is_spoken_again_and_the_track_equals_a_clean_build(clean, tmp_path, damage):
    script, clean_samples, clean_cache = clean
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    target = entry_for(cache, NAME + ".")  # "Welcome, Quintessa."
    damage(target, cache)
    proc = render(script, tmp_path / "again.wav", name=NAME, cache=cache, debug=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    # Only the damaged phrase (both, when two were swapped) was spoken again...
    assert newly_spoken(proc) == (2 if damage is swapped else 1)
    # ...one debug line said why, by key hash, never by text...
    rejected = [line for line in proc.stderr.splitlines() if "rejected" in line]
    assert rejected and all(NAME not in line for line in proc.stderr.splitlines())
    assert f"rejected ({REASON[damage]}" in rejected[0]
    assert target.stem[:16] in " ".join(rejected)
    # The entry was replaced by a sound one (read back by hand).
    start, frames, meta, _ = entry_parts(target)
    assert NAME in meta["material"]["text"] and meta["format"] == 7 and meta["frames"] == frames
    # ...and the track is sample for sample the clean one.
    again = decoded(tmp_path / "again.wav")
    respoken = {target, entry_for(cache, "shoulders")} if damage is swapped else {target}
    if any(not np.array_equal(np.load(p), np.load(clean_cache / p.parent.name / p.name)) for p in respoken):
        # espeak-ng through pyttsx3 speaks about one fresh worker in six a few frames
        # differently (measured: 4 runs in 25, every phrase 6-300 frames shorter). Then the
        # clean build to compare with is the clean cache holding this take.
        assert abs(again.size - clean_samples.size) < 0.001 * clean_samples.size
        reference = tmp_path / "reference"
        shutil.copytree(clean_cache, reference)
        for repaired in respoken:
            shutil.copy(repaired, reference / repaired.parent.name / repaired.name)
        proc = render(script, tmp_path / "reference.wav", name=NAME, cache=reference)
        assert newly_spoken(proc) == 0
        clean_samples = decoded(tmp_path / "reference.wav")
    assert again.shape == clean_samples.shape and np.array_equal(again, clean_samples)


def good_entry(tmp_path, text="Breathe gently.") -> tuple[ClipCache, PhraseKey]:
    cache = ClipCache(tmp_path / "c")
    key = PhraseKey(IDENTITY, text, 44100)
    t = np.arange(4000) / 44100
    cache.put(key, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 10, 20)
    return cache, key


@pytest.mark.parametrize("damage", [d for d in DAMAGE if d is not swapped], ids=lambda f: f.__name__)
def test_a_bad_entry_is_a_miss_logged_once_by_hash_and_removed(tmp_path, caplog, damage):
    cache, key = good_entry(tmp_path)
    path = cache.get(key).path
    damage(path, cache.root)
    with caplog.at_level(logging.DEBUG, logger="compassion_audio.speech.cache"):
        assert cache.get(key) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "compassion_audio.speech.cache"]
    assert len(lines) == 1 and key.hex[:16] in lines[0] and REASON[damage] in lines[0]
    assert "Breathe" not in lines[0]
    assert not path.exists()
    cache.close()


def test_an_entry_stored_for_another_phrase_is_refused_even_with_its_checksum_intact(tmp_path):
    """A swapped entry is sound audio - of the wrong words: the stored text is compared."""
    cache, key = good_entry(tmp_path)
    source = cache.get(key).path

    def planted(under: PhraseKey):
        path = cache.root / under.hex[:2] / f"{under.hex}.npy"
        path.parent.mkdir(exist_ok=True)
        shutil.copy(source, path)
        return path

    other = PhraseKey(IDENTITY, "Rest now.", 44100)
    planted(other)
    assert cache.get(other) is None
    # The same text in another voice is another phrase too.
    voice = PhraseKey({**IDENTITY, "voice": "v2"}, "Breathe gently.", 44100)
    planted(voice)
    assert cache.get(voice) is None
    # Even with its stored key rewritten to match, the key material (text, voice) decides.
    _rewrite(planted(other), trailer={"key": other.hex})
    assert cache.get(other) is None
    assert cache.get(key) is not None  # the original is untouched
    cache.close()


def test_an_entry_holds_its_text_and_voice_and_a_checksum_and_nothing_in_its_name(tmp_path):
    cache, key = good_entry(tmp_path, "Sarah, rest now.")
    path = cache.get(key).path
    start, frames, meta, _ = entry_parts(path)
    assert meta["material"] == {"processing": 7, "identity": IDENTITY, "text": "Sarah, rest now.",
                                "sample_rate": 44100}
    assert meta["sha256"] == hashlib.sha256(np.load(path).astype("<f4").tobytes()).hexdigest()
    assert (frames, meta["sample_rate"]) == (4000, 44100)
    assert path.name == f"{key.hex}.npy"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == oct(cache.root.stat().st_mode & 0o777) == "0o700"
    cache.close()


def test_a_private_cache_keeps_no_text(tmp_path):
    """--no-cache keeps clips in a temp folder: samples and hashes only."""
    with ClipCache.temporary() as cache:
        key = PhraseKey(IDENTITY, "Sarah, rest now.", 44100)
        clip = cache.put(key, np.full(100, 0.1, np.float32), 0, 0)
        meta = entry_parts(clip.path)[2]
        assert "material" not in meta and meta["key"] == key.hex
        assert not any(b"Sarah" in p.read_bytes() for p in cache.root.rglob("*") if p.is_file())
        assert cache.get(key) == clip
