"""Stopping a render: SIGTERM and Ctrl-C stop it cleanly; after kill -9 the next run removes what was left.

Every render here is the real CLI in a subprocess, with its own TMPDIR, cache and output folder.
The temp files of atomic_output (``.<stem>.<8 hex>.partial<suffix>``) and the temp folders of
core/files.HeldFolder are locked by their writer while it runs; what a killed writer left is
removed by the next run, what a running one holds is never touched.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.album import jobs
from compassion_audio.core import files
from compassion_audio.core.files import atomic_output, held_folder, sweep_orphans, sweep_partials
from compassion_audio.core.signals import Terminated, stop_on_sigterm
from compassion_audio.speech.cache import SPOOL_PREFIX

from .conftest import decode, processes_where

LONG = """\
+++
title = "Long"
+++
{% for i in range(n) %}{% if i % 4 == 0 %}[chapter Part {{ i // 4 + 1 }}]
{% endif %}This is sentence number {{ i }} of a slow and gentle practice. [pause 1s]
{% endfor %}
"""


def _write_template(folder: Path, sentences: int) -> Path:
    template = folder / "long.txt.j2"
    template.write_text(LONG.replace("range(n)", f"range({sentences})"), encoding="utf-8")
    return template


def _env(tmp_path: Path) -> dict:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp_path / "tmp"), COMPASSION_AUDIO_CACHE=str(tmp_path / "cache"))


def _render_args(template: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "compassion_audio", "render", str(template), "-o", str(output),
            "--voice", "calm-female", "--no-bells", *extra]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(c) for c in task.read_text().split())
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


def _wait_for(proc: subprocess.Popen, ready, what: str, seen: set[int], timeout: float = 120.0) -> None:
    """Poll until ``ready()``; note the process's children meanwhile (short-lived ones too)."""
    deadline = time.monotonic() + timeout
    while not ready():
        seen |= _children(proc.pid)
        assert proc.poll() is None, f"the render ended before {what}: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.001)
    seen |= _children(proc.pid)


def _encoding(proc: subprocess.Popen, out: Path, stem: str, suffix: str):
    """The encoder has written into the render's temp file."""
    def ready() -> bool:
        return any(p.name.startswith(f".{stem}.") and p.name.endswith(f".partial{suffix}") and p.stat().st_size > 0
                   for p in out.iterdir())
    return ready


def _speaking(proc: subprocess.Popen, out: Path, stem: str, suffix: str):
    """The render's temp file exists (made before the first phrase is spoken) but is still empty."""
    def ready() -> bool:
        return any(p.name.startswith(f".{stem}.") and p.stat().st_size == 0 for p in out.iterdir())
    return ready


def _remuxing(proc: subprocess.Popen, out: Path, stem: str, suffix: str):
    """The M4A's chapters are being added: the ffmpeg that copies the encoded file beside the
    render's temp file (reading FFMETADATA) has started."""
    def ready() -> bool:
        for child in _children(proc.pid):
            try:
                if b"ffmetadata" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return True
            except OSError:
                pass
        return False
    return ready


@pytest.mark.engine
@pytest.mark.parametrize("signum, code, options", [
    (signal.SIGTERM, 143, ()),
    (signal.SIGINT, 130, ()),
    (signal.SIGTERM, 143, ("--no-cache",)),
], ids=["sigterm", "ctrl-c", "sigterm-no-cache"])
def test_a_stopped_render_ends_within_2_s_leaving_no_process_or_file(tmp_path, signum, code, options):
    template, out = _write_template(tmp_path, 30), tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(_render_args(template, out / "x.mp3", *options), env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: set[int] = set()
    try:
        _wait_for(proc, _encoding(proc, out, "x", ".mp3"), "encoding", children)
        running = {pid for pid in children if _alive(pid)}
        assert running, "a render that is encoding runs ffmpeg and a speech worker"
        threads = len(list(Path(f"/proc/{proc.pid}/task").iterdir()))
        assert threads > 1  # the encoder's feeder and the speech threads: they must not keep it alive
        os.kill(proc.pid, signum)
        started = time.monotonic()
        assert proc.wait(timeout=10) == code
        assert time.monotonic() - started < 2.0
        stderr = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert stderr.splitlines()[-1] == "stopped: nothing was left half-written"
    assert "Traceback" not in stderr
    assert [pid for pid in running if _alive(pid)] == []  # no ffmpeg, no speech worker
    assert sorted(os.listdir(out)) == []
    assert sorted(os.listdir(tmp_path / "tmp")) == []


def _kill_then_rerun(tmp_path: Path, fmt: str, moment) -> tuple[Path, Path]:
    template, out = _write_template(tmp_path, 8), tmp_path / "out"
    out.mkdir()
    target = out / f"x.{fmt}"
    env = _env(tmp_path)
    proc = subprocess.Popen(_render_args(template, target), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: set[int] = set()
    try:
        _wait_for(proc, moment(proc, out, "x", f".{fmt}"), moment.__name__, children)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    deadline = time.monotonic() + 15  # its ffmpeg and speech worker notice and end by themselves
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not target.exists()                 # nothing under the final name
    assert _partials(out)                      # what the kill left: the temp file(s)
    rerun = subprocess.run(_render_args(template, target), env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert _partials(out) == [] and sorted(os.listdir(out)) == [target.name]
    clean = tmp_path / "clean" / target.name
    clean.parent.mkdir()
    built = subprocess.run(_render_args(template, clean), env=env, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return target, clean


@pytest.mark.engine
@pytest.mark.parametrize("fmt, moment", [("mp3", _speaking), ("mp3", _encoding), ("m4a", _remuxing)],
                         ids=["speaking", "encoding", "m4a-remux"])
def test_after_kill_9_the_rerun_removes_the_debris_and_matches_a_clean_build(tmp_path, fmt, moment):
    target, clean = _kill_then_rerun(tmp_path, fmt, moment)
    got, want = decode(target), decode(clean)
    assert got.size == want.size
    assert got.size > 44100 * 8  # eight phrases and their pauses
    assert np.max(np.abs(got - want)) < 1e-4  # both from the same cached clips: the same samples


@pytest.mark.engine
def test_a_killed_no_cache_render_leaves_a_spool_the_next_run_removes(tmp_path):
    template, out = _write_template(tmp_path, 8), tmp_path / "out"
    out.mkdir()
    env, temp = _env(tmp_path), tmp_path / "tmp"
    proc = subprocess.Popen(_render_args(template, out / "x.mp3", "--no-cache"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(proc, _encoding(proc, out, "x", ".mp3"), "encoding", set())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.stderr.close()
    left = [p.name for p in temp.iterdir() if p.name.startswith(SPOOL_PREFIX)]
    assert len(left) == 1 and any((temp / left[0]).rglob("*.npy"))
    rerun = subprocess.run(_render_args(template, out / "x.mp3", "--no-cache"), env=env, capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [p.name for p in temp.iterdir() if p.name.startswith(SPOOL_PREFIX)] == []
    assert _partials(out) == []


def test_sigterm_unwinds_the_block_once_and_the_outer_block_decides():
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # else the kill below would end pytest
    cleaned = []
    with pytest.raises(Terminated) as caught:
        with stop_on_sigterm():
            handler = signal.getsignal(signal.SIGTERM)
            with stop_on_sigterm():  # nested (the cache's --no-cache block inside the CLI's): the same handler
                assert signal.getsignal(signal.SIGTERM) is handler
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)  # the handler raises before this ends
                finally:
                    os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM during the cleanup is ignored
                    cleaned.append(True)
    assert cleaned == [True]
    assert caught.value.code == 143 and caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# The lock rule itself: a running writer's files are never removed, a dead one's always are.

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from compassion_audio.core.files import atomic_output, held_folder
    out, temp = Path(sys.argv[1]), Path(sys.argv[2])
    with atomic_output(out / "busy.mp3") as tmp, held_folder("compassion-audio-clips-", temp) as folder:
        tmp.write_bytes(b"half")
        print(tmp.name, folder.name, flush=True)
        sys.stdin.read()  # until the test closes it
        tmp.write_bytes(b"whole")
""")


def _orphan_partial(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"left by a killed render")
    return path


def _orphan_folder(parent: Path, name: str, *, owner: bool = True) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "clip.npy").write_bytes(b"x")
    if owner:
        (folder / files.OWNER_FILE).write_bytes(b"")  # nobody holds its lock: its process is gone
    return folder


def test_a_running_writers_temp_files_are_kept_and_a_dead_ones_removed(tmp_path):
    out, temp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    temp.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(temp)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        partial, folder = writer.stdout.readline().split()
        dead = _orphan_partial(out, ".old.0123abcd.partial.mp3")
        dead_folder = _orphan_folder(temp, f"{SPOOL_PREFIX}dead1234")
        with atomic_output(out / "mine.mp3") as tmp:  # this process's first write in the folder sweeps it
            tmp.write_bytes(b"mine")
        with held_folder(SPOOL_PREFIX, temp) as mine:
            assert sorted(p.name for p in temp.iterdir()) == sorted([folder, mine.name])
        assert sorted(os.listdir(out)) == sorted([partial, "mine.mp3"])
        assert not dead.exists() and not dead_folder.exists()
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    assert (out / "busy.mp3").read_bytes() == b"whole"  # the writer finished undisturbed
    assert sorted(os.listdir(out)) == ["busy.mp3", "mine.mp3"]
    assert os.listdir(temp) == []


def test_a_temp_file_locked_in_this_process_is_kept(tmp_path):
    held = _orphan_partial(tmp_path, ".track.89abcdef.partial.m4a")
    dead = _orphan_partial(tmp_path, "..track.89abcdef.partial.01234567.partial.m4a")  # a killed remux's copy
    other = _orphan_partial(tmp_path, ".notes.partial.txt")  # not atomic_output's name: never touched
    with open(held, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        assert sweep_partials(tmp_path) == [dead.name]
    assert held.exists() and other.exists() and not dead.exists()
    assert sweep_partials(tmp_path) == [held.name]


def test_a_rename_onto_a_held_temp_file_keeps_it_locked(tmp_path):
    """The M4A remux writes a copy beside the render's temp file and renames it over it:
    the copy's lock goes with it, so a sweep meanwhile cannot take the render's file."""
    with atomic_output(tmp_path / "x.m4a") as outer:
        outer.write_bytes(b"encoded")
        with atomic_output(outer) as copy:
            copy.write_bytes(b"remuxed")
        assert sweep_partials(tmp_path) == []
        assert outer.read_bytes() == b"remuxed"
    assert (tmp_path / "x.m4a").read_bytes() == b"remuxed"
    assert os.listdir(tmp_path) == ["x.m4a"]
    assert files._HELD == {}  # every lock let go


def test_folders_without_an_owner_file_are_kept_until_old(tmp_path):
    young = _orphan_folder(tmp_path, f"{SPOOL_PREFIX}young", owner=False)
    old = _orphan_folder(tmp_path, f"{SPOOL_PREFIX}old", owner=False)
    long_ago = time.time() - files.OWNERLESS_AGE_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    other = _orphan_folder(tmp_path, "someone-elses-folder")
    assert sweep_orphans(tmp_path, SPOOL_PREFIX) == [old.name]
    assert young.exists() and other.exists()


def test_a_dask_workers_job_folder_sweeps_what_a_killed_worker_left(tmp_path):
    """A Dask worker renders in its system temp folder; one SIGKILLed mid-track leaves its
    .album-work-* folder there, removed when a job next starts on that machine."""
    dead = _orphan_folder(tmp_path, f"{jobs.SCRATCH_PREFIX}killed")
    with held_folder(jobs.SCRATCH_PREFIX, tmp_path) as running:  # another worker's job, still running
        with jobs._scratch(str(tmp_path)) as mine:
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, mine.name])
            assert mine.stat().st_mode & 0o777 == 0o700
        assert not mine.exists()
    assert not dead.exists()
    assert os.listdir(tmp_path) == []


def _session(sid: int) -> list[int]:
    """The running processes of a session (a build's workers and their engines and ffmpeg)."""
    return processes_where(3, sid)


@pytest.mark.engine
def test_sigterm_stops_an_album_build_and_its_workers(tmp_path):
    from .album_support import write_project

    manifest = write_project(tmp_path / "project")
    out, temp = tmp_path / "album", tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "compassion_audio", "album", str(manifest), "-o", str(out),
                             "--jobs", "2", "-q"], env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_dir() and any(p.stat().st_size > 0 for p in out.glob(".album-work-*/.track.*.partial.mp3"))):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no track was ever encoding"
            time.sleep(0.002)
        assert len(_session(proc.pid)) > 2  # the build, its workers, their engines and ffmpeg
        os.kill(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=30) == 143
        assert time.monotonic() - started < 2.0
        stderr = proc.stderr.read().decode()
        deadline = time.monotonic() + 2
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _session(proc.pid) == []
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert stderr.splitlines() == ["stopped: nothing was left half-written"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".album-work-") or ".partial" in p.name] == []
    assert os.listdir(temp) == []
