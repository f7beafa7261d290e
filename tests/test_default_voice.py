"""The default voice and the shipped voices: hibari's heart by default, every shipped voice that works
here rendering a real track (speech, exact pauses, loudness), the same samples on every render, the
announced espeak-ng fallback when the neural runtime cannot load, and clear errors for voices that
cannot be used - never a quiet substitution.

Figures measured when this file was written (2 cores): the plain 3-phrase track renders with heart
in ~2 s cold (model load included), pauses within 10 ms, -16.0 LUFS; with onnxruntime blocked the
render is sample-identical to `--voice calm-female`.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from compassion_audio.core.errors import EngineUnavailable, VoiceError
from compassion_audio.core.settings import MixSettings
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.speech import voices
from compassion_audio.speech.voice_listing import VoiceListing

from .conftest import decode, ebur128
from .test_voice_renders import PLAIN, PLAIN_PAUSES, cli_run, gaps, median_f0, voice_runs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("isolated_voices")]

SHIPPED = sorted(p.stem for p in voices.PROFILES_DIR.glob("*.toml"))


@pytest.fixture
def plain(tmp_path):
    path = tmp_path / "plain.txt.j2"
    path.write_text(PLAIN, encoding="utf-8")
    return path


def listing() -> dict[str, VoiceListing]:
    return {row.name: row for row in voices.list_voices() if row.kind == "profile"}


# --- the default -----------------------------------------------------------------------------

def test_the_default_is_hibari_heart():
    profile = voices.resolve_voice(None)
    assert (profile.key, profile.settings.engine, profile.settings.voice) == ("heart", "hibari", "heart")
    assert profile.fallback == "calm-female" and profile.speed == 0.65
    assert profile.source.parent == voices.PROFILES_DIR  # package data, found in every install
    rows = listing()
    assert [name for name, row in rows.items() if row.default] == ["heart"]
    assert rows["heart"].works_here, rows["heart"].why_not


def test_voices_lists_each_voice_with_engine_accent_licence_and_default():
    result = cli_run("voices")
    lines = result.stdout.splitlines()
    rows = {line[4:].split()[0]: line for line in lines if line[:4] in ("ok  ", "n/a ")}
    assert sorted(rows) == SHIPPED
    assert lines[0].startswith("ok  heart ") and lines[0].endswith("(default)")
    assert "hibari   US English       Apache-2.0" in rows["heart"]
    assert "piper    US English       CC0 voice, GPL-3.0 engine" in rows["neural-joe"]
    assert "pyttsx3  British English  GPL-3.0" in rows["calm-female"]
    assert "pyttsx3  British English  GPL-3.0" in rows["british-male"]
    for name, file in (("emma", "bf_emma.int8.onnx"), ("fable", "bm_fable.int8.onnx"),
                       ("fenrir", "am_fenrir_v2.int8.onnx")):
        assert rows[name].startswith("n/a ") and f"compassion-audio voices add {file}" in rows[name]
    assert [name for name, line in rows.items() if "(default)" in line] == ["heart"]


def test_voices_licences_point_at_hibaris_notice():
    result = cli_run("voices", "--licences")
    assert "heart: Apache-2.0 (hibari-tts code and model; distilled from Kokoro-82M af_heart" in result.stdout
    assert "lessac" in result.stdout  # joe's caveat
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("hibari-tts:"))
    notice = next(p for p in line.split(": ", 1)[1].split(", ") if p.endswith("NOTICE"))
    text = open(notice, encoding="utf-8").read()
    assert "Kokoro-82M" in text and "Apache-2.0" in text


def test_a_missing_default_profile_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(voices, "PROFILES_DIR", tmp_path / "nothing-here")
    with pytest.raises(VoiceError) as err:
        voices.resolve_voice(None)
    assert str(err.value).startswith("the default voice 'heart' is missing: no heart.toml in ")


# --- every shipped voice renders -------------------------------------------------------------

@pytest.mark.parametrize("key", SHIPPED)
def test_every_shipped_voice_that_works_here_renders_a_track(key, plain, tmp_path):
    row = listing()[key]
    if not row.works_here:
        pytest.skip(f"{key} does not work here: {row.why_not}")
    out = tmp_path / f"{key}.wav"
    cli_run("render", plain, "--voice", key, "-o", out, "--no-bells", "--timeline", "-q")
    samples = decode(out)
    runs = voice_runs(samples)
    assert len(runs) == 3, runs
    assert gaps(runs) == pytest.approx(PLAIN_PAUSES, abs=0.05)
    assert all(end - start > 0.8 for start, end in runs), runs  # each run is a spoken phrase
    meter = ebur128(out)
    assert meter["integrated"] == pytest.approx(-16.0, abs=1.0)
    assert meter["true_peak"] <= -1.0 + 0.1


def test_default_voice_renders_the_same_samples_from_an_empty_cache(plain, tmp_path):
    results = [render_track(TrackRequest(exercise=str(plain), output=tmp_path / f"{i}.wav",
                                         mix=MixSettings(bells=False), use_cache=False))
               for i in range(2)]
    assert [r.synthesised for r in results] == [3, 3]
    first, second = (decode(r.path) for r in results)
    assert first.size == second.size and np.array_equal(first, second)


# --- the announced fallback, and clear errors ------------------------------------------------

BLOCKED_RUN = textwrap.dedent("""
    import sys
    for name in filter(None, sys.argv[1].split(",")):
        sys.modules[name] = None  # as if the neural runtime could not be imported here
    from compassion_audio.cli import main
    sys.argv = ["compassion-audio", *sys.argv[2:]]
    main()
""")


def run_blocked(blocked: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, blocked, *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("blocked", ["onnxruntime", "hibari"])
def test_without_the_neural_runtime_a_render_falls_back_to_espeak_and_says_so_once(blocked, plain, tmp_path):
    out = tmp_path / "fallback.wav"
    proc = run_blocked(blocked, "render", plain, "-o", out, "--no-bells", "--no-cache", "-q")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"warning: voice 'heart' cannot be used here (the hibari neural voice "
                               f"cannot load ({blocked}")
    assert lines[0].endswith("speaking with 'calm-female' (Calm female (espeak-ng)) instead")
    assert proc.stdout.strip() == str(out)
    # What choosing calm-female makes: its voice (pitch) and phrase lengths. Not to the sample:
    # espeak-ng's takes vary by a few samples between runs.
    chosen = tmp_path / "chosen.wav"
    cli_run("render", plain, "--voice", "calm-female", "-o", chosen, "--no-bells", "--no-cache", "-q")
    fallback, espeak = decode(out), decode(chosen)
    assert [b - a for a, b in voice_runs(fallback)] == pytest.approx([b - a for a, b in voice_runs(espeak)],
                                                                      abs=0.01)
    assert median_f0(fallback) == pytest.approx(median_f0(espeak), rel=0.03)


def test_the_library_warns_when_it_falls_back(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    heart = voices.resolve_voice(None)
    with pytest.warns(voices.VoiceFallback, match=r"voice 'heart' cannot be used here .*'calm-female'"):
        assert voices.usable(heart).key == "calm-female"
    row = listing()["heart"]
    assert not row.works_here and row.why_not.endswith("(renders fall back to 'calm-female')")


def test_a_voice_without_a_fallback_is_an_error_when_its_engine_cannot_load(monkeypatch, plain, tmp_path):
    monkeypatch.setitem(sys.modules, "piper", None)
    out = tmp_path / "joe.wav"
    result = cli_run("render", plain, "--voice", "neural-joe", "-o", out, code=1)
    assert result.output.strip().splitlines()[-1] == \
        "error: the Piper neural voice needs piper-tts: pip install 'compassion-audio[neural]'"
    assert isinstance(result.exception, SystemExit) and not out.exists()
    with pytest.raises(EngineUnavailable):
        voices.create_engine(voices.resolve_voice("neural-joe"))


def test_naming_a_voice_whose_file_is_missing_is_a_clear_error(plain, tmp_path):
    out = tmp_path / "emma.wav"
    result = cli_run("render", plain, "--voice", "emma", "-o", out, code=1)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: hibari voice 'emma' is not installed: it is not inside hibari-tts and is "
                           "never downloaded here; bring bf_emma.int8.onnx")
    assert last.endswith("and run: compassion-audio voices add bf_emma.int8.onnx")
    assert not out.exists() and "warning" not in result.output


def test_naming_an_unknown_voice_is_a_clear_error(plain, tmp_path):
    result = cli_run("render", plain, "--voice", "hart", "-o", tmp_path / "x.wav", code=1)
    assert result.output.strip().splitlines()[-1].startswith("error: unknown voice 'hart' (close matches: heart")
