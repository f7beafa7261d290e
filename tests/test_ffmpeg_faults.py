"""ffmpeg missing, failing, hanging, writing garbage or nothing, killed mid-encode or mid-remux:
a clear error within a bounded time, nothing partial, no ffmpeg process left.

The faulty ffmpeg is tests/fake_ffmpeg/ffmpeg, chosen through $COMPASSION_AUDIO_FFMPEG; it spoils
only the call under test (the encode, or the M4A chapters remux) and runs the real ffmpeg for the
rest, so speech is decoded and outputs are checked by the real one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core import ffmpeg_run
from compassion_audio.core.errors import AudioError, EngineUnavailable
from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output import export
from compassion_audio.render import TrackRequest, render_track

from .conftest import decode

FAKE = Path(__file__).parent / "fake_ffmpeg" / "ffmpeg"
REAL = ffmpeg_exe()
SR = 44100
SCRIPT = "Hello there.\n[pause 2s]\nGoodbye.\n"
STALL = 1.0
"""The watchdog's limit in these tests (the product's is ffmpeg_run.STALL_SECONDS)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; only the reaping is missing
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """Set the fake's fault (and stage); returns the file its pids are written to."""
    pids = tmp_path / "ffmpeg-pids"
    monkeypatch.setenv("REAL_FFMPEG", REAL)
    monkeypatch.setenv("COMPASSION_AUDIO_FFMPEG", str(FAKE))
    monkeypatch.setenv("FAKE_FFMPEG_PIDS", str(pids))
    monkeypatch.setattr(ffmpeg_run, "STALL_SECONDS", STALL)
    ffmpeg_exe.cache_clear()

    def choose(fault: str, stage: str = "encode") -> Path:
        monkeypatch.setenv("FAKE_FFMPEG_FAULT", fault)
        monkeypatch.setenv("FAKE_FFMPEG_STAGE", stage)
        return pids

    yield choose
    ffmpeg_exe.cache_clear()


def _render(tmp_path, engine, out: str = "out/track.mp3", **kw):
    script = tmp_path / "mine.txt.j2"
    script.write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "out").mkdir(exist_ok=True)
    request = TrackRequest(exercise=str(script), output=tmp_path / out, mix=MixSettings(bells=False), **kw)
    return render_track(request, engine=engine)


ENCODE_FAULTS = {
    "fail": "error: ffmpeg could not write mp3: Error writing trailer of the output: "
            "Invalid data found when processing input",
    "hang": f"error: ffmpeg could not write mp3: ffmpeg made no progress for {STALL:g} s and was stopped",
    "hang-after": f"error: ffmpeg could not write mp3: ffmpeg made no progress for {STALL:g} s and was stopped",
    "garbage": "error: ffmpeg could not write mp3: what it wrote does not read back as mp3 audio",
    "nothing": "error: ffmpeg could not write mp3: what it wrote does not read back as mp3 audio (0 bytes)",
    "killed": "error: ffmpeg could not write mp3: ffmpeg was killed (SIGKILL)",
}


@pytest.mark.parametrize("fault", list(ENCODE_FAULTS))
def test_a_faulty_encoder_is_a_clear_error_in_bounded_time_with_nothing_left(
        fault, tmp_path, fake_engine, faulty):
    pids = faulty(fault)
    out = tmp_path / "out"
    out.mkdir()
    (out / "track.mp3").write_bytes(b"an earlier track")
    started = time.monotonic()
    with pytest.raises(AudioError) as caught:
        _render(tmp_path, fake_engine, force=True)
    took = time.monotonic() - started
    message = f"error: {caught.value}"
    if fault == "garbage":  # random bytes: mutagen may find no MP3 at all, or a few false frames
        assert message.startswith("error: ffmpeg could not write mp3: "), message
        assert "read back" in message or "lasts" in message, message
    else:
        assert message == ENCODE_FAULTS[fault]
    assert took < STALL + 8, f"took {took:.1f} s"
    assert sorted(p.name for p in out.iterdir()) == ["track.mp3"]  # no partial, no temp name
    assert (out / "track.mp3").read_bytes() == b"an earlier track"
    spoiled = _pids(pids)
    assert spoiled, "the fake ffmpeg was not the one run"
    assert not [pid for pid in spoiled if _alive(pid)], "an ffmpeg process was left running"


def test_the_watchdog_lets_a_slow_producer_be(tmp_path, faulty, monkeypatch):
    """ffmpeg waiting for input is not a stall: a phrase that takes longer than the limit to
    speak (the producer is slow, not ffmpeg) must not get the encoder killed."""
    monkeypatch.setenv("COMPASSION_AUDIO_FFMPEG", REAL)
    ffmpeg_exe.cache_clear()

    def slow_blocks():
        for _ in range(3):
            time.sleep(STALL * 1.5)
            yield np.zeros(SR, dtype=np.float32)

    path = export.encode(slow_blocks(), tmp_path / "slow.flac", sample_rate=SR, channels=1,
                         settings=ExportSettings(format="flac"))
    assert decode(path).size == 3 * SR


@pytest.mark.parametrize("fault", ["killed", "hang", "fail"])
def test_a_faulty_m4a_remux_never_touches_the_final_name(fault, tmp_path, fake_engine, faulty):
    """The chapters remux runs on the temp file: killed, hung or failed, it leaves nothing under
    the final name, no partial file, and no process (the issue once found the final name taken)."""
    pids = faulty(fault, stage="remux")
    script = tmp_path / "mine.txt.j2"
    script.write_text("[chapter One]\nHello there.\n[pause 1s]\n[chapter Two]\nGoodbye.\n", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    request = TrackRequest(exercise=str(script), output=out / "track.m4a", mix=MixSettings(bells=False))
    with pytest.raises(AudioError, match=r"^ffmpeg could not add chapters to the M4A file: "):
        render_track(request, engine=fake_engine)
    assert list(out.iterdir()) == []
    assert _pids(pids) and not [pid for pid in _pids(pids) if _alive(pid)]
    # and the next run, with a working ffmpeg, writes it without --force
    os.environ["COMPASSION_AUDIO_FFMPEG"] = REAL
    ffmpeg_exe.cache_clear()
    result = render_track(request, engine=fake_engine)
    assert result.path.is_file() and [p.name for p in out.iterdir()] == ["track.m4a"]


def test_the_encoded_file_is_checked_against_the_expected_length(tmp_path):
    """export.verify: a right file passes; one cut short, one with a garbled end, fail."""
    blocks = [np.zeros(SR * 4, dtype=np.float32) + 0.01]
    for fmt in ("mp3", "ogg", "m4a", "flac", "wav", "opus"):
        path = export.encode(iter(blocks), tmp_path / f"a.{fmt}", sample_rate=SR, channels=1,
                             settings=ExportSettings(format=fmt))
        export.verify(path, fmt, frames=4 * SR, sample_rate=SR)
        with pytest.raises(AudioError, match=rf"^ffmpeg could not write {fmt}: the file it wrote lasts 4.0"):
            export.verify(path, fmt, frames=5 * SR, sample_rate=SR)
    data = (tmp_path / "a.mp3").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) * 3 // 4])  # the Xing header still says 4 s
    with pytest.raises(AudioError, match=r"^ffmpeg could not write mp3: the end of the file it wrote does not decode"):
        export.verify(cut, "mp3", frames=4 * SR, sample_rate=SR)


def _cli(tmp_path, *args, env_extra: dict | None = None, timeout: float = 60):
    env = {k: v for k, v in os.environ.items() if k not in ("COMPASSION_AUDIO_FFMPEG", "IMAGEIO_FFMPEG_EXE")}
    env.update(TMPDIR=str(tmp_path / "tmp"), **(env_extra or {}))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "compassion_audio", *map(str, args)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("setting, value, problem", [
    ("COMPASSION_AUDIO_FFMPEG", "{tmp}/no/such/ffmpeg", "names no file (set it to the path of an ffmpeg "
     "program, or unset it to use the one on PATH)"),
    ("COMPASSION_AUDIO_FFMPEG", "{tmp}/not-executable", "names a file that is not executable (set it to the "
     "path of an ffmpeg program, or unset it to use the one on PATH)"),
    ("IMAGEIO_FFMPEG_EXE", "{tmp}/no/such/ffmpeg", "names no file (set it to the path of an ffmpeg "
     "program, or unset it to use the bundled one)"),
])
def test_an_ffmpeg_setting_naming_nothing_runnable_is_one_clear_line(tmp_path, setting, value, problem):
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    (tmp_path / "bin").mkdir()  # a PATH without ffmpeg
    env = {setting: value.replace("{tmp}", str(tmp_path)), "PATH": str(tmp_path / "bin")}
    proc = _cli(tmp_path, "render", "t.txt.j2", "--voice", "calm-female", "-o", "x.mp3", env_extra=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"error: ffmpeg not found: ${setting} {problem}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [
        "bin", "not-executable", "t.txt.j2", "tmp"]


def test_without_ffmpeg_on_path_the_wheels_binary_is_used(tmp_path):
    (tmp_path / "bin").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("COMPASSION_AUDIO_FFMPEG", "IMAGEIO_FFMPEG_EXE")}
    env["PATH"] = str(tmp_path / "bin")
    proc = subprocess.run([sys.executable, "-c", "from compassion_audio.core.tools import ffmpeg_exe; "
                           "import imageio_ffmpeg; assert ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe(); "
                           "print(ffmpeg_exe())"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_file()


@pytest.mark.parametrize("fault", ["fail", "killed", "nothing"])
def test_a_faulty_encoder_through_the_cli_is_one_line_with_nothing_left(tmp_path, fault):
    """The same faults through the real command: exit 1, one line, no traceback, no process."""
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    pids = tmp_path / "pids"
    env = {"COMPASSION_AUDIO_FFMPEG": str(FAKE), "REAL_FFMPEG": REAL, "FAKE_FFMPEG_FAULT": fault,
           "FAKE_FFMPEG_STAGE": "encode", "FAKE_FFMPEG_PIDS": str(pids),
           "COMPASSION_AUDIO_CACHE": str(tmp_path / "cache")}
    proc = _cli(tmp_path, "render", "t.txt.j2", "--voice", "calm-female", "--no-bells", "-q", "-o", "out/x.mp3",
                env_extra=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ffmpeg could not write mp3: ")
    assert "Traceback" not in proc.stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert _pids(pids) and not [pid for pid in _pids(pids) if _alive(pid)]


def test_decoding_a_bell_that_hangs_ffmpeg_is_stopped(tmp_path, monkeypatch):
    """run_ffmpeg's watchdog covers decodes too: a decoder that makes no progress is stopped."""
    monkeypatch.setattr(ffmpeg_run, "STALL_SECONDS", STALL)
    sleeper = tmp_path / "sleepy-ffmpeg"
    sleeper.write_text("#!/bin/sh\nexec sleep 600\n")
    sleeper.chmod(0o755)
    monkeypatch.setenv("COMPASSION_AUDIO_FFMPEG", str(sleeper))
    ffmpeg_exe.cache_clear()
    try:
        from compassion_audio.core.audio import decode_file

        bell = tmp_path / "bell.wav"
        bell.write_bytes(b"RIFF")
        started = time.monotonic()
        with pytest.raises(AudioError, match=rf"cannot decode audio: ffmpeg made no progress for {STALL:g} s"):
            decode_file(bell)
        assert time.monotonic() - started < STALL + 5
    finally:
        ffmpeg_exe.cache_clear()


def test_ffmpeg_setting_errors_are_engine_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPASSION_AUDIO_FFMPEG", str(tmp_path / "nothing-here"))
    ffmpeg_exe.cache_clear()
    try:
        with pytest.raises(EngineUnavailable):
            ffmpeg_exe()
    finally:
        ffmpeg_exe.cache_clear()
