"""The pyttsx3 adapter against the real engine: audio, worker recovery, voices and rate."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from compassion_audio.core import tools
from compassion_audio.core.audio import Audio, db_to_gain
from compassion_audio.core.settings import VoiceSettings
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.speech.engines.pyttsx3_engine import (Pyttsx3Engine, decode_engine_file,
                                                     espeak_rate_for)
from compassion_audio.core.errors import EngineUnavailable, SpeechError, VoiceError

pytestmark = pytest.mark.engine

PARAGRAPH = ("Find a comfortable position, and let your eyes close if that feels right for you. "
             "Notice the weight of your body resting on the chair, and the ground beneath your feet. "
             "Let your breath find its own rhythm, slowing a little with each breath out. "
             "There is nothing you need to do right now, and nowhere else you need to be.")


@pytest.fixture(scope="module")
def engine():
    with Pyttsx3Engine(VoiceSettings()) as eng:
        yield eng


def audible_seconds(samples: np.ndarray, rate: int, below_peak_db: float = 40.0) -> float:
    loud = np.flatnonzero(np.abs(samples) >= np.abs(samples).max() * db_to_gain(-below_peak_db))
    return (loud[-1] - loud[0] + 1) / rate


def band_fraction(samples: np.ndarray, rate: int, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples - samples.mean())) ** 2
    freqs = np.fft.rfftfreq(samples.shape[0], 1.0 / rate)
    return float(spectrum[(freqs >= low_hz) & (freqs <= high_hz)].sum() / spectrum.sum())


def test_protocol_and_identity(engine):
    assert isinstance(engine, SpeechEngine)
    ident = engine.identity()
    assert ident["engine"] == "pyttsx3" and ident["rate_wpm"] == 130
    assert ident["driver"] == "espeak" and ident["espeak_version"]
    assert ident["voice"] and ident["engine_rate"] == espeak_rate_for(130)
    assert any(v.id == "gmw/en-us" for v in engine.voices())


def test_speech_is_present_in_the_voice_band(engine):
    audio = engine.synthesize("Notice the breath, moving gently in and out.")
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.sample_rate == 22050
    x = audio.samples
    rms_db = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert rms_db > -35.0, rms_db
    assert 1.5 < audio.seconds < 6.0
    assert band_fraction(x, audio.sample_rate, 80.0, 4000.0) > 0.8


def test_nothing_reaches_the_terminal(engine, capfd):
    engine.synthesize("Quietly.")
    out, err = capfd.readouterr()
    assert "Audio saved" not in out + err


def test_one_worker_serves_many_phrases(engine):
    pid = engine._worker.pid
    start = time.perf_counter()
    for i in range(20):
        assert engine.synthesize(f"Breath number {i}.").frames > 0
    per_second = 20 / (time.perf_counter() - start)
    assert engine._worker.pid == pid
    assert per_second > 5.0, per_second


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_phrase_after_a_killed_worker_still_synthesises(sig):
    with Pyttsx3Engine(VoiceSettings()) as eng:
        old = eng._worker.pid
        os.kill(old, sig)
        eng._worker.process.wait(timeout=5)
        audio = eng.synthesize("Still here.")
        assert audio.frames > 0 and eng._worker.pid != old


def test_a_hang_is_cut_off_and_names_the_phrase(monkeypatch):
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=1.0) as eng:
        monkeypatch.setattr(eng, "_synth_request", lambda text, path: {"op": "sleep", "seconds": 30})
        start = time.perf_counter()
        with pytest.raises(SpeechError) as info:
            eng.synthesize("Let the shoulders soften and drop.")
        assert time.perf_counter() - start < 6.0
        assert "Let the shoulders soften and drop." in str(info.value)
        assert "no answer within 1 s" in str(info.value)


def test_a_single_hang_is_retried_on_a_fresh_worker(monkeypatch):
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=1.0) as eng:
        real = eng._synth_request
        calls = []

        def hang_once(text, path):
            calls.append(text)
            return {"op": "sleep", "seconds": 30} if len(calls) == 1 else real(text, path)

        monkeypatch.setattr(eng, "_synth_request", hang_once)
        assert eng.synthesize("Once more.").frames > 0
        assert len(calls) == 2


def test_long_phrase_is_shortened_in_the_message(monkeypatch):
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=0.5) as eng:
        monkeypatch.setattr(eng, "_synth_request", lambda text, path: {"op": "sleep", "seconds": 30})
        with pytest.raises(SpeechError, match=r"'word word .*\.\.\.'"):
            eng.synthesize("word " * 40)


def test_unknown_voice_lists_close_matches():
    with pytest.raises(VoiceError, match="en-us") as info:
        Pyttsx3Engine(VoiceSettings(voice="en-uss"))
    assert "close matches" in str(info.value)
    with pytest.raises(VoiceError, match="f3"):
        Pyttsx3Engine(VoiceSettings(voice="en-us+f33"))


@pytest.mark.parametrize("wanted", ["en-us", "gmw/en-us", "English (America)", "EN-US"])
def test_voice_by_id_name_or_language(wanted):
    with Pyttsx3Engine(VoiceSettings(voice=wanted)) as eng:
        assert eng.identity()["voice"] == "gmw/en-us"


def fundamental_hz(audio: Audio) -> float:
    """f0 of the loudest 80 ms: the shortest lag whose autocorrelation is near the best."""
    x = audio.samples.astype(np.float64)
    rate = audio.sample_rate
    n = int(0.08 * rate)
    start = int(np.argmax(np.convolve(x ** 2, np.ones(n), "valid")))
    seg = x[start:start + n] - x[start:start + n].mean()
    ac = np.correlate(seg, seg, "full")[n - 1:]
    lo, hi = rate // 400, rate // 60
    lag = lo + int(np.flatnonzero(ac[lo:hi] >= 0.9 * ac[lo:hi].max())[0])
    return rate / lag


def test_voice_variant_raises_the_pitch():
    pitches = {}
    for voice in ("en-us", "en-us+f3"):
        with Pyttsx3Engine(VoiceSettings(voice=voice)) as eng:
            assert eng.identity()["voice"] == f"gmw/{voice}"
            pitches[voice] = fundamental_hz(eng.synthesize("Notice the breath."))
    assert 80 < pitches["en-us"] < 160
    assert pitches["en-us+f3"] > pitches["en-us"] * 1.5


def test_rate_sounds_like_130_wpm(engine):
    audio = engine.synthesize(PARAGRAPH)
    wpm = len(PARAGRAPH.split()) / audible_seconds(audio.samples, audio.sample_rate) * 60
    assert abs(wpm - 130) / 130 < 0.10, wpm


@pytest.mark.parametrize("settings, words", [
    (VoiceSettings(rate_wpm=60), "rate_wpm 60"),
    (VoiceSettings(pitch=150), "pitch 150"),
    (VoiceSettings(volume=0.0), "volume 0.0"),
])
def test_settings_beyond_the_engine_are_refused(settings, words):
    with pytest.raises(VoiceError, match=words):
        Pyttsx3Engine(settings)


def test_missing_espeak_data_names_the_install_command(monkeypatch):
    # Without its data folder the espeak library exits the (worker) process.
    monkeypatch.setenv("ESPEAK_DATA_PATH", "/nonexistent/espeak-ng-data")
    with pytest.raises(EngineUnavailable, match="pip install"):
        Pyttsx3Engine(VoiceSettings())


def test_closed_engine_refuses_politely():
    eng = Pyttsx3Engine(VoiceSettings())
    eng.close()
    with pytest.raises(SpeechError, match="closed"):
        eng.synthesize("Hello.")


def test_engine_files_are_decoded_by_content(tmp_path):
    rate = 22050
    t = np.arange(rate // 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    raw = tmp_path / "tone.f32"
    raw.write_bytes(tone.tobytes())
    misnamed = tmp_path / "speech.wav"  # AIFF inside, as macOS writes it
    subprocess.run([tools.ffmpeg_exe(), "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1",
                    "-i", str(raw), "-f", "aiff", str(misnamed)], check=True)
    audio = decode_engine_file(misnamed)
    assert isinstance(audio, Audio)
    back = audio.resampled(rate).samples
    assert abs(back.shape[0] - tone.shape[0]) <= 2
    n = min(back.shape[0], tone.shape[0]) - 200  # resampler edges aside
    assert np.max(np.abs(back[100:n] - tone[100:n])) < 1e-2
    (tmp_path / "junk.wav").write_bytes(b"ID3\x00" + bytes(100))
    with pytest.raises(SpeechError, match="unknown audio format"):
        decode_engine_file(tmp_path / "junk.wav")


@pytest.mark.skipif(sys.platform != "linux", reason="espeak rate mapping is Linux-only")
def test_rate_mapping_is_monotonic():
    rates = [espeak_rate_for(w) for w in (100, 110, 130, 150, 200)]
    assert rates == sorted(rates) and 105 <= espeak_rate_for(130) <= 118


def test_every_phrase_is_spoken_at_the_rate_it_asked_for(engine, tmp_path):
    # Regression: espeak-ng queues rate changes on its own thread and the
    # driver's runAndWait cancelled them, so ~1 phrase in 3 after a rate change
    # (and ~1 fresh worker in 30) spoke at the previous rate.
    text = "Notice the breath, moving gently in and out of the body."
    seconds = {80: [], 300: []}
    for i in range(12):
        rate = 80 if i % 2 else 300
        path = tmp_path / f"p{i}.wav"
        request = {**engine._synth_request(text, str(path)), "rate": rate}
        assert engine._worker.call(request, 10.0)["ok"]
        seconds[rate].append(decode_engine_file(path).seconds)
    assert min(seconds[80]) > 2 * max(seconds[300]), seconds


def test_a_forgotten_engine_leaves_nothing_behind():
    import gc

    eng = Pyttsx3Engine(VoiceSettings())
    eng.synthesize("Hello.")
    process, folder = eng._worker.process, eng._folder
    del eng
    gc.collect()
    assert process.wait(timeout=5) == 0
    assert not folder.exists()
