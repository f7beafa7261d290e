"""The clip cache: where it lives, keys, atomic entries, corruption and clearing."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from compassion_audio.speech.cache import ClipCache, default_cache_dir

IDENTITY = {"engine": "fake", "voice": "v1", "rate_wpm": 130}


@pytest.fixture
def cache(tmp_path):
    return ClipCache(tmp_path / "clips")


def ramp(frames: int = 1000) -> np.ndarray:
    return np.linspace(-0.5, 0.5, frames, dtype=np.float32)


def test_env_override_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPASSION_AUDIO_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is the Linux rule")
def test_xdg_cache_home_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("COMPASSION_AUDIO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "compassion-audio"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "compassion-audio"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # invalid per the spec: ignored
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "compassion-audio"


@pytest.mark.parametrize("platform, parts", [
    ("darwin", ("home", "Library", "Caches", "compassion-audio")),
    ("win32", ("local", "compassion-audio", "Cache")),
])
def test_other_platforms(monkeypatch, tmp_path, platform, parts):
    monkeypatch.delenv("COMPASSION_AUDIO_CACHE", raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == tmp_path.joinpath(*parts)


def test_key_is_stable_and_sensitive_to_every_input(cache):
    base = cache.key(IDENTITY, "Breathe in.", 44100)
    assert base == cache.key(dict(reversed(list(IDENTITY.items()))), "Breathe in.", 44100)
    assert len(base) == 64 and int(base, 16) >= 0
    others = {cache.key({**IDENTITY, "rate_wpm": 120}, "Breathe in.", 44100),
              cache.key(IDENTITY, "Breathe out.", 44100),
              cache.key(IDENTITY, "Breathe in.", 48000)}
    assert base not in others and len(others) == 3


def test_put_then_get_round_trips_exactly(cache):
    key = cache.key(IDENTITY, "Sarah, notice the breath.", 44100)
    samples = ramp(5000)
    clip = cache.put(key, "Sarah, notice the breath.", samples, 441, 1764)
    assert (clip.frames, clip.lead_frames, clip.tail_frames) == (5000, 441, 1764)
    again = cache.get(key)
    assert again == clip
    assert np.array_equal(np.load(again.path), samples)
    names = [p.name for p in cache.root.rglob("*")]
    assert not any("Sarah" in n or n.startswith(".tmp-") for n in names)


def test_missing_key_is_a_miss(cache):
    assert cache.get(cache.key(IDENTITY, "never stored", 44100)) is None


@pytest.mark.parametrize("damage", ["truncate-npy", "garbage-json", "no-sidecar", "wrong-frames"])
def test_a_corrupt_entry_is_a_miss_and_can_be_rewritten(cache, damage):
    key = cache.key(IDENTITY, "Soften.", 44100)
    clip = cache.put(key, "Soften.", ramp(), 10, 20)
    sidecar = clip.path.with_suffix(".json")
    if damage == "truncate-npy":
        clip.path.write_bytes(clip.path.read_bytes()[:300])
    elif damage == "garbage-json":
        sidecar.write_text("{not json")
    elif damage == "no-sidecar":
        sidecar.unlink()
    else:
        sidecar.write_text(sidecar.read_text().replace('"frames": 1000', '"frames": 999'))
    assert cache.get(key) is None
    cache.put(key, "Soften.", ramp(), 10, 20)
    assert cache.get(key) == clip


def test_clear_and_size(cache, tmp_path):
    for i in range(3):
        cache.put(cache.key(IDENTITY, f"phrase {i}", 44100), f"phrase {i}", ramp(), 0, 0)
    assert cache.size_bytes() >= 3 * 4000
    foreign = cache.root / "notes.txt"  # the root may be a folder the user shares
    foreign.write_text("keep me")
    assert cache.clear() == 6
    assert cache.size_bytes() == 0 and foreign.exists()
    assert ClipCache(tmp_path / "absent").clear() == 0


def test_temporary_cache_is_removed_afterwards():
    with ClipCache.temporary() as cache:
        clip = cache.put(cache.key(IDENTITY, "x", 44100), "x", ramp(), 0, 0)
        assert clip.path.exists()
        root = cache.root
    assert not root.exists()
