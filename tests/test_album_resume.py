"""kill -9 at any moment, then build again: every file complete and the same as a clean build, no temp file left.

"The same as a clean build" is a build into an empty folder from the same phrase cache: espeak-ng's
clips differ by a few samples between engine runs (the same phrase measured 129127 and 129132
frames), so two builds from two cold caches are not the same bits, with or without a kill.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from compassion_audio.album import BuildOptions, build_albums, load_manifest, local_executor, plan_albums

from .album_support import build, same_album, write_project
from .conftest import processes_where

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return write_project(tmp_path_factory.mktemp("project"))


def _visible_tracks(folder: Path) -> int:
    # pathlib's glob matches hidden names too: a track's temp file (.<name>.<hex>.partial.mp3) is not one.
    return len([p for p in folder.glob("*.mp3") if not p.name.startswith(".")]) if folder.is_dir() else 0


def _encoding(folder: Path) -> bool:
    """A worker is writing a track: its encoder's temp file in a worker folder has data."""
    return folder.is_dir() and any(p.stat().st_size > 0 for p in folder.glob(".album-work-*/.track.*.partial.mp3"))


MOMENTS = {
    "after one track": lambda folder: _visible_tracks(folder) >= 1,
    "mid-encode": _encoding,
    "after three tracks": lambda folder: _visible_tracks(folder) >= 3,
}


def _session(sid: int) -> list[int]:
    """The processes of a session (the killed build's workers and engines, if any were left)."""
    return processes_where(3, sid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
@pytest.mark.parametrize("jobs, moment", [(1, "after one track"), (2, "mid-encode"), (2, "after three tracks")])
def test_a_killed_build_finishes_as_a_clean_one(project, tmp_path, jobs, moment, monkeypatch):
    out, cache, temp = tmp_path / "album", tmp_path / "cache", tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "compassion_audio", "album", str(project), "-o", str(out),
                             "--jobs", str(jobs), "--cache-dir", str(cache), "-q"],
                            env=dict(os.environ, TMPDIR=str(temp)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not MOMENTS[moment](out):
            assert proc.poll() is None, f"the build ended before {moment}: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"never reached {moment}"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Its workers notice and end by themselves (and their engines with them).
        deadline = time.monotonic() + 15
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session(proc.pid) == []
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.stderr.close()
    written = _visible_tracks(out)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # the rerun's temp folder is the killed run's
    report = build(project, out, cache, jobs=jobs)
    assert report.count("unchanged") == written and report.count("built") == 4 - written
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [".album-lock", ".album-state.json"]  # the killed run's temp files are gone
    assert os.listdir(temp) == []  # and its speech workers' temp folders
    build(project, tmp_path / "clean", cache)
    same_album(out, tmp_path / "clean")


def test_a_worker_killed_mid_track_is_replaced_and_the_track_retried(project, tmp_path):
    cache = tmp_path / "cache"
    plans = plan_albums(load_manifest(project), BuildOptions(output=tmp_path / "album", cache_dir=cache))
    events = []
    killed = []

    def kill_a_worker_mid_encode() -> None:
        deadline = time.monotonic() + 120
        while not _encoding(tmp_path / "album") and time.monotonic() < deadline:
            time.sleep(0.005)
        workers = [pid for pid in _children(os.getpid()) if Path(f"/proc/{pid}/exe").resolve() ==
                   Path(sys.executable).resolve()]
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])

    watcher = threading.Thread(target=kill_a_worker_mid_encode)
    watcher.start()
    executor = local_executor(2)
    try:
        report = build_albums(plans, executor, max_in_flight=2, progress=events.append,
                              restart=lambda: local_executor(2))
    finally:
        watcher.join()
        executor.shutdown()
    assert killed
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    assert any(e.event == "retrying" and e.detail == "its worker process stopped" for e in events)
    build(project, tmp_path / "clean", cache)
    same_album(tmp_path / "album", tmp_path / "clean")


def _children(parent: int) -> list[int]:
    return processes_where(1, parent)
