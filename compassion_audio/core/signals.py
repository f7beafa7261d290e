"""A request to stop (SIGTERM) handled as Ctrl-C is: the work unwinds, its ``finally`` blocks
run (temp files removed, workers and ffmpeg stopped), and the command says it stopped."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class Terminated(SystemExit):
    """Raised in the main thread when the process is asked to stop (SIGTERM).

    Like KeyboardInterrupt it is no Exception, so nothing that handles errors swallows it and
    every ``finally`` and ``except BaseException`` cleanup runs; uncaught, the process exits
    with the usual code for the signal (128 + 15 = 143) and no traceback. The CLI reports it
    as it reports Ctrl-C.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated in the main thread (once: a second
    SIGTERM during the cleanup it starts is ignored, so the cleanup is not cut short).

    Only in the main thread (where Python runs signal handlers), and only where nobody has
    installed a handler of their own - so blocks nest: the outermost one (the CLI's) decides.
    """
    if (threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM")
            or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL):
        yield
        return
    stopping = False

    def terminate(signum, frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
