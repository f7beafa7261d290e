"""The exercise library, rendered for real: every built-in exercise (short) through pyttsx3 +
espeak-ng to WAV, decoded independently with ffmpeg and measured against its timeline.

Figures measured when this file was written (the calm-female voice, -16 LUFS):
speech events' RMS -17..-15 dBFS; sounding runs = speech events (+1 where a comma pause
passes 0.45 s); every pause >= 2 s is digital silence away from its edges; breathing
stretches peak about -32 dBFS (RMS -36..-38), carry < -60 dB of their energy above 1 kHz
(speech: -10..-8 dB), and their tone cycles repeat at 60/rate s to within 10 ms;
the way-out sentence starts within 4-17% of the audible speech.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compassion_audio.sound import bells
from compassion_audio.script import library
from compassion_audio.cli import cli
from compassion_audio.script.lint import SAMPLE_PROFILE
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.sound.tones import BreathPattern, whole_cycles
from compassion_audio.speech.voices import resolve_voice

from .conftest import decode, sounding_runs

pytestmark = pytest.mark.engine

SR = 44100
EDGE = int(0.060 * SR)
"""Pause and breathing stretches are judged away from their edges: a clip keeps 40 ms of decay
after its audible end and 10 ms before its audible start."""
EXERCISES = [ex.name for ex in library.list_exercises() if ex.builtin]
WAY_OUT = re.compile(r"\bstop\b", re.IGNORECASE)
WAY_OUT_SHARE = 0.20
"""The way-out sentence must start within this share of the track's audible speech."""
BELL_FRAMES = bells.singing_bowl(SR).shape[0]
CALM_FEMALE = resolve_voice("calm-female")
NAME = "Robin"
"""The name in lint.SAMPLE_PROFILE, used for -s name=... too."""


def db(x: float) -> float:
    return 20.0 * np.log10(max(float(x), 1e-12))


def rms_db(x: np.ndarray) -> float:
    return db(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else -240.0


def high_share_db(x: np.ndarray, above_hz: float = 1000.0) -> float:
    """Share of the energy above ``above_hz`` (dB): speech is broadband, pacing tones are not."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    return 10.0 * np.log10(max(power[freqs > above_hz].sum(), 1e-30) / max(power.sum(), 1e-30))


def dominant_hz(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return float(np.fft.rfftfreq(x.size, 1 / SR)[np.argmax(power)])


def tone_runs(samples: np.ndarray, start: int, end: int) -> list[tuple[float, float]]:
    """Sounding runs of the pacing tones in frames [start, end), seconds from ``start``.

    A tone fades to silence at the end of each cycle and rises again at the next, so a run
    30 dB under the stretch's peak ends ~0.1 s before each cycle boundary, the same offset
    every cycle: run *ends* repeat exactly at the cycle length. The start of the first run
    is not used (the previous phrase's 40 ms decay overlaps it), and the last 60 ms are left
    out (the next phrase's 10 ms lead).
    """
    stretch = samples[start:end - EDGE]
    threshold = db(np.abs(stretch[EDGE:-EDGE]).max()) - 30.0
    return sounding_runs(stretch, SR, threshold_db=threshold, min_gap_seconds=0.05,
                         window_seconds=0.01)


def check_breathing_stretch(samples: np.ndarray, start: int, end: int, cycle_seconds: float,
                            speech_rms_db: float) -> None:
    """Quiet, tonal, no speech, and paced at exactly ``cycle_seconds`` per breath."""
    inner = samples[start + EDGE:end - EDGE]
    peak = db(np.abs(inner).max())
    assert -45.0 < peak < -25.0, f"pacing tones peak at {peak:.1f} dBFS"
    assert rms_db(inner) < speech_rms_db - 12.0, "tones are not well below the voice"
    assert high_share_db(inner) < -40.0, "broadband sound (speech) inside a breathing stretch"
    assert 180.0 <= dominant_hz(inner) <= 310.0
    runs = tone_runs(samples, start, end)
    pattern = BreathPattern.from_rate(60.0 / cycle_seconds)
    cycles = whole_cycles(pattern, end - start, SR)
    assert cycles >= 1 and len(runs) == cycles, (runs, cycles)
    ends = [b for _, b in runs]
    for k, run_end in enumerate(ends, start=1):
        # The fade to silence leaves each run ending a little (< 0.25 s) before its cycle boundary.
        assert k * cycle_seconds - 0.25 < run_end <= k * cycle_seconds + 0.01, (k, run_end, cycle_seconds)
    assert np.diff(ends) == pytest.approx([cycle_seconds] * (len(ends) - 1), abs=0.015)
    # After the last whole cycle the stretch is silent.
    rest = samples[start + int(round(cycles * cycle_seconds * SR)) + EDGE:end - EDGE]
    if rest.size:
        assert db(np.abs(rest).max()) < -60.0


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Renders each exercise (short, WAV) once, on first use; phrases shared through one cache."""
    folder = tmp_path_factory.mktemp("library")
    cache = folder / "cache"
    done: dict[str, tuple] = {}

    def rendered(name: str):
        if name not in done:
            # espeak-ng, as this file measures it (the default voice renders every exercise in
            # test_estimate.py; its comma pauses would split the sounding runs counted here).
            result = render_track(TrackRequest(exercise=name, length="short", voice_profile=CALM_FEMALE,
                                               output=folder / f"{name}.wav", cache_dir=cache))
            done[name] = (result, decode(result.path))
        return done[name]

    return rendered


@pytest.mark.parametrize("name", EXERCISES)
def test_track_length_equals_the_timeline(library, name):
    result, samples = library(name)
    assert result.path.suffix == ".wav"
    assert samples.size == result.timeline.frames
    assert 60.0 < result.timeline.seconds < 6 * 60.0  # a short version


@pytest.mark.parametrize("name", EXERCISES)
def test_the_predicted_gain_meets_the_target_in_one_pass(library, name):
    """The gain chosen before any speech existed holds: one pass, the written track within
    0.3 LU of -16 LUFS (or, for a mostly-breathing track, its voice at the target's cap)."""
    from compassion_audio.sound.mastering import VOICE_HEADROOM_LU
    from compassion_audio.core.loudness import LoudnessMeter

    result, samples = library(name)
    m = result.mastering
    assert m.passes == 1, m
    assert abs(m.output_lufs + 16.0) <= 0.3 or m.output_voice_lufs >= -16.0 + VOICE_HEADROOM_LU - 0.3, m
    meter = LoudnessMeter(SR, 1)  # the file says what the stream meter said
    meter.add(samples)
    assert meter.integrated_lufs() == pytest.approx(m.output_lufs, abs=0.02)


@pytest.mark.parametrize("name", EXERCISES)
def test_speech_is_heard_in_every_speech_event(library, name):
    result, samples = library(name)
    timeline = result.timeline
    speech = timeline.of_kind("speech")
    assert len(speech) >= 5
    for event in speech:
        region = samples[event.start:event.end]
        assert rms_db(region) > -30.0, f"no speech energy for {event.text!r}"
        assert high_share_db(region) > -25.0, f"not speech-like: {event.text!r}"
    # Audible runs outside bells and breathing stretches: one per sentence (espeak-ng's comma
    # pauses can pass the 0.45 s merge gap, which is under the 0.7 s sentence gap).
    # The bowl rings for 8 s, on past its event (which ends when speech may start), under the
    # first words: its decay is left out between phrases, kept inside them.
    masked = samples.copy()
    keep = np.zeros(samples.size, dtype=bool)
    for event in speech:
        keep[event.start - int(0.02 * SR):event.end + int(0.06 * SR)] = True
    for event in timeline.events:
        if event.kind == "breathe":
            masked[event.start:event.end] = 0.0
        elif event.kind == "bell":
            ring = np.zeros(samples.size, dtype=bool)
            ring[event.start:event.start + BELL_FRAMES] = True
            masked[ring & ~keep] = 0.0
    runs = sounding_runs(masked, SR, threshold_db=-40.0, min_gap_seconds=0.45)
    assert len(speech) <= len(runs) <= len(speech) + max(2, round(0.1 * len(speech))), \
        (len(runs), len(speech))
    # Every run is inside a speech event (allowing the clips' 10 ms lead and 40 ms decay).
    spans = [(e.start / SR - 0.03, e.end / SR + 0.07) for e in speech]
    for run_start, run_end in runs:
        assert any(a <= run_start and run_end <= b for a, b in spans), (run_start, run_end)


@pytest.mark.parametrize("name", EXERCISES)
def test_pauses_and_breathing_stretches_match_the_timeline(library, name):
    result, samples = library(name)
    timeline = result.timeline
    events = timeline.events
    speech_rms = float(np.median([rms_db(samples[e.start:e.end]) for e in timeline.of_kind("speech")]))
    long_pauses = [e for e in events if e.kind == "pause" and e.end - e.start >= 2 * SR]
    stretches = timeline.of_kind("breathe")
    assert long_pauses or stretches, "an exercise with no silence to practise in"
    loud = 10 ** (-45.0 / 20)
    for i, pause in enumerate(events):
        if pause not in long_pauses:
            continue
        inner = samples[pause.start + EDGE:pause.end - EDGE]
        assert db(np.abs(inner).max()) < -60.0, f"sound inside the pause at {pause.start / SR:.1f} s"
        before = next((e for e in reversed(events[:i]) if e.kind != "chapter"), None)
        after = next((e for e in events[i + 1:] if e.kind != "chapter"), None)
        if before is not None and after is not None and before.kind == after.kind == "speech":
            # The pause measures its length between audible speech, to 50 ms.
            window = samples[before.start:after.end]
            mid = (pause.start + pause.end) // 2 - before.start
            last = np.flatnonzero(np.abs(window[:mid]) > loud)[-1]
            first = mid + np.flatnonzero(np.abs(window[mid:]) > loud)[0]
            assert (first - last) / SR == pytest.approx((pause.end - pause.start) / SR, abs=0.05)
    for stretch in stretches:
        rate = stretch.breaths_per_min or 6.0  # the default breathing pace
        check_breathing_stretch(samples, stretch.start, stretch.end, 60.0 / rate, speech_rms)


@pytest.mark.parametrize("name", EXERCISES)
def test_way_out_is_spoken_early(library, name):
    result, samples = library(name)
    speech = result.timeline.of_kind("speech")
    total = sum(e.end - e.start for e in speech)
    heard_before = 0
    for event in speech:
        if WAY_OUT.search(event.text):
            break
        heard_before += event.end - event.start
    else:
        pytest.fail(f"{name}: no way-out sentence ('you can stop at any time')")
    assert heard_before / total <= WAY_OUT_SHARE, f"way out after {heard_before / total:.0%} of the speech"
    assert rms_db(samples[event.start:event.end]) > -30.0


def run_cli(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def speech_segments(timeline_json: Path) -> list[dict]:
    data = json.loads(timeline_json.read_text(encoding="utf-8"))
    return [s for s in data["segments"] if s["kind"] == "speech"]


def test_group_variant_never_speaks_the_name(tmp_path):
    # The individual variant would greet the client by name...
    shown = run_cli("show", "compassionate-self", "-s", f"name={NAME}", "--length", "short")
    assert NAME in shown.output
    # ...the group variant given the same name never says it.
    out = tmp_path / "group.wav"
    run_cli("render", "compassionate-self", "--group", "-s", f"name={NAME}", "--length", "short",
            "-o", str(out), "--timeline", "--captions", "--cache-dir", str(tmp_path / "cache"))
    segments = speech_segments(out.with_suffix(".timeline.json"))
    texts = " ".join(s["text"] for s in segments)
    assert segments and NAME not in texts
    assert "nobody has to close their eyes" in texts.lower()  # the guide's group wording
    for sidecar in (".vtt", ".srt", ".txt"):
        assert NAME not in out.with_suffix(sidecar).read_text(encoding="utf-8")
    samples = decode(out)
    data = json.loads(out.with_suffix(".timeline.json").read_text(encoding="utf-8"))
    assert samples.size / SR == pytest.approx(data["duration_seconds"], abs=0.001)
    for seg in segments:
        assert rms_db(samples[int(seg["start"] * SR):int(seg["end"] * SR)]) > -30.0, seg["text"]


def test_client_profile_name_is_spoken_and_its_breathing_rate_paces_the_tones(tmp_path):
    profile = tmp_path / "robin.toml"
    profile.write_text(SAMPLE_PROFILE, encoding="utf-8")
    rate = 5.5
    assert f"breaths_per_min = {rate}" in SAMPLE_PROFILE
    out = tmp_path / "robin.wav"
    run_cli("render", "soothing-rhythm-breathing", "--client", str(profile), "--length", "short",
            "-o", str(out), "--timeline", "--cache-dir", str(tmp_path / "cache"))
    samples = decode(out)
    data = json.loads(out.with_suffix(".timeline.json").read_text(encoding="utf-8"))
    assert samples.size / SR == pytest.approx(data["duration_seconds"], abs=0.001)
    speech = [s for s in data["segments"] if s["kind"] == "speech"]
    named = [s for s in speech if NAME in s["text"]]
    assert named, "the client's name is not spoken"
    for seg in named:
        assert rms_db(samples[int(seg["start"] * SR):int(seg["end"] * SR)]) > -30.0
    speech_rms = float(np.median([rms_db(samples[int(s["start"] * SR):int(s["end"] * SR)]) for s in speech]))
    stretches = [s for s in data["segments"] if s["kind"] == "breathe"]
    assert len(stretches) == 2
    for seg in stretches:
        start, end = int(round(seg["start"] * SR)), int(round(seg["end"] * SR))
        # 60 / 5.5 = 10.91 s per breath, not the default 10 s.
        check_breathing_stretch(samples, start, end, 60.0 / rate, speech_rms)
