"""The speech stage: dedupe, cache, lexicon, exact trimming, level-matching, real speech."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from compassion_audio.core.audio import Audio, db_to_gain, resample
from compassion_audio.speech.cache import ClipCache
from compassion_audio.core.settings import VoiceSettings
from compassion_audio.speech.engines.base import EngineVoice
from compassion_audio.speech.engines.pack_engine import PackEngine
from compassion_audio.speech.engines.piper_engine import PiperEngine
from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.loudness import LoudnessMeter, true_peak
from compassion_audio.core.levels import CLIP_LUFS, SPEECH_RMS_DB
from compassion_audio.speech.clip_processing import (FADE_SECONDS, PEAK_CEILING_DB, PEAK_TO_LOUDNESS_DB,
                                                     process_clip)
from compassion_audio.speech.clip_source import apply_lexicon

from .conftest import FakeEngine, protocol_problems, spoken_clips

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


def lufs(x: np.ndarray, rate: int = RATE) -> float:
    """The meter's integrated loudness, a clip under 400 ms followed by silence up to 400 ms."""
    x = np.concatenate([x, np.zeros(max(0, int(0.4 * rate) - len(x)), dtype=np.float32)])
    meter = LoudnessMeter(rate, 1)
    meter.add(x)
    return meter.integrated_lufs()


CAP = db_to_gain(CLIP_LUFS + PEAK_TO_LOUDNESS_DB)


@pytest.fixture
def cache(tmp_path):
    return ClipCache(tmp_path / "clips")


@pytest.mark.parametrize("engine_class", [Pyttsx3Engine, PiperEngine, PackEngine, FakeEngine, CountingEngine],
                         ids=lambda c: c.__name__)
def test_engines_and_test_doubles_implement_the_protocol(engine_class):
    """Every member of SpeechEngine, with its parameters and return type (isinstance on the
    runtime-checkable protocol would only check that the names exist)."""
    assert protocol_problems(engine_class) == []


def test_each_distinct_sentence_is_spoken_once_and_then_never(cache):
    engine = CountingEngine()
    sentences = ["Breathe in.", "Breathe out.", "Breathe in.", "Rest."]
    first = spoken_clips(sentences, engine, cache, sample_rate=RATE)
    assert sorted(engine.calls) == ["Breathe in.", "Breathe out.", "Rest."]
    engine.calls.clear()
    second = spoken_clips(sentences, engine, cache, sample_rate=RATE)
    assert engine.calls == []
    assert second == first and list(first) == ["Breathe in.", "Breathe out.", "Rest."]


def test_trimmed_to_exact_margins(cache):
    engine = CountingEngine()
    clip = spoken_clips(["Hello."], engine, cache, sample_rate=RATE)["Hello."]
    assert (clip.lead_frames, clip.tail_frames) == (LEAD, TAIL)
    assert clip.frames == engine.burst_frames + LEAD + TAIL
    assert clip.audible_frames == engine.burst_frames
    x = stored(clip)
    assert x.dtype == np.float32 and x.shape == (clip.frames,)
    assert np.all(x[:LEAD] == 0) and np.all(x[-TAIL:] == 0)


def test_loudness_matched_and_peak_capped(cache):
    quiet = CountingEngine(amplitude=0.01)
    loud = CountingEngine(amplitude=0.9, voice="v2")
    long = CountingEngine(burst_frames=100 * 400 + 1, voice="v3")  # 0.9 s: gated blocks, no padding
    for engine in (quiet, loud, long):
        clip = spoken_clips(["A."], engine, cache, sample_rate=RATE)["A."]
        x = stored(clip)
        assert lufs(x) == pytest.approx(CLIP_LUFS, abs=0.05)
        assert np.abs(x).max() <= CAP
        assert true_peak(x) <= clip.true_peak
    spiky = CountingEngine(burst_frames=1)  # a click: all peak, no body - only the ceiling binds
    clip = spoken_clips(["Click."], spiky, cache, sample_rate=RATE)["Click."]
    peak = 20 * math.log10(np.abs(stored(clip)).max())
    assert peak <= PEAK_CEILING_DB + 0.01


def test_peaks_over_the_cap_are_limited_to_it():
    """A tone with sparse spikes ~17 dB over its loudness (espeak-ng peaks reach 17-20)
    comes out at CLIP_LUFS with the spikes at the cap: the cap holds after the match."""
    t = np.arange(RATE) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t)
    x[::11025] = 0.9
    audio = Audio(np.concatenate([np.zeros(500), x, np.zeros(500)]).astype(np.float32), RATE)
    y = process_clip(audio, RATE, "spikes").samples
    assert lufs(y) == pytest.approx(CLIP_LUFS, abs=0.05)
    assert np.abs(y).max() <= CAP
    assert np.abs(y).max() >= CAP * db_to_gain(-0.2)


def test_resampled_to_the_track_rate(cache):
    engine = CountingEngine(sample_rate=22050, burst_frames=50 * 50 + 1)
    clip = spoken_clips(["Slow."], engine, cache, sample_rate=RATE)["Slow."]
    # Trimmed at the engine's rate, so the margins are whole engine frames (10 ms is
    # 220.5 of them): within a frame or two of the track-rate margins.
    assert abs(clip.audible_frames - 2 * engine.burst_frames) <= 2
    assert abs(clip.lead_frames - LEAD) <= 2 and abs(clip.tail_frames - TAIL) <= 2
    x = stored(clip)
    assert lufs(x) == pytest.approx(CLIP_LUFS, abs=0.05)
    assert true_peak(x) <= clip.true_peak


@pytest.mark.parametrize("from_rate, to_rate", [(22050, 44100), (24000, 48000), (11025, 44100),
                                                (16000, 44100), (48000, 44100)])
def test_a_clip_is_resampled_as_audio_resample_does(from_rate, to_rate):
    """Trimming runs at the engine's rate, then one resampling (a direct form for 2x, 4x)."""
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(from_rate // 2)).astype(np.float32)
    x[:1000] = 0.0
    x[-2000:] = 0.0
    x[1000] = x[-2001] = 1.0  # the speech starts and ends at full scale: exact trim points
    y = process_clip(Audio(x, from_rate), to_rate, "noise").samples
    lead, tail = round(0.010 * from_rate), round(0.040 * from_rate)
    expected = resample(x[1000 - lead:len(x) - 2000 + tail], from_rate, to_rate)
    assert abs(len(y) - len(expected)) <= 1
    n = min(len(y), len(expected))
    fade = int(0.006 * to_rate) + 20  # the fades (and the resampler's reach past them) differ
    ratio = y[fade:n - fade] / np.where(expected[fade:n - fade] == 0, 1, expected[fade:n - fade])
    big = np.abs(expected[fade:n - fade]) > 0.05
    # the same waveform, scaled by one gain (no limiting: white noise is under the cap)
    assert np.ptp(ratio[big]) < 1e-3 * np.abs(ratio[big]).mean()
    assert lufs(y, to_rate) == pytest.approx(CLIP_LUFS, abs=0.05)
    assert true_peak(y) <= process_clip(Audio(x, from_rate), to_rate, "noise").true_peak


@pytest.mark.parametrize("shape", ["noise", "square", "chirp"])
def test_the_true_peak_bound_holds_on_harsh_engine_audio(shape):
    """The stored bound comes from the engine's band (no 4x pass over the clip): check it
    against the 4x detector on content with energy right up to the engine's Nyquist."""
    rate = 22050
    t = np.arange(rate) / rate
    rng = np.random.default_rng(7)
    x = {"noise": rng.standard_normal(rate),
         "square": np.sign(np.sin(2 * np.pi * 2757 * t)),
         "chirp": np.sin(2 * np.pi * (100 + 5000 * t) * t)}[shape]
    x = (0.5 * x / np.abs(x).max()).astype(np.float32)
    clip = process_clip(Audio(x, rate), RATE, shape)
    assert true_peak(clip.samples) <= clip.true_peak <= true_peak(clip.samples) * db_to_gain(0.05)
    assert lufs(clip.samples) == pytest.approx(CLIP_LUFS, abs=0.05)


def test_silence_is_an_error_naming_the_phrase(cache):
    engine = CountingEngine(amplitude=0.0)
    with pytest.raises(SpeechError, match="^the speech engine produced no audible speech for phrase 1 of 1$"):
        spoken_clips(["Say something kind to yourself."], engine, cache, sample_rate=RATE)
    with pytest.raises(SpeechError, match="nothing to say"):
        spoken_clips(["  "], CountingEngine(), cache, sample_rate=RATE)


def test_lexicon_changes_what_is_spoken_not_the_keys(cache):
    engine = CountingEngine()
    clips = spoken_clips(["CFT helps.", "Cft again.", "Plain."], engine, cache,
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
    spoken_clips(script, engine, cache, sample_rate=RATE)
    engine.calls.clear()
    spoken_clips(["One.", "Two, CFT.", "Three, changed."], engine, cache, sample_rate=RATE)
    assert engine.calls == ["Three, changed."]
    engine.calls.clear()
    spoken_clips(script, engine, cache, sample_rate=RATE, lexicon={"cft": "C F T"})
    assert engine.calls == ["Two, C F T."]
    engine.calls.clear()
    engine.voice = "v1 slower"  # any identity change (rate, voice, ...) re-speaks everything
    spoken_clips(script, engine, cache, sample_rate=RATE)
    assert sorted(engine.calls) == ["One.", "Three.", "Two, CFT."]


def test_a_corrupt_entry_is_re_synthesised(cache):
    engine = CountingEngine()
    clip = spoken_clips(["Soften."], engine, cache, sample_rate=RATE)["Soften."]
    good = stored(clip)
    clip.path.write_bytes(b"\x93NUMPY garbage")
    again = spoken_clips(["Soften."], engine, cache, sample_rate=RATE)["Soften."]
    assert engine.calls == ["Soften.", "Soften."]
    assert again == clip and np.array_equal(stored(again), good)
    spoken_clips(["Soften."], engine, cache, sample_rate=RATE)
    assert len(engine.calls) == 2


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
        "Soothing rhythm breathing helps the body settle.", "Yes.", "A.",
        "Step 3: you might let your gently soft breath warm kind slow steady calm safe welcome "
        "notice rest ease."]


@pytest.mark.engine
def test_real_speech_is_trimmed_level_matched_and_cached(cache):
    with Pyttsx3Engine(VoiceSettings()) as real:
        engine = Counting(real)
        clips = spoken_clips(REAL, engine, cache, sample_rate=RATE)
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
            # lead/tail mark the audible speech to within two frames: the first and last
            # sample within 40 dB of the (pre-limiting) peak, nothing near that outside.
            # (espeak-ng often starts speaking at once: the fade-in then covers the onset.)
            peak = np.abs(x).max()
            start, end = clip.lead_frames, clip.frames - clip.tail_frames
            if start >= FADE_SECONDS * RATE:
                assert np.abs(x[start - 2:start + 3]).max() >= peak * db_to_gain(-41.0)
                assert np.abs(x[:start - 2]).max() < peak * db_to_gain(-30.0)
            assert np.abs(x[end - 3:end + 2]).max() >= peak * db_to_gain(-41.0)
            assert np.abs(x[end + 2:]).max() < peak * db_to_gain(-30.0)
            # The loudness contract, the peak cap, the true-peak bound.
            assert lufs(x) == pytest.approx(CLIP_LUFS, abs=0.05), text
            assert peak <= CAP
            assert true_peak(x) <= clip.true_peak <= true_peak(x) * db_to_gain(0.05)
            speech = x[start:end]
            levels.append(active_rms_db(speech, RATE))
            spectrum = np.abs(np.fft.rfft(speech)) ** 2
            freqs = np.fft.rfftfreq(len(speech), 1 / RATE)
            assert spectrum[(freqs > 80) & (freqs < 4000)].sum() > 0.8 * spectrum.sum()
        assert len(stored(clips["A."])) < 0.4 * RATE  # no gating block of its own, matched still
        # Same loudness, so nearly the same active RMS: SPEECH_RMS_DB, the mix's reference for
        # the breathing tones, is what espeak sentences read (one-word clips ~1 dB under).
        assert max(levels) - min(levels) < 2.0, levels
        assert abs(float(np.median(levels)) - SPEECH_RMS_DB) < 0.5, levels
        again = spoken_clips(REAL, engine, cache, sample_rate=RATE)
        assert engine.calls == len(REAL) and again == clips
