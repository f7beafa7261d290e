"""Voice profiles: loading and checking, resolving --voice, the lexicon, and the measured pace of the shipped espeak voices."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from compassion_audio.speech import voices
from compassion_audio.core.audio import Audio, audible_bounds
from compassion_audio.core.settings import VoiceSettings
from compassion_audio.speech.cache import ClipCache
from compassion_audio.speech.engines.base import EngineVoice
from compassion_audio.core.errors import ProfileError, VoiceError

from . import conftest

PARAGRAPH = ("Let yourself settle into a comfortable position. When you are ready, allow your breath "
             "to slow a little. There is nothing you need to get right. Notice the weight of your body "
             "resting on the chair. If your mind wanders, that is fine; gently bring your attention back "
             "to the breath. You might imagine a kind and friendly presence beside you.")
ESPEAK_PROFILES = ("calm-female", "calm-male", "warm-neutral", "british-male")


def write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def heard_wpm(audio: Audio, text: str) -> float:
    """Words over the time from the first to the last audible sample."""
    start, end = audible_bounds(audio.samples, audio.sample_rate)
    return len(text.split()) / ((end - start) / audio.sample_rate) * 60.0


def median_f0(audio: Audio) -> float:
    return conftest.median_f0(audio.samples, audio.sample_rate)


def test_shipped_profiles_load():
    keys = {p.key for p in voices._profiles(())}
    assert {"calm-female", "calm-male", "warm-neutral", "neural-joe"} <= keys
    female = voices.resolve_voice("calm-female")
    assert female.settings.engine == "pyttsx3" and female.settings.voice == "en-gb-x-rp+f4"
    assert female.lexicon == {"CFT": "C F T"}
    assert "wpm" in female.description


@pytest.mark.parametrize("body, line, message", [
    ('name = "X"\nengine = "pyttsx3"\nrat_wpm = 120\n', 3, "unknown key 'rat_wpm' (did you mean 'rate_wpm'?)"),
    ('name = "X"\nrate_wpm = 300\n', 2, "rate_wpm = 300 is out of range (use 100 to 220)"),
    ('name = "X"\ndescription = "slow"\nrate_wpm = 99\n', 3, "rate_wpm = 99 is out of range (use 100 to 220)"),
    ('name = "X"\nrate_wpm = 221\n', 2, "rate_wpm = 221 is out of range (use 100 to 220)"),
    ('name = "X"\n\npitch = 4.5\n', 3, "pitch must be a whole number, not 4.5"),
    ('name = "X"\nengine = "pipr"\nvoice = "a.onnx"\n', 2, "unknown engine 'pipr' (did you mean 'piper'?)"),
    ('name = "X"\nvolume = 1.5\n', 2, "volume = 1.5 is out of range (use 0.0 to 1.0)"),
    ('name = "X"\n[lexicon]\nCFT = ""\n', 3,
     "lexicon entry 'CFT' must map a word to non-empty text (e.g. CFT = \"C F T\")"),
    ('engine = "pyttsx3"\n', 1, "missing key 'name' (add name = \"My voice\")"),
    ('name = "X"\nengine = "piper"\n', 2, "the piper engine needs a voice (a model file, package: or folder)"),
])
def test_profile_errors_give_file_line_and_hint(tmp_path, body, line, message):
    path = write(tmp_path, body)
    with pytest.raises(ProfileError) as err:
        voices.load_voice_profile(path)
    assert str(err.value) == f"{path}:{line}: {message}"


def test_bad_toml_names_the_file(tmp_path):
    path = write(tmp_path, 'name = "X"\nrate_wpm = = 3\n')
    with pytest.raises(ProfileError) as err:
        voices.load_voice_profile(path)
    assert str(err.value).startswith(f"{path}") and "not valid TOML" in str(err.value)


def test_voice_dirs_order_and_shadowing(tmp_path, monkeypatch):
    extra, env = tmp_path / "extra", tmp_path / "env"
    extra.mkdir()
    env.mkdir()
    monkeypatch.setenv("COMPASSION_AUDIO_VOICES", str(env))
    dirs = voices.voice_dirs([extra])
    assert dirs[:2] == [extra, env] and dirs[2].name == "voices"
    write(env, 'name = "Mine"\nrate_wpm = 100\n', "calm-male.toml")
    assert voices.resolve_voice("calm-male", [extra]).settings.rate_wpm == 100
    assert voices.resolve_voice("Mine").key == "calm-male"


def test_resolve_voice_forms(tmp_path):
    assert voices.resolve_voice(None).key == voices.DEFAULT_PROFILE
    assert voices.resolve_voice("CALM-MALE").key == "calm-male"
    assert voices.resolve_voice("Calm male (espeak-ng)").key == "calm-male"
    pack = voices.resolve_voice(f"pack:{tmp_path}")
    assert pack.settings.engine == "pack" and pack.settings.voice == str(tmp_path.resolve())
    raw = voices.resolve_voice("en-us")
    assert (raw.settings.engine, raw.settings.voice, raw.settings.rate_wpm) == ("pyttsx3", "gmw/en-us", 130)
    assert voices.resolve_voice("gmw/en-gb-x-rp").settings.voice == "gmw/en-gb-x-rp"
    assert voices.resolve_voice("en-gb+f3").settings.voice == "gmw/en+f3"
    path = write(tmp_path, 'name = "By path"\n')
    assert voices.resolve_voice(str(path)).name == "By path"


def test_unknown_voice_lists_close_matches():
    with pytest.raises(VoiceError) as err:
        voices.resolve_voice("calm-femal")
    assert "unknown voice 'calm-femal'" in str(err.value) and "calm-female" in str(err.value)


def test_voice_settings_carry_the_profile():
    profile = voices.resolve_voice("calm-male")
    s = profile.settings
    assert (s.engine, s.voice, s.rate_wpm, s.pitch, s.sentence_gap_seconds) == ("pyttsx3", "en-us+m3", 120, 40, 0.7)
    assert (profile.name, profile.length_scale, profile.language) == ("Calm male (espeak-ng)", 1.0, "en-us")
    faster = profile.with_settings(rate_wpm=150)
    assert faster.settings == replace(s, rate_wpm=150) and faster.lexicon == profile.lexicon


def test_the_profile_format_keeps_every_setting_at_the_top_level(tmp_path):
    """The TOML format is unchanged: VoiceSettings fields and the profile's own keys side by side."""
    path = write(tmp_path, 'name = "All"\nengine = "pyttsx3"\nvoice = "en-us"\nrate_wpm = 110\n'
                           'pitch = 30\nvolume = 0.8\nsentence_gap_seconds = 0.5\n'
                           'paragraph_gap_seconds = 1.5\nlength_scale = 1.2\ndescription = "d"\n'
                           'language = "en-us"\n[lexicon]\nCFT = "C F T"\n')
    profile = voices.load_voice_profile(path)
    assert profile.settings == VoiceSettings(engine="pyttsx3", voice="en-us", rate_wpm=110, pitch=30,
                                             volume=0.8, sentence_gap_seconds=0.5,
                                             paragraph_gap_seconds=1.5)
    assert (profile.name, profile.length_scale, profile.description, profile.language,
            profile.lexicon) == ("All", 1.2, "d", "en-us", {"CFT": "C F T"})


def test_list_voices_reports_profiles_and_engine_voices(tmp_path):
    write(tmp_path, 'name = "Lost"\nengine = "piper"\nvoice = "nowhere.onnx"\n', "lost.toml")
    rows = {r.name: r for r in voices.list_voices([tmp_path])}
    assert rows["calm-female"].works_here and rows["calm-female"].kind == "profile"
    assert not rows["lost"].works_here and "nowhere.onnx" in rows["lost"].why_not
    assert rows["gmw/en-us"].kind == "engine" and rows["gmw/en-us"].works_here


class RecordingEngine:
    """Records what it is asked to say; speaks a 200 ms tone per word."""

    name = "recording"

    def __init__(self):
        self.spoken: list[str] = []

    def identity(self) -> dict:
        return {"engine": "recording"}

    def synthesize(self, text: str) -> Audio:
        self.spoken.append(text)
        n = 8820 * len(text.split())
        return Audio((0.3 * np.sin(2 * math.pi * 200 * np.arange(n) / 44100)).astype(np.float32), 44100)

    def voices(self):
        return [EngineVoice("recording", "Recording")]

    def close(self):
        pass


def test_profile_lexicon_changes_what_is_spoken(tmp_path):
    profile = voices.resolve_voice("calm-female")
    engine = RecordingEngine()
    clips = conftest.spoken_clips(["Welcome to this CFT practice."], engine, ClipCache(tmp_path),
                                  sample_rate=44100, lexicon=profile.lexicon)
    assert engine.spoken == ["Welcome to this C F T practice."]
    # Two more words spoken: the clip is two 200 ms words longer than it would be without the lexicon.
    assert clips["Welcome to this CFT practice."].audible_frames == pytest.approx(7 * 8820, abs=200)


@pytest.mark.engine
@pytest.mark.parametrize("key", ESPEAK_PROFILES)
def test_espeak_profiles_speak_at_their_stated_pace(key):
    profile = voices.resolve_voice(key)
    engine = voices.create_engine(profile)
    try:
        audio = engine.synthesize(PARAGRAPH)
    finally:
        engine.close()
    wpm = heard_wpm(audio, PARAGRAPH)
    assert wpm == pytest.approx(profile.settings.rate_wpm, rel=0.10)
    # The description states the measured median f0; hold it within 10%.
    stated = float(profile.description.split("median f0 ")[1].split(" Hz")[0])
    assert median_f0(audio) == pytest.approx(stated, rel=0.10)
