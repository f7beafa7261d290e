"""End to end: render real files, decode them independently, and measure the audio."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.core.errors import OutputError
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.speech.voices import resolve_voice

from .conftest import (FAKE_FRAMES_PER_WORD, FILE_LOUDNESS_LU, FakeEngine, decode, ebur128,
                       sounding_runs)

SR = 44100
PLAIN = "Welcome.\n[pause 3s]\nBreathe gently now.\n[pause 1m 0.5s]\nAnd rest.\n<break time=\"2500ms\"/>\nGoodbye.\n"


def write(tmp_path: Path, text: str, name: str = "mine.txt.j2") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def request(tmp_path, script: Path, out: str, **kw) -> TrackRequest:
    mix = kw.pop("mix", MixSettings(bells=False))
    return TrackRequest(exercise=str(script), output=tmp_path / out, mix=mix, **kw)


def test_fake_engine_pauses_are_exact_to_a_few_frames(tmp_path, fake_engine):
    script = write(tmp_path, PLAIN)
    result = render_track(request(tmp_path, script, "fake.wav"), engine=fake_engine)
    samples = decode(result.path)
    runs = sounding_runs(samples, SR, threshold_db=-30, min_gap_seconds=0.1, window_seconds=0.001)
    assert len(runs) == 4
    gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:])]
    assert gaps == pytest.approx([3.0, 60.5, 2.5], abs=0.003)
    durations = [b - a for a, b in runs]
    words = [1, 3, 2, 1]
    assert durations == pytest.approx([w * FAKE_FRAMES_PER_WORD / SR for w in words], abs=0.003)
    # the timeline agrees with the audio
    speech = result.timeline.of_kind("speech")
    assert [e.start / SR for e in speech] == pytest.approx([r[0] for r in runs], abs=0.003)


def test_output_is_peak_safe_and_at_the_loudness_target(tmp_path, fake_engine):
    script = write(tmp_path, PLAIN)
    result = render_track(request(tmp_path, script, "loud.wav"), engine=fake_engine)
    samples = decode(result.path)
    assert np.max(np.abs(samples)) <= 10 ** (-1 / 20) + 1e-3
    meter = ebur128(result.path)
    assert meter["integrated"] == pytest.approx(-16.0, abs=FILE_LOUDNESS_LU)
    assert meter["true_peak"] <= -1.0


def test_second_render_synthesises_nothing(tmp_path):
    script = write(tmp_path, PLAIN)
    first_engine, second_engine = FakeEngine(), FakeEngine()
    first = render_track(request(tmp_path, script, "a.wav"), engine=first_engine)
    second = render_track(request(tmp_path, script, "b.wav"), engine=second_engine)
    assert first.synthesised == 4 and len(first_engine.calls) == 4
    assert second.synthesised == 0 and second_engine.calls == []
    assert np.array_equal(decode(first.path), decode(second.path))


def test_no_cache_leaves_nothing_behind(tmp_path, monkeypatch, fake_engine):
    cache = tmp_path / "cache"
    script = write(tmp_path, "Hello there.\n")
    render_track(request(tmp_path, script, "a.wav", use_cache=False), engine=fake_engine)
    assert not cache.exists() or not any(cache.rglob("*.npy"))


def test_existing_output_is_kept_without_force(tmp_path, fake_engine):
    script = write(tmp_path, "Hello there.\n")
    out = tmp_path / "keep.wav"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        render_track(request(tmp_path, script, "keep.wav"), engine=fake_engine)
    assert out.read_bytes() == b"precious"
    assert fake_engine.calls == []  # failed before any work
    render_track(request(tmp_path, script, "keep.wav", force=True), engine=fake_engine)
    assert out.read_bytes() != b"precious"
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "flac", "wav", "m4a"])
def test_formats_decode_with_the_right_length(tmp_path, fake_engine, fmt):
    script = write(tmp_path, "Hello there.\n[pause 2s]\nGoodbye.\n")
    result = render_track(request(tmp_path, script, f"t.{fmt}"), engine=fake_engine)
    samples = decode(result.path)
    # codecs add priming/padding; a few tens of ms at most
    assert samples.size / SR == pytest.approx(result.timeline.seconds, abs=0.08)


def test_bells_ring_at_start_and_end(tmp_path, fake_engine):
    script = write(tmp_path, "Hello there.\n")
    result = render_track(request(tmp_path, script, "bells.wav", mix=MixSettings()), engine=fake_engine)
    samples = decode(result.path)
    first, last = result.timeline.of_kind("bell")[0], result.timeline.of_kind("bell")[-1]
    for event in (first, last):
        seg = samples[event.start + 441: event.start + SR]
        assert np.sqrt(np.mean(seg ** 2)) > 1e-3
    head = samples[:first.start - 100]
    assert np.max(np.abs(head)) < 1e-3


@pytest.mark.engine
def test_real_engine_pauses_speech_and_clicks(tmp_path):
    """pyttsx3 + espeak-ng + ffmpeg, MP3 decoded independently: pauses within 50 ms."""
    text = ("Welcome to this short practice.\n[pause 3s]\n"
            "You might let your shoulders soften.\n[pause 5.5s]\n"
            "When you are ready, open your eyes.\n")
    script = write(tmp_path, text)
    result = render_track(request(tmp_path, script, "real.mp3", voice_profile=resolve_voice("calm-female")))
    samples = decode(result.path)
    assert samples.size / SR == pytest.approx(result.timeline.seconds, abs=0.08)
    runs = sounding_runs(samples, SR, threshold_db=-45, min_gap_seconds=1.0)
    assert len(runs) == 3, runs
    gaps = [b[0] - a[1] for a, b in zip(runs, runs[1:])]
    assert gaps == pytest.approx([3.0, 5.5], abs=0.05)
    # speech is present where text is: energy in the voice band inside each run
    for start, end in runs:
        seg = samples[int(start * SR): int(end * SR)]
        spectrum = np.abs(np.fft.rfft(seg))
        freqs = np.fft.rfftfreq(seg.size, 1 / SR)
        voice_band = spectrum[(freqs > 80) & (freqs < 4000)].sum()
        assert voice_band / spectrum.sum() > 0.7
    # no clipping, true peak within the ceiling
    assert np.max(np.abs(samples)) < 1.0
    meter = ebur128(result.path)
    assert meter["true_peak"] <= -1.0
    assert meter["integrated"] == pytest.approx(-16.0, abs=FILE_LOUDNESS_LU)
    # no clicks: inside every pause, away from the edges, it is silent
    for (a0, a1), (b0, b1) in zip(runs, runs[1:]):
        quiet = samples[int((a1 + 0.03) * SR): int((b0 - 0.03) * SR)]
        assert np.max(np.abs(quiet)) < 10 ** (-50 / 20)


@pytest.mark.engine
def test_real_engine_sample_rate_and_tags(tmp_path):
    from mutagen.mp3 import MP3

    script = write(tmp_path, "+++\ntitle = \"A test practice\"\n+++\nHello there.\n")
    result = render_track(request(tmp_path, script, "tagged.mp3",
                                  export=ExportSettings(tags={"album": "Tests"})))
    audio = MP3(result.path)
    assert audio.info.sample_rate == 44100
    assert str(audio.tags["TIT2"]) == "A test practice"
    assert str(audio.tags["TALB"]) == "Tests"
    assert str(audio.tags["TCON"]) == "Meditation"
