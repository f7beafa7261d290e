"""The clip cache: where it lives, keys, atomic entries, corruption and clearing."""
from __future__ import annotations

import errno
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core.audio import Audio
from compassion_audio.speech import cache_upkeep as upkeep
from compassion_audio.speech.cache import CACHE_FORMAT, CacheUnavailable, ClipCache, PhraseKey, default_cache_dir
from compassion_audio.speech.clip_processing import process_clip
from compassion_audio.speech.engines.pack_engine import mute_room_noise

IDENTITY = {"engine": "fake", "voice": "v1", "rate_wpm": 130}


@pytest.fixture
def cache(tmp_path):
    with ClipCache(tmp_path / "clips") as c:
        yield c


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


def key(text: str, rate: int = 44100, identity: dict = IDENTITY) -> PhraseKey:
    return PhraseKey(identity, text, rate)


def test_key_is_stable_and_sensitive_to_every_input():
    base = key("Breathe in.").hex
    assert base == key("Breathe in.", identity=dict(reversed(list(IDENTITY.items())))).hex
    assert set(base) <= set("0123456789abcdef") and len(base) == 64  # a sha256 hex digest
    others = {key("Breathe in.", identity={**IDENTITY, "rate_wpm": 120}).hex,
              key("Breathe out.").hex, key("Breathe in.", 48000).hex}
    assert base not in others and len(others) == 3


def test_put_then_get_round_trips_exactly(cache):
    k = key("Sarah, notice the breath.")
    samples = ramp(5000)
    clip = cache.put(k, samples, 441, 1764)
    assert (clip.frames, clip.lead_frames, clip.tail_frames) == (5000, 441, 1764)
    again = cache.get(k)
    assert again == clip
    assert np.array_equal(np.load(again.path), samples)
    assert np.array_equal(np.load(again.path, mmap_mode="r"), samples)  # as the mixer reads it
    names = [p.name for p in cache.root.rglob("*")]
    assert not any("Sarah" in n or ".partial" in n for n in names)


def test_missing_key_is_a_miss(cache):
    assert cache.get(key("never stored")) is None


def test_clear_and_size(cache, tmp_path):
    for i in range(3):
        cache.put(key(f"phrase {i}"), ramp(), 0, 0)
    assert upkeep.cache_info(cache.root).size_bytes >= 3 * 4000
    foreign = cache.root / "notes.txt"  # the root may be a folder the user shares
    foreign.write_text("keep me")
    cache.close()
    assert upkeep.clear(cache.root).removed == 3
    assert upkeep.cache_info(cache.root).size_bytes == 0 and foreign.exists()
    assert upkeep.clear(tmp_path / "absent").removed == 0


def test_temporary_cache_is_removed_afterwards():
    with ClipCache.temporary() as cache:
        clip = cache.put(key("x"), ramp(), 0, 0)
        assert clip.path.exists()
        root = cache.root
    assert not root.exists()


def test_a_failed_put_keeps_no_temp_and_the_render_goes_on_without_the_cache(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    k = key("Soften.")
    real_write = Path.write_bytes

    def half_then_full(self, data):
        if self.parent.parent == cache.root:
            real_write(self, data[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.warns(CacheUnavailable, match=r"the phrase cache at .*clips cannot be written "
                                              r"\(No space left on device\); rendering without it"):
        clip = cache.put(k, ramp(2000), 10, 20)
    monkeypatch.undo()
    assert not clip.path.is_relative_to(cache.root)
    assert np.array_equal(np.load(clip.path), ramp(2000))
    assert [p.name for p in cache.root.rglob("*.npy")] == []  # nothing half-written in the cache
    assert cache.get(k) == clip  # the clip is found where it was kept instead
    cache.close()
    assert not clip.path.exists()


def test_a_temp_file_left_by_a_crash_is_cleared(cache):
    k = key("Soften.")
    clip = cache.put(k, ramp(), 10, 20)
    left = clip.path.parent / f".{k.hex}.k3x_9abc.partial.npy"  # files.atomic_output's temp name
    left.write_bytes(b"half")
    cache.close()
    assert upkeep.clear(cache.root).removed == 1
    assert not clip.path.parent.exists()


def speechlike(rate: int = 22050) -> Audio:
    """Engine-like output: silence, 1.2 s of harmonics with a syllable envelope and one click, silence."""
    t = np.arange(int(1.2 * rate)) / rate
    voiced = sum(np.sin(2 * math.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560, 1200), 1))
    body = 0.25 * voiced * (0.5 - 0.5 * np.cos(2 * math.pi * 3.0 * t))
    body[int(0.5 * rate)] = 0.9  # a click: the peak cap has work to do
    samples = np.concatenate([np.zeros(int(0.3 * rate)), body, np.zeros(int(0.4 * rate))])
    return Audio(samples.astype(np.float32), rate)


def room_take(rate: int = 44100) -> Audio:
    """A recording: room noise at about -54 dBFS with a 0.8 s tone in it."""
    x = 0.002 * np.random.default_rng(7).standard_normal(2 * rate)
    t = np.arange(int(0.8 * rate)) / rate
    x[int(0.6 * rate):int(0.6 * rate) + t.size] += 0.3 * np.sin(2 * math.pi * 220 * t)
    return Audio(x.astype(np.float32), rate)


def figures(x: np.ndarray) -> tuple:
    """Length, first and last non-zero frame, energy, and the energy of the edges (the fades)."""
    x64 = x.astype(np.float64)
    sounding = np.flatnonzero(x64)
    first, last = int(sounding[0]), int(sounding[-1])
    return (x.shape[0], first, last, float(np.sum(x64 ** 2)),
            float(np.sum(np.abs(x64[first:first + 500]))), float(np.sum(np.abs(x64[last - 499:last + 1]))))


PINNED = {
    7: {"clip": (440, 1764, 0.297553251, (54228, 1, 52481, 367.470698, 1.20440133, 52.6844691)),
        "take": (88200, 25138, 63061, 1587.81845, 0.0848394363, 0.0919840056)},
}
"""What the processing made of the two signals above, by cache format."""


def test_processing_is_pinned_to_the_cache_format():
    """Processing that changes a stored clip must bump CACHE_FORMAT, or old cached clips
    would be mixed with new ones: when this fails, bump CACHE_FORMAT in speech/cache.py
    and pin the new figures under the new number."""
    clip = process_clip(speechlike(), 44100, "a phrase")
    got_clip = (clip.lead_frames, clip.tail_frames, clip.true_peak, figures(clip.samples))
    got_take = figures(mute_room_noise(room_take()).samples)
    pinned = PINNED.get(CACHE_FORMAT)
    assert pinned is not None, f"pin the figures for CACHE_FORMAT {CACHE_FORMAT}: {got_clip}, {got_take}"
    lead, tail, peak, clip_figures = pinned["clip"]
    assert (got_clip[0], got_clip[1]) == (lead, tail)
    assert got_clip[2] == pytest.approx(peak, rel=1e-5)
    for got, want in ((got_clip[3], clip_figures), (got_take, pinned["take"])):
        assert got[:3] == want[:3]
        assert got[3:] == pytest.approx(want[3:], rel=1e-5)
