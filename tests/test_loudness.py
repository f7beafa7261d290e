"""Loudness meter against BS.1770 figures and ffmpeg's ebur128; the limiter's ceiling and smoothness."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import lfilter

from compassion_audio.core.loudness import LoudnessMeter, PeakLimiter, k_weighting_sos, limit
from compassion_audio.core.tools import ffmpeg_exe

SR = 44100


def sine(hz, seconds, amplitude, sample_rate=SR, phase=0.0):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t + phase)).astype(np.float32)


def measure(x, sample_rate=SR, block=None):
    meter = LoudnessMeter(sample_rate, 1 if x.ndim == 1 else x.shape[1])
    size = block or max(1, x.shape[0])
    for i in range(0, x.shape[0], size):
        meter.add(x[i:i + size])
    return meter


def speech_like(seconds, channels, seed=0, sample_rate=SR):
    """Noise shaped like speech: a voiced low band and a hiss band, in syllables, words and pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.23 * t + 1.0) > -0.3).astype(float)
    voiced = lfilter([1.0], [1.0, -1.6, 0.8], rng.standard_normal(n))
    hiss = np.diff(rng.standard_normal(n + 1))
    mono = (0.05 * voiced + 0.02 * hiss) * syllables * phrases
    out = np.stack([mono * (1.0 - 0.2 * c) + 0.01 * rng.standard_normal(n) * phrases
                    for c in range(channels)], axis=1)
    return out.astype(np.float32)


def test_k_weighting_matches_the_bs1770_table_at_48k():
    sos = k_weighting_sos(48000)
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-9)
    np.testing.assert_allclose(sos[0, 3:], [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(sos[1, :3], [1.0, -2.0, 1.0])
    np.testing.assert_allclose(sos[1, 3:], [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("sample_rate", [44100, 48000, 22050])
def test_sine_at_minus_20_dbfs_reads_per_bs1770(sample_rate):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    x = sine(997, 10, 0.1, sample_rate)
    assert measure(x, sample_rate).integrated_lufs() == pytest.approx(-23.0, abs=0.1)
    assert measure(np.stack([x, x], axis=1), sample_rate).integrated_lufs() == pytest.approx(-20.0, abs=0.1)
    assert measure(sine(1000, 10, 0.1, sample_rate), sample_rate).integrated_lufs() == pytest.approx(-23.0, abs=0.1)


def test_silence_and_short_input_read_minus_infinity():
    assert measure(np.zeros(10 * SR, dtype=np.float32)).integrated_lufs() == -np.inf
    assert measure(sine(1000, 0.39, 0.5)).integrated_lufs() == -np.inf
    assert LoudnessMeter(SR, 2).integrated_lufs() == -np.inf


def test_relative_gate_ignores_quiet_passages():
    loud = sine(1000, 10, 0.1)
    quiet = sine(1000, 10, 0.001)  # -60 dBFS: above the absolute gate, far below the relative one
    assert measure(np.concatenate([loud, quiet])).integrated_lufs() == pytest.approx(-23.0, abs=0.1)


def test_true_peak_catches_inter_sample_peaks():
    # Quarter-rate sine at 45 degrees: every sample is at 0.707 of the real peak.
    meter = measure(sine(SR / 4, 2, 0.5, phase=np.pi / 4))
    assert meter.sample_peak_db() == pytest.approx(-9.03, abs=0.02)
    assert meter.true_peak_db() == pytest.approx(-6.02, abs=0.1)


def test_meter_is_independent_of_block_boundaries():
    x = speech_like(12, 2)
    whole = measure(x)
    for block in (4410, 65536, 100003):
        split = measure(x, block=block)
        assert split.integrated_lufs() == pytest.approx(whole.integrated_lufs(), abs=1e-6)
        assert split.true_peak_db() == pytest.approx(whole.true_peak_db(), abs=1e-3)
        assert split.sample_peak_db() == whole.sample_peak_db()
    prefix = x[:SR]  # tiny blocks are slow in Python: one second, seven frames at a time
    assert measure(prefix, block=7).integrated_lufs() == pytest.approx(measure(prefix).integrated_lufs(), abs=1e-6)
    assert measure(prefix, block=7).true_peak_db() == pytest.approx(measure(prefix).true_peak_db(), abs=1e-3)


@pytest.mark.parametrize("channels", [1, 2])
def test_silent_blocks_skip_the_filter_without_changing_a_step(channels):
    """Digital silence after the filter has rung out is counted as zero power, not filtered:
    every 100 ms step equals the plain K-filter computation over the whole signal."""
    from scipy.signal import sosfilt

    from compassion_audio.core.loudness import k_weighting_sos

    rng = np.random.default_rng(3)
    sound = lambda seconds: 0.1 * rng.standard_normal((int(seconds * SR), channels))  # noqa: E731
    x = np.concatenate([sound(2.05), np.zeros((int(9.3 * SR), channels)), sound(1.0),
                        np.zeros((70001, channels)), sound(0.5)])
    meter = LoudnessMeter(SR, channels, true_peak=False)
    for i in range(0, x.shape[0], 4096):
        meter.add(x[i:i + 4096] if channels > 1 else x[i:i + 4096, 0])
    power = np.square(sosfilt(k_weighting_sos(SR), x, axis=0)).sum(axis=1)
    step = meter.step_frames
    expected = power[: power.size // step * step].reshape(-1, step).mean(axis=1)
    got = meter.step_powers()
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-24)
    assert (got == 0.0).sum() >= 80  # most of the silence was skipped, not filtered


def ffmpeg_ebur128(path):
    proc = subprocess.run([ffmpeg_exe(), "-nostats", "-hide_banner", "-i", str(path),
                           "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True)
    summary = proc.stderr[proc.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    true_peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    return integrated, true_peak


@pytest.mark.parametrize("channels, seed", [(1, 1), (2, 2)])
def test_meter_agrees_with_ffmpeg_ebur128(tmp_path, channels, seed):
    x = speech_like(20, channels, seed)
    x = x[:, 0] if channels == 1 else x
    path = tmp_path / "speechlike.wav"
    wavfile.write(path, SR, x)
    ff_integrated, ff_peak = ffmpeg_ebur128(path)
    ours = measure(x, block=10000)
    assert ours.integrated_lufs() == pytest.approx(ff_integrated, abs=0.3)
    assert ours.true_peak_db() == pytest.approx(ff_peak, abs=0.3)


@pytest.fixture(scope="module")
def loud_material():
    rng = np.random.default_rng(11)
    noise = (0.4 * rng.standard_normal((8 * SR, 2))).astype(np.float32)
    noise[3 * SR:4 * SR] *= 3.0
    return {"noise": noise, "quarter-rate sine": sine(SR / 4 + 0.3, 3, 1.6)[:, None]}


@pytest.mark.parametrize("name", ["noise", "quarter-rate sine"])
def test_limiter_holds_the_ceiling(loud_material, name):
    x = loud_material[name]
    y = limit(x, SR, -1.0)
    assert y.shape == x.shape and y.dtype == np.float32
    meter = measure(y)
    assert meter.sample_peak_db() <= -1.0
    assert meter.true_peak_db() <= -1.0 + 0.05


def test_limiter_leaves_quiet_audio_alone_and_delays_exactly():
    x = speech_like(3, 1)[:, 0] * 0.5  # peaks far under -1 dBFS
    limiter = PeakLimiter(SR, 1)
    y = np.concatenate([limiter.process(x), limiter.flush()])
    assert y.size == x.size + limiter.latency_frames
    assert not y[:limiter.latency_frames].any()
    np.testing.assert_allclose(y[limiter.latency_frames:], x, atol=1e-7)
    assert limiter.latency_frames == round(0.005 * SR) + 16


def test_limiter_gain_moves_smoothly():
    quiet, loud = sine(1000, 1, 0.2), sine(1000, 1, 2.0)  # +6 dBFS burst between quiet passages
    x = np.concatenate([quiet, loud, quiet])
    y = limit(x, SR, -1.0).astype(np.float64)
    voiced = np.abs(x) > 0.05
    gain = y[voiced] / x[voiced]
    # The gain reaches ~0.44 within the 5 ms look-ahead: a ramp, never a step.
    window = round(0.005 * SR)
    assert np.abs(np.diff(gain)).max() < 3.0 / window
    assert gain.min() == pytest.approx(10 ** (-1.1 / 20) / 2.0, rel=0.02)
    assert gain[-100:].min() > 0.999  # released by the end of the last quiet second


def test_limiter_is_independent_of_block_boundaries(loud_material):
    x = loud_material["noise"]
    whole = limit(x, SR)
    limiter = PeakLimiter(SR, 2)
    rng = np.random.default_rng(4)
    cuts = np.unique(np.concatenate([[0, x.shape[0]], rng.integers(0, x.shape[0], 60)]))
    parts = [limiter.process(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:])] + [limiter.flush()]
    split = np.concatenate(parts)[limiter.latency_frames:]
    np.testing.assert_allclose(split, whole, atol=2e-6)
    np.testing.assert_array_equal(limit(x, SR), whole)  # deterministic
