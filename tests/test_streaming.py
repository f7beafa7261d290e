"""One-pass rendering: the track is mixed and encoded while its speech is synthesised.

What must hold: a partial plan is an exact prefix of the complete plan; mixing
a growing plan gives the very samples the complete plan gives; the predicted
gain is checked against the metered mix and a miss is corrected by writing the
track again; the file is the same whatever the cache held.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from compassion_audio.sound import mastering
from compassion_audio.sound.assemble import plan_timeline
from compassion_audio.speech.cache import ClipCache
from compassion_audio.core.settings import BreathingSettings, MixSettings, VoiceSettings
from compassion_audio.core.loudness import LoudnessMeter
from compassion_audio.sound.mix import StreamMaster, TrackMixer, mastered_blocks
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.core.segments import Breathe, Pause, Script, Speech
from compassion_audio.speech.clip_source import ClipSource, synthesize_clips

from .conftest import FakeEngine, decode, ebur128

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
    return synthesize_clips(SENTENCES, FakeEngine(), ClipCache(tmp_path / "cache"), sample_rate=SR)


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
    expected = np.concatenate(list(mastered_blocks(whole, 4.0)))

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
    synthesize_clips(SENTENCES[:3], FakeEngine(), cache, sample_rate=SR)
    engine = FakeEngine()
    source = ClipSource(SENTENCES + [SENTENCES[4]], engine, cache, sample_rate=SR)
    assert list(source.ready) == SENTENCES[:3]
    assert source.missing == SENTENCES[3:]
    got = list(source.synthesise())
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


def test_loudness_off_writes_one_pass_without_metering(tmp_path):
    result = render(tmp_path, "plain.wav", mix=MixSettings(loudness_lufs=None))
    assert result.mastering.passes == 1 and result.mastering.gain_db == 0.0


def test_the_meter_sees_the_mastered_output(clips):
    """The streamed meter measures exactly the samples that go to the encoder."""
    quiet = replace(MIX, background=None, bells=False)
    complete = plan(clips, mix=quiet)
    meter = LoudnessMeter(SR, 1, true_peak=False)
    out = np.concatenate(list(mastered_blocks(TrackMixer(complete, mix=quiet, breathing=BREATHING),
                                              6.0, meter=meter)))
    separate = LoudnessMeter(SR, 1, true_peak=False)
    separate.add(out)
    assert meter.integrated_lufs() == pytest.approx(separate.integrated_lufs(), abs=1e-9)
