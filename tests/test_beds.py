"""Ambient beds and ducking: measured level, stereo decorrelation, seamless loops, smooth dips."""
from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.io import wavfile

from compassion_audio.sound.beds import BED_NAMES, Bed, duck_gain
from compassion_audio.core.errors import AudioError, ParameterError

SR = 22050  # beds are level and texture, not pitch: half rate keeps the tests quick


@pytest.fixture(scope="module", params=BED_NAMES)
def stereo_bed(request):
    return Bed.generated(request.param, SR, 2)


def db(x):
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def assert_no_level_jump(bed, seconds=0.25):
    """Level change across the seam is no bigger than between neighbouring windows elsewhere."""
    w = int(seconds * SR)
    around = bed.block(bed.loop_frames - w, 2 * w)
    jump = abs(db(around[:w]) - db(around[w:]))
    windows = bed.loop[:bed.loop_frames // w * w].reshape(-1, w, bed.channels)
    levels = np.array([db(c) for c in windows])
    assert jump <= np.percentile(np.abs(np.diff(levels)), 99)


def test_bed_level_shape_and_decorrelation(stereo_bed):
    loop = stereo_bed.loop
    assert loop.dtype == np.float32 and loop.shape == (60 * SR, 2)
    for ch in range(2):
        assert db(loop[:, ch]) == pytest.approx(-20.0, abs=0.01)
    assert abs(np.corrcoef(loop[:, 0], loop[:, 1])[0, 1]) < 0.3
    assert np.abs(loop).max() < 1.0


def test_bed_loop_seam_is_inaudible(stereo_bed):
    loop = stereo_bed.loop.astype(np.float64)
    seam = stereo_bed.block(stereo_bed.loop_frames - SR, 2 * SR).astype(np.float64)
    steps = np.abs(np.diff(loop, axis=0))
    at_seam = np.abs(seam[SR] - seam[SR - 1])
    assert np.all(at_seam <= np.percentile(steps, 99.99, axis=0))
    assert_no_level_jump(stereo_bed)


def test_block_is_a_pure_function_of_absolute_frames(stereo_bed):
    start, frames = 3 * stereo_bed.loop_frames - 12345, 3 * SR
    whole = stereo_bed.block(start, frames)
    cuts = [0, 1, 999, 20000, 40001, frames]
    parts = [stereo_bed.block(start + a, b - a) for a, b in zip(cuts[:-1], cuts[1:])]
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(whole, stereo_bed.block(start - 7 * stereo_bed.loop_frames, frames))


def test_generated_beds_are_deterministic_and_seeded():
    a, b = Bed.generated("rain", SR, 1), Bed.generated("rain", SR, 1)
    assert a.loop.shape == (60 * SR, 1) and np.array_equal(a.loop, b.loop)
    assert not np.array_equal(a.loop, Bed.generated("rain", SR, 1, seed=1).loop)


def test_bed_spectra_differ_as_named():
    """Brown is darker than pink; waves swell (slow level changes) and pink does not."""
    def centroid(x):
        mag = np.abs(np.fft.rfft(x[:, 0]))
        return np.sum(np.fft.rfftfreq(x.shape[0], 1 / SR) * mag) / np.sum(mag)
    pink, brown = Bed.generated("pink", SR, 1).loop, Bed.generated("brown", SR, 1).loop
    assert centroid(brown) < 0.5 * centroid(pink)

    def swing(loop):
        levels = [db(c) for c in loop[:loop.shape[0] // SR * SR].reshape(-1, SR)]
        return max(levels) - min(levels)
    assert swing(Bed.generated("waves", SR, 1).loop) > 6.0 > 1.0 > swing(pink)


def test_unknown_background_names_the_choices():
    for call in (lambda: Bed.generated("whale", SR, 1), lambda: Bed.from_setting("whale", SR, 1)):
        with pytest.raises(ParameterError) as info:
            call()
        message = str(info.value)
        assert all(name in message for name in BED_NAMES) and "path" in message


@pytest.fixture(scope="module")
def mono_file(tmp_path_factory):
    """A 20 s mono 'recording': pink-ish noise that gets quieter towards its end."""
    rng = np.random.default_rng(3)
    noise = np.cumsum(rng.standard_normal(20 * 16000)) * 0.001
    noise -= np.convolve(noise, np.ones(401) / 401, mode="same")  # remove the drift
    noise *= np.linspace(1.0, 0.5, noise.size)
    path = tmp_path_factory.mktemp("bed") / "stream.wav"
    wavfile.write(path, 16000, noise.astype(np.float32))
    return path


def test_file_bed_loops_seamlessly_at_reference_level(mono_file):
    bed = Bed.from_setting(str(mono_file), SR, 2)
    loop = bed.loop.astype(np.float64)
    assert bed.name == "file" and loop.shape == (17 * SR, 2)  # 20 s minus the 3 s crossfade
    assert db(loop) == pytest.approx(-20.0, abs=0.01)
    assert abs(np.corrcoef(loop[:, 0], loop[:, 1])[0, 1]) < 0.3  # mono source made stereo
    seam = bed.block(bed.loop_frames - SR, 2 * SR).astype(np.float64)
    steps = np.abs(np.diff(loop, axis=0))
    assert np.all(np.abs(seam[SR] - seam[SR - 1]) <= np.percentile(steps, 99.99, axis=0))
    assert_no_level_jump(bed)
    # Equal-power crossfade: the 3 s blend keeps the level of its surroundings.
    assert db(loop[:3 * SR, 0]) == pytest.approx(db(loop[3 * SR:6 * SR, 0]), abs=1.5)


def test_file_bed_mono_and_errors(mono_file, tmp_path):
    assert Bed.from_file(mono_file, SR, 1).loop.shape[1] == 1
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="cannot decode"):
        Bed.from_file(junk, SR, 2)


DEPTH = 6.0
ATTACK, RELEASE = 0.25, 0.6


def duck(start, frames, speech, **kw):
    return duck_gain(start, frames, speech, sample_rate=SR, depth_db=DEPTH,
                     attack_seconds=ATTACK, release_seconds=RELEASE, **kw)


def test_duck_depth_lookahead_and_release():
    s, e = 10 * SR, 14 * SR
    g = duck(0, 20 * SR, [(s, e)]).astype(np.float64)
    low = 10 ** (-DEPTH / 20)
    assert g[:s - int(ATTACK * SR)] == pytest.approx(1.0)
    assert g[s:e] == pytest.approx(low, rel=1e-6)  # fully down as the voice begins
    assert g[s - int(ATTACK * SR / 2)] == pytest.approx(10 ** (-DEPTH / 40), rel=1e-3)  # half-way in dB
    assert g[e + int(RELEASE * SR):] == pytest.approx(1.0)
    # Smooth: the steepest step of a raised cosine over the attack, and no faster.
    steepest = np.log(10) * DEPTH / 20 * np.pi / (2 * ATTACK * SR)
    assert np.abs(np.diff(g)).max() <= steepest * 1.01


def test_short_gaps_stay_ducked_long_gaps_recover():
    low = 10 ** (-DEPTH / 20)
    short = int(0.5 * SR)  # < attack + release
    g = duck(0, 20 * SR, [(2 * SR, 4 * SR), (4 * SR + short, 6 * SR)])
    assert g[2 * SR:6 * SR] == pytest.approx(low, rel=1e-6)
    g = duck(0, 20 * SR, [(2 * SR, 4 * SR), (8 * SR, 10 * SR)])
    assert g[6 * SR] == pytest.approx(1.0)


def test_duck_block_split_and_many_intervals():
    rng = np.random.default_rng(5)
    starts = np.cumsum(rng.integers(SR // 4, SR, 3000))  # 3000 utterances in about half an hour
    ends = np.minimum(starts + rng.integers(SR // 8, SR, 3000), np.append(starts[1:], 10**12))
    speech = list(zip(starts.tolist(), ends.tolist()))
    total = speech[-1][1] + SR
    block = 1 << 16
    began = time.perf_counter()
    for b in range(0, total, block):
        duck(b, min(block, total - b), speech)
    assert time.perf_counter() - began < 3.0  # bisected to the block, not scanned
    excerpt = (total // 2, total // 2 + 5 * 60 * SR)
    whole = duck(excerpt[0], excerpt[1] - excerpt[0], speech)
    cuts = np.unique(np.concatenate([excerpt, rng.integers(*excerpt, 30)]))
    parts = [duck(int(a), int(b - a), speech) for a, b in zip(cuts[:-1], cuts[1:])]
    assert np.array_equal(np.concatenate(parts), whole)
    assert whole.min() == pytest.approx(10 ** (-DEPTH / 20), rel=1e-6) and whole.max() <= 1.0
