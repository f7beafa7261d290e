"""Breathing-pace tones: pattern arithmetic, measured pitch, exact frame timing, block invariance."""
from __future__ import annotations

import numpy as np
import pytest

from compassion_audio.core.settings import BreathingSettings
from compassion_audio.core.errors import ParameterError
from compassion_audio.sound.tones import STYLES, BreathPattern, cycle_start_frame, render_tones, whole_cycles

SR = 44100


def render(pattern, style, frames, *, start=0, sample_rate=SR, block=None):
    """Render a stretch [start, start + frames) from frame 0, in one call or in blocks."""
    total = start + frames
    size = block or total
    parts = [render_tones(pattern, style, stretch_start=start, stretch_end=total, block_start=b,
                          block_frames=min(size, total - b), sample_rate=sample_rate)
             for b in range(0, total, size)]
    return np.concatenate(parts)


def peak_hz(x, sample_rate=SR):
    """Frequency of the strongest FFT bin (Hann window, zero-padded, parabolic refinement)."""
    n = 1 << 19
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n))
    i = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[i - 1:i + 2] + 1e-30)
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * sample_rate / n


def eased_hz(lo, hi, u):
    return lo + (hi - lo) * (0.5 - 0.5 * np.cos(np.pi * u))


def test_from_rate_splits_the_cycle_by_ratio():
    p = BreathPattern.from_rate(6)
    assert (p.in_seconds, p.hold_in_seconds, p.out_seconds, p.hold_out_seconds) == (4.0, 0.0, 6.0, 0.0)
    p = BreathPattern.from_rate(5, (1, 1), hold_in_seconds=1, hold_out_seconds=1)
    assert p.cycle_seconds == pytest.approx(12.0)
    assert p.in_seconds == pytest.approx(5.0) and p.out_seconds == pytest.approx(5.0)


def test_from_settings_takes_marker_overrides():
    settings = BreathingSettings(breaths_per_min=6, ratio=(4, 6), hold_in_seconds=1.0)
    p = BreathPattern.from_settings(settings)
    assert p.hold_in_seconds == 1.0 and p.in_seconds == pytest.approx(3.6)
    p = BreathPattern.from_settings(settings, breaths_per_min=5, ratio=(1, 1))
    assert p.cycle_seconds == pytest.approx(12.0) and p.in_seconds == pytest.approx(5.5)


@pytest.mark.parametrize("rate", [2.9, 12.5, 0])
def test_rate_out_of_range_is_a_parameter_error(rate):
    with pytest.raises(ParameterError, match="3 to 12"):
        BreathPattern.from_rate(rate)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ratio=(0, 6)), "two positive numbers"),
    (dict(hold_in_seconds=5, hold_out_seconds=5), "no time to breathe"),
    (dict(hold_in_seconds=-1), "negative"),
])
def test_bad_pattern_is_a_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match) as info:
        BreathPattern.from_rate(6, **kwargs)
    assert str(info.value).startswith("breathing:")


def test_unknown_style_lists_the_styles():
    with pytest.raises(ParameterError) as info:
        render(BreathPattern.from_rate(6), "trumpet", 1000)
    assert all(style in str(info.value) for style in STYLES)


@pytest.mark.parametrize("style", STYLES)
def test_silent_outside_the_stretch_and_after_the_last_whole_cycle(style):
    p = BreathPattern.from_rate(12)  # 5 s cycles
    start, frames = 3000, int(12.5 * SR)  # room for two whole cycles, not three
    x = render(p, style, frames, start=start)
    x = np.concatenate([x, render_tones(p, style, stretch_start=start, stretch_end=start + frames,
                                        block_start=start + frames, block_frames=SR, sample_rate=SR)])
    assert whole_cycles(p, frames, SR) == 2
    assert not x[:start].any()
    assert not x[start + 2 * 5 * SR:].any()
    assert np.abs(x[start:start + 10 * SR]).max() > 0.4
    # Clean ending: the last 5 ms of the last cycle are nearly silent.
    assert np.abs(x[start + 10 * SR - SR // 200:start + 10 * SR]).max() < 0.02


@pytest.mark.parametrize("style, lo, hi", [("glide", 196.0, 294.0), ("quiet", 220.0, 262.0)])
def test_glide_pitch_rises_on_the_in_breath_and_falls_on_the_out_breath(style, lo, hi):
    p = BreathPattern(4.0, 1.0, 6.0, 1.0)
    x = render(p, style, int(p.cycle_seconds * SR))
    half = int(0.05 * SR)  # 100 ms windows: the glide moves < 4 Hz inside one
    for at, expected in [(1.0, eased_hz(lo, hi, 0.25)), (2.0, eased_hz(lo, hi, 0.5)),
                         (3.0, eased_hz(lo, hi, 0.75)), (4.5, hi),
                         (5.0 + 1.5, eased_hz(hi, lo, 0.25)), (5.0 + 3.0, eased_hz(hi, lo, 0.5)),
                         (5.0 + 4.5, eased_hz(hi, lo, 0.75))]:
        centre = int(at * SR)
        assert peak_hz(x[centre - half:centre + half]) == pytest.approx(expected, abs=1.5), at
    assert not x[int(11.0 * SR) + 1:].any()  # hold-out is silent


def test_levels_peak_near_one_and_quiet_is_quieter():
    p = BreathPattern.from_rate(6)
    frames = 10 * SR
    peaks = {style: np.abs(render(p, style, frames)).max() for style in STYLES}
    assert 0.75 <= peaks["glide"] <= 1.0
    assert 0.7 <= peaks["chime"] <= 1.0
    assert peaks["quiet"] == pytest.approx(peaks["glide"] / 2, rel=0.05)


def test_chime_marks_each_turn_with_its_own_pitch_and_decays():
    p = BreathPattern.from_rate(6)  # in 4 s, out 6 s
    x = render(p, "chime", 10 * SR)
    assert peak_hz(x[:SR // 2]) == pytest.approx(392.0, abs=1.0)
    assert peak_hz(x[4 * SR:4 * SR + SR // 2]) == pytest.approx(294.0, abs=1.0)

    def rms_db(a, b):
        seg = x[int(a * SR):int(b * SR)].astype(np.float64)
        return 10 * np.log10(np.mean(seg ** 2))
    drop = rms_db(0.05, 0.25) - rms_db(1.45, 1.65)
    assert 25.0 < drop < 35.0  # the fundamental falls 30 dB in 1.5 s
    assert not x[3 * SR:4 * SR].any() and not x[7 * SR:10 * SR].any()  # faded out before the next turn


@pytest.mark.parametrize("style", STYLES)
def test_no_clicks(style):
    p = BreathPattern(4.0, 1.0, 5.0, 0.0)
    x = render(p, style, 3 * 10 * SR).astype(np.float64)
    # A 600 Hz component at full scale changes by at most 2*pi*600/SR per frame.
    assert np.abs(np.diff(x)).max() < 2 * np.pi * 600 / SR
    assert np.abs(np.diff(x, 2)).max() < 0.02
    for k in range(1, 3):  # each cycle ends in silence; the next one starts from it
        edge = k * 10 * SR
        assert np.abs(x[edge - 20:edge]).max() < 0.01
        assert x[edge] == 0.0


@pytest.mark.parametrize("style", STYLES)
def test_block_split_gives_identical_samples(style):
    p = BreathPattern.from_rate(5.5, (4, 6), hold_in_seconds=0.5)
    start, frames = 777, 30 * SR
    whole = render(p, style, frames, start=start)
    rng = np.random.default_rng(7)
    cuts = np.unique(np.concatenate([[0, start + frames], rng.integers(0, start + frames, 40)]))
    parts = [render_tones(p, style, stretch_start=start, stretch_end=start + frames, block_start=int(a),
                          block_frames=int(b - a), sample_rate=SR) for a, b in zip(cuts[:-1], cuts[1:])]
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rate", [6.0, 5.5])
def test_cycles_start_on_the_exact_frame_for_twenty_minutes(rate):
    sr = 16000  # 5.5/min gives 174545.45... frames per cycle: rounding must not accumulate
    p = BreathPattern.from_rate(rate, hold_out_seconds=1.0)  # a silent gap before each onset
    start, frames = 12345, 20 * 60 * sr
    x = render(p, "glide", frames, start=start, sample_rate=sr, block=1 << 16)
    sounding = np.flatnonzero(x)
    gaps = np.flatnonzero(np.diff(sounding) > sr // 2)  # the hold-out's silence, not a zero crossing
    onsets = np.concatenate([[sounding[0]], sounding[gaps + 1]]) - 1  # last silent frame before sound
    cycles = int(round(20 * rate))
    assert whole_cycles(p, frames, sr) == cycles == onsets.size
    exact = start + np.round(np.arange(cycles) * (60.0 / rate) * sr)
    assert np.abs(onsets - exact).max() <= 1
    assert onsets[-1] == start + cycle_start_frame(cycles - 1, p, sr)
    period = np.diff(onsets).mean()
    assert period == pytest.approx(60.0 / rate * sr, abs=0.01)
