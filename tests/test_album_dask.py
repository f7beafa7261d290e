"""Albums on a Dask LocalCluster (2 worker processes, real engine): same album as a serial build, and the failures a cluster adds."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from click.testing import CliRunner
from distributed import Client

from compassion_audio.album import BuildOptions, build_albums, load_manifest, plan_albums
from compassion_audio.album.cluster import connect, plain_text_notice
from compassion_audio.album.jobs import SCRATCH_PREFIX
from compassion_audio.cli.app import cli
from compassion_audio.core.errors import EngineUnavailable

from .album_support import build, same_album, write_project

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The 4-track test album, built serially into ``reference``; its phrase cache is the workers' too
    (espeak's takes can differ by a few samples between engine runs, so both builds use the same takes)."""
    folder = tmp_path_factory.mktemp("project")
    manifest, cache = write_project(folder), tmp_path_factory.mktemp("cache")
    reference = folder / "reference"
    report = build(manifest, reference, cache, jobs=1)
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    return manifest, cache, reference


@pytest.fixture(scope="module")
def worker_temp(tmp_path_factory):
    """The workers' system temp folder (TMPDIR): where a job renders, and what a killed worker leaves."""
    return tmp_path_factory.mktemp("worker-temp")


# The LocalCluster lives in a child process: started here, its spawned workers would leave this
# process a multiprocessing resource-tracker child for good (which other tests' "kill a pool worker"
# could pick); ended with the child, nothing is left behind.
CLUSTER = textwrap.dedent("""
    import sys
    from distributed import LocalCluster
    cache, temp = sys.argv[1:3]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      env={"COMPASSION_AUDIO_CACHE": cache, "TMPDIR": temp}) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the test closes it
""")


@pytest.fixture(scope="module")
def cluster(project, worker_temp):
    """The scheduler address of a LocalCluster: 2 worker processes, 1 thread each, loopback, no dashboard."""
    _, cache, _ = project
    with open(worker_temp / "cluster.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-c", CLUSTER, str(cache), str(worker_temp)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        address = child.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), (worker_temp / "cluster.log").read_text()
        yield address
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _build_on(address: str, manifest, out):
    plans = plan_albums(load_manifest(manifest), BuildOptions(output=out))
    executor = connect(address)
    try:
        return build_albums(plans, executor, max_in_flight=executor.window(), local=False)
    finally:
        executor.shutdown()


def test_the_cluster_builds_the_same_album_as_a_serial_build(project, cluster, worker_temp, tmp_path):
    manifest, _, reference = project
    report = _build_on(cluster, manifest, tmp_path / "album")
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    same_album(tmp_path / "album", reference)
    # The workers rendered in their own temp folders (the client's album folder is not theirs) and removed them.
    assert not list(worker_temp.glob(f"{SCRATCH_PREFIX}*"))


def test_the_album_command_runs_on_the_scheduler(project, cluster, tmp_path):
    manifest, _, reference = project
    result = CliRunner().invoke(cli, ["album", str(manifest), "-o", str(tmp_path / "album"), "-q",
                                      "--scheduler", cluster])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"{tmp_path / 'album'}: 4 built, 0 unchanged, 0 failed"
    assert "note:" not in result.stderr  # a loopback address: nothing crosses a network
    same_album(tmp_path / "album", reference)


def _executing(dask_worker) -> list[str]:
    return [task.key for task in dask_worker.state.executing]


def _kill_a_busy_worker(address: str, killed: list) -> None:
    """SIGKILL the first worker process seen rendering a track; note its pid and the task it was running."""
    with Client(address, set_as_default=False) as control:
        pids = control.run(os.getpid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for worker, tasks in control.run(_executing).items():
                if tasks and worker in pids:
                    os.kill(pids[worker], signal.SIGKILL)
                    killed.append((pids[worker], tasks[0]))
                    return
            time.sleep(0.02)


def _transitions(address: str, key: str) -> list[tuple[str, str]]:
    with Client(address, set_as_default=False) as control:
        return control.run_on_scheduler(lambda dask_scheduler: [(s[1], s[2]) for s in dask_scheduler.story(key)])


def test_a_worker_killed_mid_track_is_rescheduled_and_the_album_is_whole(project, cluster, worker_temp, tmp_path):
    manifest, _, reference = project
    killed: list[tuple[int, str]] = []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(cluster, killed))
    killer.start()
    report = _build_on(cluster, manifest, tmp_path / "album")
    killer.join()
    assert len(killed) == 1
    pid, key = killed[0]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The scheduler ran the dead worker's track again elsewhere: every track built, identical bytes.
    steps = _transitions(cluster, key)
    assert steps.count(("waiting", "processing")) + steps.count(("queued", "processing")) == 2
    assert ("processing", "released") in steps and ("processing", "memory") in steps
    assert [o.status for o in report.albums[0].outcomes] == ["built"] * 4
    same_album(tmp_path / "album", reference)
    assert not [p.name for p in (tmp_path / "album").iterdir() if p.name.startswith(SCRATCH_PREFIX)
                or ".partial" in p.name]
    # The killed worker's temp folder was removed by the next job on that machine (its lock was free).
    assert not list(worker_temp.glob(f"{SCRATCH_PREFIX}*"))


def test_a_scheduler_that_cannot_be_reached_is_one_line_within_seconds(project, tmp_path):
    manifest, _, _ = project
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["album", str(manifest), "-o", str(tmp_path / "album"), "-q",
                                      "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert time.monotonic() - started < 8
    assert result.exit_code == 1
    assert result.stderr == (f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 5 s "
                             "(no answer; start one with: dask scheduler)\n")
    assert not (tmp_path / "album").exists()


def test_without_distributed_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    with pytest.raises(EngineUnavailable) as caught:
        connect("tcp://127.0.0.1:8786")
    assert str(caught.value) == "--scheduler needs Dask distributed: pip install 'compassion-audio[distributed]'"


@pytest.mark.parametrize("address, warned", [
    ("tcp://127.0.0.1:8786", False), ("localhost:8786", False), ("tls://dask.clinic.lan:8786", False),
    ("tcp://10.0.0.5:8786", True), ("dask.clinic.lan:8786", True),
])
def test_plain_tcp_off_this_machine_is_flagged(address, warned):
    assert (plain_text_notice(address) is not None) == warned
