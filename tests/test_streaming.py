"""One-pass rendering: the track is mixed and encoded while its speech is synthesised.

What must hold: a partial plan is an exact prefix of the complete plan; mixing
a growing plan gives the very samples the complete plan gives; the predicted
gain is checked against the metered mix and a miss is corrected by writing the
track again; the file is the same whatever the cache held.
"""
from __future__ import annotations

import math
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from compassion_audio.sound import mastering
from compassion_audio.sound.assemble import plan_timeline
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.speech import voices
from compassion_audio.speech.cache import ClipCache
from compassion_audio.core.settings import BreathingSettings, MixSettings, VoiceSettings
from compassion_audio.core import loudness
from compassion_audio.core.loudness import LoudnessMeter, PeakLimiter
from compassion_audio.sound.beds import Bed
from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine
from compassion_audio.sound.mix import StreamMaster, TrackMixer
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.core.segments import Breathe, Pause, Script, Speech
from compassion_audio.speech.clip_source import ClipSource

from .conftest import FakeEngine, decode, ebur128, independent_true_peak_db, spoken_clips

SR = 44100
VOICE = VoiceSettings()
SENTENCES = ["Welcome to this practice.", "Let your breath slow down.", "Notice the chair.",
             "Breathe in gently.", "And out, slowly.", "Rest here a moment.", "Welcome back."]
SCRIPT = Script("t", (Speech(SENTENCES[0], paragraph_start=True), Pause(2.0), Speech(SENTENCES[1]),
                      Speech(SENTENCES[2]), Breathe(seconds=12.0), Speech(SENTENCES[3]),
                      Pause(0.3), Speech(SENTENCES[4]), Pause(6.0), Speech(SENTENCES[5]),
                      Speech(SENTENCES[6], paragraph_start=True)))
MIX = MixSettings(bells=True, background="pink", lead_in_seconds=1.0)
BREATHING = BreathingSettings(tones_in_pauses_seconds=5.0)


def plan(clips, *, partial=False, mix=MIX):
    return plan_timeline(SCRIPT, clips, voice=VOICE, breathing=BREATHING, mix=mix,
                         bell_frames=SR, bell_ring_frames=SR // 2, partial=partial)


@pytest.fixture
def clips(tmp_path):
    return spoken_clips(SENTENCES, FakeEngine(), ClipCache(tmp_path / "cache"), sample_rate=SR)


def test_a_partial_plan_is_a_prefix_of_the_complete_plan(clips):
    complete = plan(clips)
    assert complete.complete
    for known in range(len(SENTENCES)):
        part = plan({s: clips[s] for s in SENTENCES[:known]}, partial=True)
        assert not part.complete
        assert part.events == complete.events[:len(part.events)]
        # nothing placed beyond the frontier; the next phrase starts at or after it
        assert all(e.end <= part.frames for e in part.events if e.kind != "bell")
        missing = complete.of_kind("speech")[known]
        assert missing.start >= part.frames


def test_mixing_a_growing_plan_gives_the_samples_of_the_complete_plan(clips):
    bell = np.hanning(SR).astype(np.float32) * 0.5
    from compassion_audio.sound.beds import Bed

    bed = Bed.from_setting("pink", SR, 1)
    complete = plan(clips)
    whole = TrackMixer(complete, mix=MIX, breathing=BREATHING, bell=bell, bed=bed, block_frames=4096)
    expected = np.concatenate(list(StreamMaster(whole, 4.0).advance()))

    growing = TrackMixer(plan({}, partial=True), mix=MIX, breathing=BREATHING, bell=bell, bed=bed,
                         block_frames=4096)
    master = StreamMaster(growing, 4.0)
    parts, rendered_early = [], 0
    for known in range(1, len(SENTENCES) + 1):
        growing.extend(plan({s: clips[s] for s in SENTENCES[:known]}, partial=known < len(SENTENCES)))
        parts += list(master.advance())
        if known == len(SENTENCES) - 1:
            rendered_early = master.done
    got = np.concatenate(parts)
    assert rendered_early > complete.frames // 2  # most of it was written before the last clip
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_nothing_is_rendered_before_anything_sounds(clips):
    quiet = replace(MIX, bells=False, background=None)
    mixer = TrackMixer(plan({}, partial=True, mix=quiet), mix=quiet, breathing=BREATHING)
    assert mixer.ready_frames == 0


def test_the_clip_source_yields_cache_hits_at_once_and_the_rest_in_order(tmp_path):
    cache = ClipCache(tmp_path / "cache")
    spoken_clips(SENTENCES[:3], FakeEngine(), cache, sample_rate=SR)
    engine = FakeEngine()
    source = ClipSource(SENTENCES + [SENTENCES[4]], engine, cache, sample_rate=SR)
    assert list(source.ready) == SENTENCES[:3]
    assert source.missing == SENTENCES[3:]
    got = list(source.ahead())
    assert [s for s, _ in got] == SENTENCES[3:]
    assert engine.calls == SENTENCES[3:]
    assert all(clip.text == s for s, clip in got)


MIXED = "Welcome.\n[pause 3s]\nBreathe gently now.\n[pause 8s]\nAnd rest.\n[breathe 20s]\nGoodbye for now.\n"


def render(tmp_path, name, *, text=MIXED, mix=None, progress=None, **kw):
    script = tmp_path / "script.txt"
    script.write_text(text, encoding="utf-8")
    request = TrackRequest(exercise=str(script), output=tmp_path / name, force=True,
                           cache_dir=tmp_path / "cache", mix=mix or MixSettings(), **kw)
    return render_track(request, engine=FakeEngine(), progress=progress)


def test_the_file_is_the_same_whatever_the_cache_held(tmp_path):
    cold = render(tmp_path, "cold.wav")
    warm = render(tmp_path, "warm.wav")
    assert cold.synthesised > 0 and warm.synthesised == 0
    assert cold.mastering.gain_db == warm.mastering.gain_db
    assert np.array_equal(decode(cold.path), decode(warm.path))


SPOKEN = ("Welcome to this practice.\n[pause 3s]\nBreathe gently now and let your shoulders soften.\n"
          "[pause 4s]\nAnd rest here for a moment, just as you are.\n")


def test_a_missed_prediction_is_corrected_by_a_second_pass(tmp_path, monkeypatch):
    right = render(tmp_path, "right.wav", text=SPOKEN)
    real_predict = mastering.predict

    def wrong(*args, **kw):
        p = real_predict(*args, **kw)
        return replace(p, gain_db=p.gain_db - 4.0)

    monkeypatch.setattr("compassion_audio.render.predict", wrong)
    reports = []
    corrected = render(tmp_path, "corrected.wav", text=SPOKEN, progress=lambda *r: reports.append(r))
    m = corrected.mastering
    frames = corrected.timeline.frames
    stages = [r[0] for r in reports]
    assert stages.index("correct") > len(stages) - 1 - stages[::-1].index("render")  # after 'render'
    assert reports[-1] == ("correct", frames, frames)
    assert max(r[1] for r in reports if r[0] == "render") == frames
    assert m.passes == 2
    assert m.predicted_gain_db == pytest.approx(right.mastering.predicted_gain_db - 4.0)
    assert m.gain_db == pytest.approx(right.mastering.gain_db, abs=0.3)
    assert m.output_lufs == pytest.approx(-16.0, abs=0.3)
    assert ebur128(corrected.path)["integrated"] == pytest.approx(-16.0, abs=0.3)
    assert ebur128(right.path)["integrated"] == pytest.approx(-16.0, abs=0.3)


def test_a_first_pass_within_tolerance_is_kept(tmp_path, monkeypatch):
    right = render(tmp_path, "right.wav", text=SPOKEN).mastering
    assert right.output_lufs == pytest.approx(-16.0, abs=mastering.TOLERANCE_DB)
    off = right.gain_db - (right.output_lufs + 16.0) - 0.2  # 0.2 dB under the target
    monkeypatch.setattr("compassion_audio.render.predict",
                        lambda *a, **kw: mastering.Prediction(-20.0, -20.0, off))
    result = render(tmp_path, "kept.wav", text=SPOKEN)
    m = result.mastering
    assert m.passes == 1 and m.gain_db == pytest.approx(off)
    assert m.output_lufs == pytest.approx(-16.2, abs=0.05)
    assert ebur128(result.path)["integrated"] == pytest.approx(-16.2, abs=0.15)


def test_loudness_off_writes_one_pass_without_metering(tmp_path, monkeypatch):
    """No target: no loudness meter is made (the render would fail if one were), nothing is
    measured or predicted, no gain is applied, and the track is written once."""
    def no_meter(*args, **kwargs):
        raise AssertionError("a loudness meter was made with loudness off")

    monkeypatch.setattr("compassion_audio.render.LoudnessMeter", no_meter)
    result = render(tmp_path, "plain.wav", mix=MixSettings(loudness_lufs=None))
    m = result.mastering
    assert m.passes == 1 and m.gain_db == 0.0
    assert math.isnan(m.output_lufs) and math.isnan(m.output_voice_lufs) and math.isnan(m.predicted_gain_db)
    # Not raised to -16: clips matched to CLIP_LUFS (-23) between pauses measure -27.7.
    assert ebur128(result.path)["integrated"] == pytest.approx(-27.7, abs=0.15)


def test_the_meter_sees_the_mastered_output(clips):
    """The streamed meter measures exactly the samples that go to the encoder."""
    quiet = replace(MIX, background=None, bells=False)
    complete = plan(clips, mix=quiet)
    meter = LoudnessMeter(SR, 1)
    master = StreamMaster(TrackMixer(complete, mix=quiet, breathing=BREATHING), 6.0, meter=meter)
    out = np.concatenate(list(master.advance()))
    separate = LoudnessMeter(SR, 1)
    separate.add(out)
    # Equal up to the float32 filter's rounding, which differs with the block split (~1e-7 LU);
    # a block metered twice, skipped or ungained would move it by over 0.01 LU.
    assert meter.integrated_lufs() == pytest.approx(separate.integrated_lufs(), abs=1e-5)


def detector_peaks(raw: np.ndarray) -> np.ndarray:
    """The full 4x detector's peak of every frame of ``raw`` (frames, channels)."""
    detector = loudness._PeakDetector(raw.shape[1])
    lagged = detector.process(raw.astype(np.float64))
    return np.concatenate([lagged[loudness._HALF_TAPS:], detector.pending()])


@pytest.fixture(params=["fake", pytest.param("espeak", marks=pytest.mark.engine)])
def any_clips(request, tmp_path):
    """The script's clips from the fake engine, or real espeak-ng speech."""
    if request.param == "fake":
        return spoken_clips(SENTENCES, FakeEngine(), ClipCache(tmp_path / "cache"), sample_rate=SR)
    with Pyttsx3Engine(VOICE) as engine:
        return spoken_clips(SENTENCES, engine, ClipCache(tmp_path / "cache"), sample_rate=SR)


@pytest.mark.parametrize("background, channels", [(None, 1), ("rain", 1), ("pink", 2)])
def test_the_mixers_peak_bound_holds_over_the_full_detector(any_clips, background, channels):
    """StreamMaster skips the limiter's 4x detector where the mixer's bound (the sum of the
    sounding sources' peaks) is under the target: block by block, the bound must be at
    least what the full detector finds in the mix; and the mastered output must be the one
    the detector run on every block gives."""
    mix = replace(MIX, background=background, channels=channels)
    bell = (np.hanning(SR) * 0.5).astype(np.float32)
    bed = Bed.from_setting(background, SR, channels) if background else None

    def mixer():
        return TrackMixer(plan(any_clips, mix=mix), mix=mix, breathing=BREATHING, bell=bell, bed=bed,
                          block_frames=4096)

    mixed = mixer()
    frames, size = mixed.timeline.frames, 4096
    raw = np.concatenate([mixed.render(a, min(size, frames - a)) for a in range(0, frames, size)])
    peaks = detector_peaks(raw)
    # As StreamMaster asks: the bound of the frames the detector's outputs for the block
    # [a, a+n) depend on - those lag by _HALF_TAPS and reach _HALF_TAPS back in turn.
    latency, half = PeakLimiter(SR, channels).latency_frames, loudness._HALF_TAPS
    for a in range(0, frames, size):
        n = min(size, frames - a)
        bound = mixed.peak_bound(max(0, a - latency), n + latency)
        # (1e-6: the detector's FFT round-off over the whole track, where nothing sounds)
        assert peaks[max(0, a - half):a + n - half].max() <= bound * (1 + 1e-6) + 1e-6, a
    # A gain that drives the voice into the limiter: the bound decides block by block.
    gain = 20 * np.log10(10 ** (-1.1 / 20) / peaks.max()) + 3.0
    with_bound = np.concatenate(list(StreamMaster(mixer(), gain).advance()))
    forced = mixer()
    forced.peak_bound = lambda a, n: np.inf  # the detector on every block
    full = np.concatenate(list(StreamMaster(forced, gain).advance()))
    np.testing.assert_array_equal(with_bound, full)


@pytest.mark.engine
@pytest.mark.parametrize("sample_rate, channels, target", [(44100, 1, -16.0), (48000, 1, -16.0),
                                                           (44100, 2, -12.0), (48000, 2, -12.0)])
def test_a_rendered_track_holds_the_ceiling_by_independent_meters(tmp_path, sample_rate, channels, target):
    """espeak-ng speech, breathing tones and a rain bed through the whole product (stereo at
    -12 LUFS so its limiter works too): the WAV's true peak by resample_poly and by ffmpeg.
    Measured: -1.10 dBTP by both wherever the limiter worked."""
    script = tmp_path / "script.txt"
    script.write_text(SPOKEN + "[breathe 12s]\nAnd rest.\n", encoding="utf-8")
    mix = MixSettings(sample_rate=sample_rate, channels=channels, background="rain", loudness_lufs=target)
    result = render_track(TrackRequest(exercise=str(script), output=tmp_path / "track.wav",
                                       cache_dir=tmp_path / "c", mix=mix,
                                       voice_profile=voices.resolve_voice("calm-female")))
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(result.path), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    samples = np.frombuffer(raw, dtype=np.float32).reshape(-1, channels)
    assert samples.shape[0] == result.timeline.frames
    assert independent_true_peak_db(samples) <= -1.0
    assert ebur128(result.path)["true_peak"] <= -1.0
