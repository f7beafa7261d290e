"""Bells: measured partials and decay of the singing bowl, loading a user's bell, ring time."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import wavfile

from compassion_audio.sound.bells import load_bell, ring_frames, singing_bowl
from compassion_audio.core.errors import AudioError

SR = 44100
BOWL_RATIOS = (1.0, 2.71, 5.13, 8.21)


@pytest.fixture(scope="module")
def bowl():
    return singing_bowl(SR)


def spectrum(x, sample_rate=SR):
    n = 1 << 20
    mag = np.abs(np.fft.rfft(x * np.hanning(x.size), n))
    return np.fft.rfftfreq(n, 1.0 / sample_rate), mag


def band_db(x, hz, width=0.02):
    freqs, mag = spectrum(x)
    band = (freqs > hz * (1 - width)) & (freqs < hz * (1 + width))
    return 20 * np.log10(mag[band].max())


def window_rms_db(x, seconds, sample_rate=SR):
    n = int(seconds * sample_rate)
    chunks = x[:x.size // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(chunks ** 2, axis=1))


def test_bowl_shape_length_peak_and_silent_edges(bowl):
    assert bowl.dtype == np.float32 and bowl.shape == (8 * SR,)
    assert np.abs(bowl).max() == pytest.approx(1.0, abs=1e-6)
    assert bowl[-1] == 0.0 and abs(bowl[0]) < 1e-6
    assert np.array_equal(bowl, singing_bowl(SR))  # deterministic


@pytest.mark.parametrize("ratio", BOWL_RATIOS)
def test_bowl_partials_are_at_singing_bowl_ratios(bowl, ratio):
    freqs, mag = spectrum(bowl[:2 * SR])
    target = 196.0 * ratio
    band = (freqs > target * 0.97) & (freqs < target * 1.03)
    found = freqs[band][np.argmax(mag[band])]
    assert found == pytest.approx(target, rel=0.005)
    assert 20 * np.log10(mag[band].max() / mag.max()) > -40.0  # a real partial, not leakage


def test_bowl_decays_monotonically_and_higher_partials_die_sooner(bowl):
    levels = window_rms_db(bowl, 1.0)
    assert np.all(np.diff(levels) < 0), levels
    early, late = bowl[:SR // 2], bowl[2 * SR:2 * SR + SR // 2]
    drops = [band_db(early, 196.0 * r) - band_db(late, 196.0 * r) for r in BOWL_RATIOS[:3]]
    assert drops[0] < drops[1] < drops[2], drops


def test_bowl_other_rates_and_pitches():
    low = singing_bowl(22050, fundamental_hz=130.0, seconds=5.0)
    assert low.shape == (5 * 22050,) and np.abs(low).max() == pytest.approx(1.0, abs=1e-6)
    freqs, mag = spectrum(low[:22050], 22050)
    assert freqs[np.argmax(mag)] == pytest.approx(130.0, rel=0.01)


def test_ring_frames_of_a_known_exponential_decay():
    tau = 0.8
    t = np.arange(5 * SR) / SR
    tone = (np.exp(-t / tau) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for drop in (20.0, 40.0):
        expected = tau * np.log(10 ** (drop / 20)) * SR  # amplitude falls drop_db at tau*ln(10^(drop/20))
        assert ring_frames(tone, SR, drop) == pytest.approx(expected, abs=0.03 * SR)


def test_ring_frames_of_the_bowl(bowl):
    twenty, thirty = ring_frames(bowl, SR), ring_frames(bowl, SR, 30.0)
    assert 2 * SR < twenty < thirty < bowl.size
    assert ring_frames(np.zeros(SR, dtype=np.float32), SR) == 0


def test_load_bell_trims_silence_normalises_and_fades(tmp_path):
    rate = 22050
    t = np.arange(3 * rate) / rate
    tone = 0.3 * np.exp(-t / 0.7) * np.sin(2 * np.pi * 523.0 * t)
    data = np.concatenate([np.zeros(rate // 2), tone]).astype(np.float32)
    path = tmp_path / "bell.wav"
    wavfile.write(path, rate, data)
    bell = load_bell(path, SR)
    assert bell.dtype == np.float32 and bell.ndim == 1
    assert np.abs(bell).max() == pytest.approx(1.0, abs=1e-6)
    onset = np.flatnonzero(np.abs(bell) > 0.01)[0]
    assert onset < 0.005 * SR  # leading half second gone, strike kept
    assert bell.size == pytest.approx(3 * SR + 0.003 * SR, abs=0.01 * SR)
    assert bell[-1] == 0.0
    freqs, mag = spectrum(bell[:SR])
    assert freqs[np.argmax(mag)] == pytest.approx(523.0, abs=1.0)


def test_load_bell_errors_are_audio_errors(tmp_path):
    junk = tmp_path / "not-audio.wav"
    junk.write_text("hello")
    with pytest.raises(AudioError, match="cannot decode"):
        load_bell(junk, SR)
    silent = tmp_path / "silent.wav"
    wavfile.write(silent, SR, np.zeros(SR, dtype=np.float32))
    with pytest.raises(AudioError, match="no audible sound"):
        load_bell(silent, SR)
