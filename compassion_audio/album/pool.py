"""Executors for a local build: this process for --jobs 1, a process pool for more."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from compassion_audio.album import jobs


def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class InlineExecutor(Executor):
    """Runs each job in this process when it is submitted: --jobs 1 needs no worker process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the job's failure, handed over as a pool would
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        jobs.close_engines()


def local_executor(count: int) -> Executor:
    """``count`` worker processes (forked where the platform can: a spawned worker spends ~2 s
    importing before its first track), each ended by its watchdog if this process is killed."""
    if count <= 1:
        return InlineExecutor()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context(method),
                               initializer=jobs.worker_started, initargs=(os.getpid(),))
