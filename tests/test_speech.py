"""The speech stage: dedupe, cache, lexicon, exact trimming, level-matching, real speech."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from compassion_audio.audio import Audio, db_to_gain
from compassion_audio.cache import ClipCache
from compassion_audio.config import VoiceSettings
from compassion_audio.engines.base import EngineVoice, SpeechEngine
from compassion_audio.engines.pyttsx3_engine import Pyttsx3Engine
from compassion_audio.errors import SpeechError
from compassion_audio.speech import (PEAK_CEILING_DB, TARGET_RMS_DB, apply_lexicon,
                                     synthesize_clips)

RATE = 44100
LEAD = 441    # 10 ms at 44.1 kHz
TAIL = 1764   # 40 ms


@dataclass
class CountingEngine:
    """Returns a 441 Hz cosine burst of ``burst_frames`` between known zero padding."""

    burst_frames: int = 100 * 50 + 1  # whole cycles + 1: the first and last samples are peaks
    pad_before: int = 2000
    pad_after: int = 3000
    amplitude: float = 0.5
    sample_rate: int = RATE
    voice: str = "v1"
    calls: list[str] = field(default_factory=list)
    name: str = "counting"

    def identity(self) -> dict:
        return {"engine": self.name, "voice": self.voice, "rate": self.sample_rate}

    def synthesize(self, text: str) -> Audio:
        self.calls.append(text)
        t = np.arange(self.burst_frames) / self.sample_rate
        burst = self.amplitude * np.cos(2 * np.pi * 441.0 * t)
        x = np.concatenate([np.zeros(self.pad_before), burst, np.zeros(self.pad_after)])
        return Audio(x.astype(np.float32), self.sample_rate)

    def voices(self) -> list[EngineVoice]:
        return [EngineVoice("v1", "Voice one")]

    def close(self) -> None:
        pass


def stored(clip) -> np.ndarray:
    return np.load(clip.path)


def active_rms_db(x: np.ndarray, rate: int) -> float:
    """Independent of speech.py: RMS of 20 ms windows within 30 dB of the loudest."""
    w = int(0.02 * rate)
    p = np.square(x[: len(x) // w * w].astype(np.float64)).reshape(-1, w).mean(axis=1)
    return 10 * math.log10(p[p >= p.max() / 1000].mean())


@pytest.fixture
def cache(tmp_path):
    return ClipCache(tmp_path / "clips")


def test_the_counting_engine_fits_the_protocol():
    assert isinstance(CountingEngine(), SpeechEngine)


def test_each_distinct_sentence_is_spoken_once_and_then_never(cache):
    engine = CountingEngine()
    sentences = ["Breathe in.", "Breathe out.", "Breathe in.", "Rest."]
    first = synthesize_clips(sentences, engine, cache, sample_rate=RATE)
    assert sorted(engine.calls) == ["Breathe in.", "Breathe out.", "Rest."]
    engine.calls.clear()
    second = synthesize_clips(sentences, engine, cache, sample_rate=RATE)
    assert engine.calls == []
    assert second == first and list(first) == ["Breathe in.", "Breathe out.", "Rest."]


def test_trimmed_to_exact_margins(cache):
    engine = CountingEngine()
    clip = synthesize_clips(["Hello."], engine, cache, sample_rate=RATE)["Hello."]
    assert (clip.lead_frames, clip.tail_frames) == (LEAD, TAIL)
    assert clip.frames == engine.burst_frames + LEAD + TAIL
    assert clip.audible_frames == engine.burst_frames
    x = stored(clip)
    assert x.dtype == np.float32 and x.shape == (clip.frames,)
    assert np.all(x[:LEAD] == 0) and np.all(x[-TAIL:] == 0)


def test_level_matched_and_peak_capped(cache):
    quiet = CountingEngine(amplitude=0.01)
    loud = CountingEngine(amplitude=0.9, voice="v2")
    a = synthesize_clips(["A."], quiet, cache, sample_rate=RATE)["A."]
    b = synthesize_clips(["A."], loud, cache, sample_rate=RATE)["A."]
    for clip in (a, b):
        x = stored(clip)[clip.lead_frames: clip.frames - clip.tail_frames]
        assert abs(active_rms_db(x, RATE) - TARGET_RMS_DB) < 0.2
    spiky = CountingEngine(burst_frames=1)  # a click: all peak, no body
    clip = synthesize_clips(["Click."], spiky, cache, sample_rate=RATE)["Click."]
    peak = 20 * math.log10(np.abs(stored(clip)).max())
    assert peak <= PEAK_CEILING_DB + 0.01


def test_resampled_to_the_track_rate(cache):
    engine = CountingEngine(sample_rate=22050, burst_frames=50 * 50 + 1)
    clip = synthesize_clips(["Slow."], engine, cache, sample_rate=RATE)["Slow."]
    # The band-limited resampler rings ~10 frames either side of the abrupt burst
    # edges above the -40 dB threshold: allow 32 frames (0.7 ms).
    assert abs(clip.audible_frames - 2 * engine.burst_frames) <= 32
    assert (clip.lead_frames, clip.tail_frames) == (LEAD, TAIL)


def test_silence_is_an_error_naming_the_phrase(cache):
    engine = CountingEngine(amplitude=0.0)
    with pytest.raises(SpeechError, match="Say something kind to yourself"):
        synthesize_clips(["Say something kind to yourself."], engine, cache, sample_rate=RATE)
    with pytest.raises(SpeechError, match="nothing to say"):
        synthesize_clips(["  "], CountingEngine(), cache, sample_rate=RATE)


def test_lexicon_changes_what_is_spoken_not_the_keys(cache):
    engine = CountingEngine()
    clips = synthesize_clips(["CFT helps.", "Cft again.", "Plain."], engine, cache,
                             sample_rate=RATE, lexicon={"CFT": "C F T"})
    assert sorted(engine.calls) == ["C F T again.", "C F T helps.", "Plain."]
    assert set(clips) == {"CFT helps.", "Cft again.", "Plain."}
    assert clips["CFT helps."].text == "CFT helps."


@pytest.mark.parametrize("text, expected", [
    ("CFT is kind. cft, Cft!", "C F T is kind. C F T, C F T!"),
    ("CFTs and xCFT stay", "CFTs and xCFT stay"),
    ("e.g. this", "for example this"),
    ("compassion-focused", "compassion-focused"),
])
def test_apply_lexicon_whole_words_any_case(text, expected):
    lexicon = {"CFT": "C F T", "e.g.": "for example", "focused therapy": "x"}
    assert apply_lexicon(text, lexicon) == expected


def test_changes_re_synthesise_exactly_the_changed_phrases(cache):
    engine = CountingEngine()
    script = ["One.", "Two, CFT.", "Three."]
    synthesize_clips(script, engine, cache, sample_rate=RATE)
    engine.calls.clear()
    synthesize_clips(["One.", "Two, CFT.", "Three, changed."], engine, cache, sample_rate=RATE)
    assert engine.calls == ["Three, changed."]
    engine.calls.clear()
    synthesize_clips(script, engine, cache, sample_rate=RATE, lexicon={"cft": "C F T"})
    assert engine.calls == ["Two, C F T."]
    engine.calls.clear()
    engine.voice = "v1 slower"  # any identity change (rate, voice, ...) re-speaks everything
    synthesize_clips(script, engine, cache, sample_rate=RATE)
    assert sorted(engine.calls) == ["One.", "Three.", "Two, CFT."]


def test_a_corrupt_entry_is_re_synthesised(cache):
    engine = CountingEngine()
    clip = synthesize_clips(["Soften."], engine, cache, sample_rate=RATE)["Soften."]
    good = stored(clip)
    clip.path.write_bytes(b"\x93NUMPY garbage")
    again = synthesize_clips(["Soften."], engine, cache, sample_rate=RATE)["Soften."]
    assert engine.calls == ["Soften.", "Soften."]
    assert again == clip and np.array_equal(stored(again), good)
    synthesize_clips(["Soften."], engine, cache, sample_rate=RATE)
    assert len(engine.calls) == 2


def test_progress_counts_distinct_sentences(cache):
    seen = []
    synthesize_clips(["a.", "b.", "a."], CountingEngine(), cache, sample_rate=RATE,
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


class Counting:
    """Wraps a real engine and counts synthesize calls."""

    def __init__(self, engine):
        self.engine, self.calls, self.name = engine, 0, engine.name

    def identity(self):
        return self.engine.identity()

    def synthesize(self, text):
        self.calls += 1
        return self.engine.synthesize(text)

    def voices(self):
        return self.engine.voices()

    def close(self):
        self.engine.close()


REAL = ["Find a comfortable position.", "Breathe in.",
        "Notice the weight of your body resting on the chair.",
        "Soothing rhythm breathing helps the body settle.", "Yes."]


@pytest.mark.engine
def test_real_speech_is_trimmed_level_matched_and_cached(cache):
    with Pyttsx3Engine(VoiceSettings()) as real:
        engine = Counting(real)
        clips = synthesize_clips(REAL, engine, cache, sample_rate=RATE)
        assert engine.calls == len(REAL)
        levels = []
        for text in REAL:
            clip = clips[text]
            x = stored(clip)
            floor = db_to_gain(-55.0)
            loud = np.flatnonzero(np.abs(x) >= floor)
            # Silence before and after the audible speech: only the margins (+15 ms slack).
            assert loud[0] <= LEAD + int(0.015 * RATE)
            assert len(x) - 1 - loud[-1] <= TAIL + int(0.015 * RATE)
            speech = x[clip.lead_frames: clip.frames - clip.tail_frames]
            levels.append(active_rms_db(speech, RATE))
            assert np.abs(x).max() <= db_to_gain(PEAK_CEILING_DB) + 1e-4
            spectrum = np.abs(np.fft.rfft(speech)) ** 2
            freqs = np.fft.rfftfreq(len(speech), 1 / RATE)
            assert spectrum[(freqs > 80) & (freqs < 4000)].sum() > 0.8 * spectrum.sum()
        assert max(levels) - min(levels) < 1.0, levels
        assert min(levels) > TARGET_RMS_DB - 1.0
        again = synthesize_clips(REAL, engine, cache, sample_rate=RATE)
        assert engine.calls == len(REAL) and again == clips
