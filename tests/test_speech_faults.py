"""Speech engine faults, each injected: a hang, a crash (SIGKILL, SIGSEGV), a silent or empty take,
a temp folder with no room (a full disk, a file-size limit), a neural runtime that does not load,
and a render killed with its worker's temp folder in place. Real espeak-ng workers, run through
tests/faulty_worker.py, with short timeouts; renders through render_track or the real CLI.

Every failure is one SpeechError naming the phrase by its place ("phrase 1 of 3", with its template
line when the caller gives the script's Speech segments), never by its text: the client's name
below must never appear in a message.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core.audio import Audio
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.settings import MixSettings, VoiceSettings
from compassion_audio.render import TrackRequest, prepare_script, render_track
from compassion_audio.speech.cache import ClipCache
from compassion_audio.speech.clip_source import ClipSource
from compassion_audio.speech.engines import pyttsx3_engine
from compassion_audio.speech.engines.pyttsx3_engine import RETRIED_IN_A_ROW_LIMIT, Pyttsx3Engine
from compassion_audio.speech.voices import resolve_voice

from . import faulty_worker
from .conftest import FakeEngine, decode, sounding_runs
from .test_clip_source import alive

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parent.parent
NAME = "Quintessa"
"""A client's name: it is in two of the phrases, and must be in no message."""
SCRIPT = """+++
title = "Fault probe"
[params]
name = { type = "str", default = "friend" }
+++
Welcome, {{ name }}, settle into your seat.
[pause 1s]
Notice the breath moving in and out.
[pause 1s]
Rest here for a moment, {{ name }}.
"""
LINES = (6, 8, 10)
"""The template line of each phrase."""


@pytest.fixture
def template(tmp_path) -> Path:
    path = tmp_path / "probe.txt.j2"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """This test's own TMPDIR (the engines' temp folders go there), for this process and its children."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return folder


@pytest.fixture
def fault(monkeypatch, tmp_path, scratch):
    """``fault(kind, when)``: engines started from now on run tests/faulty_worker.py with that
    fault; ``when`` is "always", "after-first" or "once" (one phrase, in the first worker)."""
    monkeypatch.setattr(pyttsx3_engine, "WORKER_MODULE", "tests.faulty_worker")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

    def set_up(kind: str, when: str) -> None:
        if when == "once":
            token = tmp_path / f"{kind}-token"
            token.write_text("once\n", encoding="utf-8")
            when = str(token)
        monkeypatch.setenv(faulty_worker.FAULT_ENV, f"{kind}:{when}")

    return set_up


def request(template: Path, out: Path, cache: Path, **changes) -> TrackRequest:
    return TrackRequest(exercise=str(template), values={"name": NAME}, output=out, cache_dir=cache,
                        voice_profile=resolve_voice("calm-female"), mix=MixSettings(bells=False),
                        **changes)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npy")) if cache.exists() else []


def speech_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(pyttsx3_engine.SCRATCH_PREFIX + "*"))


def render_failure(template: Path, tmp_path: Path, engine) -> tuple[SpeechError, float]:
    out, cache = tmp_path / "out.wav", tmp_path / "cache"
    start = time.perf_counter()
    with pytest.raises(SpeechError) as info:
        render_track(request(template, out, cache), engine=engine)
    seconds = time.perf_counter() - start
    assert NAME not in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    return info.value, seconds


def all_ended(pids: list[int]) -> bool:
    deadline = time.monotonic() + 5.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


# --- 1. hangs: a timeout, one retry in a fresh worker, then a clear error; the circuit breaker --

def test_a_phrase_that_keeps_hanging_stops_the_render_naming_its_place(fault, template, tmp_path,
                                                                       started_workers):
    """Timeout T = 1 s: the phrase is waited for, retried once in a fresh worker, waited for
    again, then the render stops - in 2T plus two worker starts (measured ~2.8 s; 61.0 s at the
    default T = 30 s)."""
    fault("hang", "always")
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=1.0) as engine:
        error, seconds = render_failure(template, tmp_path, engine)
    assert str(error) == ("could not speak phrase 1 of 3 (line 6 of probe.txt.j2): the speech engine failed (no answer within 1 s: "
                          "the engine hung), and again in a fresh worker (no answer within 1 s: the engine hung)")
    assert 2.0 <= seconds < 2.0 + 2 * 3.0, seconds
    assert len(started_workers) == 3 and all_ended(started_workers)  # first, retry, and the one after
    assert entries(tmp_path / "cache") == []


def test_the_message_gives_the_template_line_when_the_segments_are_given(fault, template, tmp_path):
    fault("hang", "always")
    _exercise, script = prepare_script(request(template, tmp_path / "x.wav", tmp_path / "cache"))
    assert [s.line for s in script.speech] == list(LINES)
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=0.5) as engine:
        source = ClipSource(script.speech, engine, ClipCache(tmp_path / "cache"), sample_rate=44100,
                            source=script.source)
        with pytest.raises(SpeechError) as info:
            list(source.ahead())
    assert str(info.value).startswith(f"could not speak phrase 1 of 3 (line 6 of {script.source}): "
                                      "the speech engine failed (no answer within 0.5 s")
    assert NAME not in str(info.value)


def test_a_render_names_the_template_line_of_the_failing_phrase(fault, template, tmp_path):
    fault("hang", "always")
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=0.5) as engine:
        error, _ = render_failure(template, tmp_path, engine)
    assert str(error).startswith(f"could not speak phrase 1 of 3 (line 6 of {template.name}")


def test_an_engine_that_hangs_after_every_phrase_is_stopped_by_the_circuit_breaker(fault, tmp_path,
                                                                                    started_workers):
    """Each fresh worker speaks one phrase, then hangs: every later phrase costs a timeout and a
    new worker. After RETRIED_IN_A_ROW_LIMIT (3) such phrases in a row the engine stops: the
    render fails within 3 (T + worker start) + the phrases' own time, however long the script
    (here 12 phrases; measured ~4.5 s at T = 1 s; ~92 s at the default T = 30 s)."""
    fault("hang", "after-first")
    sentences = [f"This is sentence number {i}, {NAME}." for i in range(12)]
    cache = ClipCache(tmp_path / "cache")
    start = time.perf_counter()
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=1.0) as engine:
        got = []
        with pytest.raises(SpeechError) as info:
            for item in ClipSource(sentences, engine, cache, sample_rate=44100).ahead():
                got.append(item)
        with pytest.raises(SpeechError, match="stopped, as it is not working reliably here"):
            engine.synthesize("Anything else.")  # the breaker stays open: no more timeouts
    seconds = time.perf_counter() - start
    assert str(info.value) == (
        f"could not speak phrase {RETRIED_IN_A_ROW_LIMIT + 1} of 12: the speech engine failed on each of "
        f"the last {RETRIED_IN_A_ROW_LIMIT} phrases and spoke them only in a fresh worker (no answer "
        "within 1 s: the engine hung): stopped, as it is not working reliably here")
    assert len(got) <= RETRIED_IN_A_ROW_LIMIT  # the clips before the breaker opened are good
    assert seconds < RETRIED_IN_A_ROW_LIMIT * (1.0 + 2.0) + 2.0, seconds
    assert len(started_workers) == RETRIED_IN_A_ROW_LIMIT + 1 and all_ended(started_workers)


def test_phrases_that_need_no_retry_reset_the_breaker(fault, tmp_path):
    """One hang among many phrases (the first worker's second phrase): retried, and the
    render goes on - the breaker counts retries in a row only."""
    fault("hang", "once")
    sentences = [f"Breath number {i}, slowly." for i in range(6)]
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=1.0) as engine:
        clips = list(ClipSource(sentences, engine, ClipCache(tmp_path / "cache"), sample_rate=44100).ahead())
        assert engine._retried_in_a_row == 0
    assert [s for s, _ in clips] == sentences


# --- 2. crashes: the worker killed mid-render -------------------------------------------------

@pytest.mark.parametrize("kind", ["segv", "kill"])
def test_a_worker_killed_mid_render_is_replaced_and_the_phrase_spoken_again(kind, fault, template, tmp_path,
                                                                            started_workers):
    fault(kind, "once")
    out = tmp_path / "out.wav"
    start = time.perf_counter()
    with Pyttsx3Engine(VoiceSettings()) as engine:
        result = render_track(request(template, out, tmp_path / "cache"), engine=engine)
    seconds = time.perf_counter() - start
    assert result.synthesised == 3 and len(started_workers) == 2 and all_ended(started_workers)
    assert len(sounding_runs(decode(out), 44100, min_gap_seconds=0.8)) == 3  # three phrases spoken, none lost
    assert len(entries(tmp_path / "cache")) == 3
    assert seconds < 15.0, seconds


def test_a_worker_that_keeps_crashing_fails_the_render_in_one_line(fault, template, tmp_path, started_workers):
    fault("segv", "always")
    with Pyttsx3Engine(VoiceSettings()) as engine:
        error, seconds = render_failure(template, tmp_path, engine)
    assert str(error) == ("could not speak phrase 1 of 3 (line 6 of probe.txt.j2): the speech engine failed (the engine crashed with "
                          "SIGSEGV), and again in a fresh worker (the engine crashed with SIGSEGV)")
    assert seconds < 10.0 and all_ended(started_workers)


def test_a_worker_killed_from_outside_mid_phrase_is_replaced(fault, tmp_path, started_workers):
    """The worker is killed by pid (as the OOM killer would) while it speaks."""
    fault("hang", "once")  # holds the phrase, so the kill lands mid-phrase
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=10.0) as engine:
        victim = engine._worker.pid
        killer = _after(0.5, lambda: os.kill(victim, signal.SIGKILL))
        start = time.perf_counter()
        audio = engine.synthesize("Still here, breathing.")
        seconds = time.perf_counter() - start
        killer.join()
    assert audio.frames > 0 and seconds < 5.0, seconds  # not the 10 s timeout: the death is seen at once
    assert started_workers[0] == victim and len(started_workers) == 2 and all_ended(started_workers)


def _after(seconds: float, action):
    """Run ``action`` on a timer thread after ``seconds`` (a process already gone is no error)."""
    import threading

    def run() -> None:
        with contextlib.suppress(ProcessLookupError):
            action()

    thread = threading.Timer(seconds, run)
    thread.start()
    return thread


# --- 3. silence or an empty file ------------------------------------------------------------

@pytest.mark.parametrize("kind, what", [("silent", "the engine wrote silence"),
                                        ("empty", "the engine wrote no audio")])
def test_a_silent_or_empty_take_is_spoken_again_then_refused(kind, what, fault, template, tmp_path,
                                                             started_workers):
    fault(kind, "always")
    with Pyttsx3Engine(VoiceSettings()) as engine:
        error, _ = render_failure(template, tmp_path, engine)
    assert str(error) == f"could not speak phrase 1 of 3 (line 6 of probe.txt.j2): the speech engine failed ({what}), and again " \
                         f"in a fresh worker ({what})"
    assert entries(tmp_path / "cache") == []  # never cached as speech
    assert all_ended(started_workers)


@pytest.mark.parametrize("kind", ["silent", "empty"])
def test_one_silent_or_empty_take_is_replaced_by_a_spoken_one(kind, fault, template, tmp_path, started_workers):
    fault(kind, "once")
    out = tmp_path / "out.wav"
    with Pyttsx3Engine(VoiceSettings()) as engine:
        render_track(request(template, out, tmp_path / "cache"), engine=engine)
    assert len(sounding_runs(decode(out), 44100, min_gap_seconds=0.8)) == 3 and len(started_workers) == 2


class SilentAt(FakeEngine):
    """The fake engine, but one phrase comes back as silence (an engine with no worker to replace)."""

    def synthesize(self, text: str) -> Audio:
        audio = super().synthesize(text)
        if "breath" in text:
            return Audio(np.zeros_like(audio.samples), audio.sample_rate)
        return audio


def test_silence_from_any_engine_is_never_assembled_or_cached(template, tmp_path):
    out, cache = tmp_path / "out.wav", tmp_path / "cache"
    with pytest.raises(SpeechError) as info:
        render_track(request(template, out, cache), engine=SilentAt())
    assert str(info.value) == "the speech engine produced no audible speech for phrase 2 of 3 (line 8 of probe.txt.j2)"
    assert not out.exists() and len(entries(cache)) <= 2  # the others may be cached; never the silence
    engine = FakeEngine()
    render_track(request(template, out, cache), engine=engine)
    assert "Notice the breath moving in and out." in engine.calls and len(entries(cache)) == 3


# --- 4. no room in the temp folder ----------------------------------------------------------

def test_a_full_temp_folder_is_reported_at_once(scratch, started_workers):
    """Every WAV the worker writes goes to /dev/full (ENOSPC on write, as on a full disk)."""
    with Pyttsx3Engine(VoiceSettings(), timeout_seconds=30.0) as engine:
        for n in range(1, 5):
            (engine._folder / f"phrase-{n}.wav").symlink_to("/dev/full")
        start = time.perf_counter()
        with pytest.raises(SpeechError) as info:
            engine.synthesize(f"Hello there, {NAME}.")
        seconds = time.perf_counter() - start
    assert str(info.value) == (f"no space left in the temporary folder {scratch} "
                               "(free some space or set TMPDIR to another disk)")
    assert seconds < 2.0, seconds  # not the 30 s timeout
    assert len(started_workers) == 1 and all_ended(started_workers)  # no retry: it would meet the same wall


RUN_CLI = textwrap.dedent("""
    import resource, signal, sys
    limit, xfsz = int(sys.argv[1]), sys.argv[2]
    from compassion_audio.speech.engines import pyttsx3_engine
    pyttsx3_engine.TIMEOUT_SECONDS = float(sys.argv[3])
    if sys.argv[4] != "-":
        pyttsx3_engine.WORKER_MODULE = sys.argv[4]
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN if xfsz == "ignored" else signal.SIG_DFL)
    from compassion_audio.cli import main
    sys.argv = ["compassion-audio", *sys.argv[5:]]
    main()
""")


def run_cli(tmp_path: Path, template: Path, *, limit: int = 0, xfsz: str = "ignored", timeout: float = 30.0,
            worker: str = "-", fault: str | None = None, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own, with its own TMPDIR and, when asked, a file-size
    limit, the speech timeout and a faulty worker."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    env.pop(faulty_worker.FAULT_ENV, None)
    if fault:
        env[faulty_worker.FAULT_ENV] = fault
    cmd = [sys.executable, "-c", RUN_CLI, str(limit), xfsz, str(timeout), worker,
           "render", str(template), "-s", f"name={NAME}", "--no-bells", "--no-cache",
           "-o", str(tmp_path / "out.wav"), *args]
    if "--voice" not in args:
        cmd += ["--voice", "calm-female"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


@pytest.mark.parametrize("xfsz", ["ignored", "default"])
def test_a_file_size_limit_is_reported_at_once_through_the_cli(xfsz, template, tmp_path):
    """RLIMIT_FSIZE of 16 kB: the worker's WAV write fails with EFBIG (SIGXFSZ ignored) or the
    worker is killed by SIGXFSZ (its default action): either way one line naming the limit and the
    folder, at once - not "no answer within 30 s"."""
    start = time.perf_counter()
    proc = run_cli(tmp_path, template, limit=16384, xfsz=xfsz)
    seconds = time.perf_counter() - start
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: could not speak phrase 1 of 3 (line 6 of probe.txt.j2): the file-size limit (ulimit -f) stops the speech engine "
        f"writing to the temporary folder {tmp_path / 'tmp'} (raise the limit, e.g. `ulimit -f unlimited`)"]
    assert seconds < 10.0, seconds
    assert not (tmp_path / "out.wav").exists() and speech_folders(tmp_path / "tmp") == []


def test_a_hang_through_the_cli_is_one_line_and_leaves_no_worker(template, tmp_path):
    proc = run_cli(tmp_path, template, timeout=1.0, worker="tests.faulty_worker", fault="hang:always")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: could not speak phrase 1 of 3 (line 6 of probe.txt.j2): the speech engine failed (no answer within 1 s: the engine "
        "hung), and again in a fresh worker (no answer within 1 s: the engine hung)"]
    assert workers_with(str(tmp_path)) == [] and speech_folders(tmp_path / "tmp") == []


def workers_with(marker: str) -> list[int]:
    """Speech workers still running whose environment names ``marker`` (this test's folders)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"_pyttsx3_worker" not in (proc / "cmdline").read_bytes() and \
                    b"faulty_worker" not in (proc / "cmdline").read_bytes():
                continue
            if marker.encode() in (proc / "environ").read_bytes() and alive(int(proc.name)):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


# --- 5. the neural runtime failing to load ----------------------------------------------------

SHADOWS = {
    "import-error": 'raise ImportError("libonnxruntime.so: cannot open shared object file")\n',
    "runtime-error": 'raise RuntimeError("module compiled against API version 0x10 but this numpy is 0xe")\n',
}


@pytest.mark.parametrize("shadow", sorted(SHADOWS))
def test_a_neural_runtime_that_cannot_load_falls_back_announced(shadow, template, tmp_path, isolated_voices):
    """An onnxruntime that fails to import (a shadow package first on PYTHONPATH): the default voice
    is replaced by its announced fallback, in one warning line - never a traceback."""
    fake = tmp_path / "shadow" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(SHADOWS[shadow], encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]),
               TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", str(template), "-s",
                           f"name={NAME}", "--no-bells", "--no-cache", "-q", "-o", str(tmp_path / "out.wav")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("warning: voice 'heart' cannot be used here (the hibari neural voice cannot "
                           "load (onnxruntime: ")
    assert line.endswith("speaking with 'calm-female' (Calm female (espeak-ng)) instead")
    assert len(sounding_runs(decode(tmp_path / "out.wav"), 44100, min_gap_seconds=0.8)) == 3


def test_a_neural_runtime_that_imports_but_cannot_run_is_one_clear_line(template, tmp_path, isolated_voices):
    """An onnxruntime that imports but cannot make a session (a broken native library): one line
    naming the model, exit 1, nothing written."""
    fake = tmp_path / "shadow" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(textwrap.dedent("""
        __version__ = "0.0-broken"
        class SessionOptions:
            pass
        class InferenceSession:
            def __init__(self, *args, **kwargs):
                raise RuntimeError("onnxruntime_pybind11_state.so: undefined symbol: OrtGetApiBase")
    """), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]), TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", str(template), "-s",
                           f"name={NAME}", "--no-bells", "--no-cache", "-q", "-o", str(tmp_path / "out.wav")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: hibari cannot load ") and line.endswith(
        ".onnx: onnxruntime_pybind11_state.so: undefined symbol: OrtGetApiBase")
    assert NAME not in proc.stderr and not (tmp_path / "out.wav").exists()


# --- 6. the worker's temp folder ------------------------------------------------------------

def test_the_speech_folder_is_removed_when_a_render_ends(template, tmp_path):
    proc = run_cli(tmp_path, template)
    assert proc.returncode == 0, proc.stderr
    assert speech_folders(tmp_path / "tmp") == []


HOLD = textwrap.dedent("""
    import sys, time
    from compassion_audio.core.settings import VoiceSettings
    from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine
    engine = Pyttsx3Engine(VoiceSettings())
    engine.synthesize("Hold on.")
    print(engine._folder, engine._worker.pid, flush=True)
    time.sleep(60)
""")


def test_a_killed_renders_speech_folder_is_swept_by_the_next_run(template, tmp_path):
    """kill -9 of a process using the engine: its folder stays (nothing can run at SIGKILL) and its
    worker ends (stdin closed); the next run that starts an engine in the same TMPDIR removes it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        folder, worker = holder.stdout.readline().split()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert Path(folder).is_dir() and speech_folders(tmp) == [Path(folder).name]
    assert all_ended([int(worker)])
    proc = run_cli(tmp_path, template)
    assert proc.returncode == 0, proc.stderr
    assert speech_folders(tmp) == []
