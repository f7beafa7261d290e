"""Recorded voice packs: recording sheets, numbered recordings as an engine, missing phrases, long takes."""
from __future__ import annotations

import json
import math
import os
import subprocess
import wave

import numpy as np
import pytest

from compassion_audio.speech import voices
from compassion_audio.core.audio import Audio
from compassion_audio.speech.engines.base import EngineVoice
from compassion_audio.speech.engines.pack_engine import PackEngine, import_take, split_take
from compassion_audio.core.errors import OutputError, ProfileError, SpeechError
from compassion_audio.speech.recording_sheet import phrases_for, sheet_html, sheet_text, write_sheet
from compassion_audio.core.segments import Pause, Script, Speech
from compassion_audio.core.tools import ffmpeg_exe

RATE = 44100
PHRASES = ["Find a comfortable position.", "Let your breath slow a little.",
           "Notice the weight of your body.", "Welcome back to the room."]
FREQS = [220.0, 330.0, 440.0, 550.0]


def tone(freq: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    # A faint room-noise floor (about -66 dBFS) so "silence" is not digital zero.
    rng = np.random.default_rng(int(seconds * 1000))
    return (0.0005 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def write_wav(path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def dominant_hz(audio: Audio) -> float:
    spectrum = np.abs(np.fft.rfft(audio.samples))
    return float(np.fft.rfftfreq(audio.frames, 1 / audio.sample_rate)[np.argmax(spectrum)])


@pytest.fixture
def pack(tmp_path):
    """A pack of four phrases: 001-003 recorded (001 as MP3), 004 not yet."""
    folder = tmp_path / "pack"
    write_sheet(PHRASES, folder, "Soothing rhythm breathing")
    for number, freq in zip(("001", "002", "003"), FREQS):
        write_wav(folder / f"{number}.wav", np.concatenate([silence(0.5), tone(freq, 1.0), silence(0.5)]))
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(folder / "001.wav"), str(folder / "001.mp3")],
                   check=True)
    os.remove(folder / "001.wav")
    return folder


class ToneEngine:
    """A fallback that speaks every phrase as a 1 s 880 Hz tone."""

    name = "tone"

    def identity(self):
        return {"engine": "tone"}

    def synthesize(self, text):
        return Audio(tone(880.0, 1.0), RATE)

    def voices(self):
        return [EngineVoice("tone", "Tone")]

    def close(self):
        pass


def test_phrases_for_keeps_first_order_and_drops_repeats():
    a = Script("A", (Speech("Breathe in."), Pause(3), Speech("Breathe out."), Speech("breathe in")))
    b = Script("B", (Speech("Breathe out."), Speech("Rest.")))
    assert phrases_for([a, b]) == ["Breathe in.", "Breathe out.", "Rest."]


def test_sheets_are_numbered_with_instructions():
    text = sheet_text(["One.", "Two & <three>."], "Title")
    assert "001  One.\n002  Two & <three>.\n" in text and "001.wav" in text
    page = sheet_html(["One.", "Two & <three>."], "Title")
    assert "Two &amp; &lt;three&gt;." in page and '<span class="n">002</span>' in page
    assert "quiet room" in page and "a second of silence" in page and "001.mp3" in page


def test_write_sheet_keeps_existing_numbers(tmp_path):
    paths = write_sheet(["One.", "Two."], tmp_path, "T")
    assert [p.name for p in paths] == ["recording-sheet.txt", "recording-sheet.html", "phrases.json"]
    write_sheet(["Three.", "two"], tmp_path, "T")
    assert json.loads((tmp_path / "phrases.json").read_text()) == {"001": "One.", "002": "Two.", "003": "Three."}
    assert "003  Three.\n002  two\n" in (tmp_path / "recording-sheet.txt").read_text()


def test_pack_plays_recordings_by_phrase(pack):
    engine = PackEngine(pack)
    for phrase, freq in zip(PHRASES[:3], FREQS):
        audio = engine.synthesize(phrase.upper().rstrip("."))  # matching ignores case and punctuation
        assert dominant_hz(audio) == pytest.approx(freq, abs=2.0)
        assert audio.seconds == pytest.approx(2.0, abs=0.1)  # MP3 adds a little padding


def test_missing_phrases_are_listed_all_at_once(pack):
    engine = PackEngine(pack)
    extra = "A phrase nobody wrote down."
    assert engine.missing(PHRASES + [extra]) == [PHRASES[3], extra]
    with pytest.raises(SpeechError) as err:
        engine.synthesize(extra)
    message = str(err.value)
    assert "no recording for 2 phrase(s)" in message
    assert f"  004  {PHRASES[3]}" in message and f"  new  {extra}" in message


def test_fallback_speaks_missing_phrases(pack):
    engine = PackEngine(pack, fallback=ToneEngine())
    assert dominant_hz(engine.synthesize(PHRASES[3])) == pytest.approx(880.0, abs=2.0)
    assert dominant_hz(engine.synthesize(PHRASES[1])) == pytest.approx(330.0, abs=2.0)
    assert engine.identity()["fallback"] == {"engine": "tone"}


def test_rerecording_changes_only_that_phrase(pack):
    engine = PackEngine(pack)
    before = engine.identity()
    per_phrase = [engine.identity_for(p) for p in PHRASES]
    write_wav(pack / "002.wav", np.concatenate([silence(0.5), tone(600.0, 1.2), silence(0.5)]))
    after = [engine.identity_for(p) for p in PHRASES]
    assert engine.identity() != before
    assert [a == b for a, b in zip(per_phrase, after)] == [True, False, True, True]


def test_two_recordings_for_one_number_is_an_error(pack):
    write_wav(pack / "002.flac", tone(300.0, 0.5))
    with pytest.raises(SpeechError, match="phrase 002 has 2 recordings"):
        PackEngine(pack).synthesize(PHRASES[1])


def test_not_a_pack(tmp_path):
    with pytest.raises(ProfileError, match="no phrases.json"):
        PackEngine(tmp_path)


def test_pack_voice_through_create_engine(pack):
    engine = voices.create_engine(voices.resolve_voice(f"pack:{pack}"), fallback=voices.resolve_voice("calm-male"))
    try:
        assert engine.name == "pack" and engine.missing(PHRASES) == [PHRASES[3]]
    finally:
        engine.close()


def long_take(path, freqs, gap_seconds=1.2):
    parts = [silence(0.8)]
    for freq in freqs:
        # Each phrase has a 0.3 s breath inside it, shorter than the split gap.
        parts += [tone(freq, 0.8), silence(0.3), tone(freq, 0.6, 0.2), silence(gap_seconds)]
    write_wav(path, np.concatenate(parts))


def test_split_take_cuts_one_clip_per_phrase(tmp_path):
    take = tmp_path / "take.wav"
    long_take(take, FREQS)
    clips = split_take(take, PHRASES)
    assert [round(dominant_hz(c)) for c in clips] == [round(f) for f in FREQS]
    for clip in clips:
        # 1.7 s of phrase plus margins of 0.25 s each side (window rounding: 20 ms).
        assert clip.seconds == pytest.approx(1.7 + 0.5, abs=0.05)


def test_split_take_mismatch_reports_the_gaps(tmp_path):
    take = tmp_path / "take.wav"
    long_take(take, FREQS[:3])
    with pytest.raises(SpeechError) as err:
        split_take(take, PHRASES)
    message = str(err.value)
    assert message.startswith("found 3 spoken parts for 4 phrases; the longest gaps are at 0:02.5 (1.2 s)")


def test_import_take_makes_a_working_pack(tmp_path):
    folder = tmp_path / "pack"
    write_sheet(PHRASES, folder, "T")
    long_take(tmp_path / "take.wav", FREQS)
    written = import_take(tmp_path / "take.wav", folder)
    assert [p.name for p in written] == ["001.wav", "002.wav", "003.wav", "004.wav"]
    engine = PackEngine(folder)
    assert engine.missing(PHRASES) == []
    assert dominant_hz(engine.synthesize(PHRASES[2])) == pytest.approx(440.0, abs=2.0)
    with pytest.raises(OutputError, match="already has 4 recordings"):
        import_take(tmp_path / "take.wav", folder)
    assert len(import_take(tmp_path / "take.wav", folder, overwrite=True)) == 4


def test_an_import_that_fails_half_way_keeps_every_phrase_recorded(tmp_path, monkeypatch):
    folder = tmp_path / "pack"
    write_sheet(PHRASES, folder, "T")
    long_take(tmp_path / "first.wav", FREQS)
    import_take(tmp_path / "first.wav", folder)
    write_wav(folder / "004.flac", tone(550.0, 0.5))  # replaced by 004.wav only once all are in
    (folder / "004.wav").unlink()
    retake = list(reversed(FREQS))
    long_take(tmp_path / "second.wav", retake)
    real_writeframes = wave.Wave_write.writeframes
    written = []

    def disk_fills_at_the_third(self, data):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(len(data))
        real_writeframes(self, data)

    monkeypatch.setattr(wave.Wave_write, "writeframes", disk_fills_at_the_third)
    with pytest.raises(OSError, match="No space left"):
        import_take(tmp_path / "second.wav", folder, overwrite=True)
    monkeypatch.undo()
    names = sorted(p.name for p in folder.iterdir() if p.suffix not in (".json", ".txt", ".html"))
    assert names == ["001.wav", "002.wav", "003.wav", "004.flac"]  # no half-written take beside them
    engine = PackEngine(folder)
    heard = [round(dominant_hz(engine.synthesize(p))) for p in PHRASES]
    assert heard == [round(retake[0]), round(retake[1]), round(FREQS[2]), 550]
    import_take(tmp_path / "second.wav", folder, overwrite=True)
    assert sorted(p.name for p in folder.glob("00*")) == ["001.wav", "002.wav", "003.wav", "004.wav"]
    assert [round(dominant_hz(PackEngine(folder).synthesize(p))) for p in PHRASES] == [round(f) for f in retake]


@pytest.mark.engine
def test_split_take_of_real_speech(tmp_path):
    phrases = ["When you are ready, allow your breath to slow a little.",
               "There is nothing you need to get right.",
               "If your mind wanders, that is fine; gently come back."]
    engine = voices.create_engine(voices.resolve_voice("calm-male"))
    try:
        spoken = [engine.synthesize(p).resampled(RATE).samples for p in phrases]
    finally:
        engine.close()
    parts = [silence(0.5)]
    for samples in spoken:
        parts += [samples, silence(1.5)]
    write_wav(tmp_path / "take.wav", np.concatenate(parts))
    clips = split_take(tmp_path / "take.wav", phrases)
    # Each clip holds its phrase: engine padding trimmed, margins added; within 0.35 s of the original.
    assert [c.seconds for c in clips] == pytest.approx([len(s) / RATE for s in spoken], abs=0.35)
