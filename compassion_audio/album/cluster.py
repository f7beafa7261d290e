"""A Dask cluster as the album's executor: `album --scheduler ADDRESS` renders each track job on its workers."""
from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import Executor, Future
from urllib.parse import urlsplit

from compassion_audio.core.errors import ClusterError, EngineUnavailable

CONNECT_SECONDS = 5.0
"""How long to try the scheduler before saying it cannot be reached."""
INSTALL = "pip install 'compassion-audio[distributed]'"
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


class ClusterExecutor(Executor):
    """Jobs submitted to a Dask cluster through its client; shutting it down closes the client.

    A worker that dies mid-track is the scheduler's to handle: it runs the track again on
    another worker (and fails it with KilledWorker after ``distributed.scheduler.allowed-failures``
    deaths), so the runner sees one result per track and writes nothing partial.
    """

    def __init__(self, client) -> None:
        self.client = client
        # pure=False: two identical jobs are two tasks, and a failed one is never reused by key.
        self._executor = client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def window(self) -> int:
        """Tracks to keep in flight: two per worker thread, so a worker never waits for the client."""
        return max(2, 2 * sum(self.client.nthreads().values()))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._executor.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()


def connect(address: str, timeout: float = CONNECT_SECONDS) -> ClusterExecutor:
    """An executor on the Dask scheduler at ``address`` (``tcp://host:8786``, ``tls://host:8786``; TLS
    certificates from Dask's configuration). Raises ClusterError when it cannot be reached in ``timeout`` s."""
    try:
        from distributed import Client
    except ImportError:
        raise EngineUnavailable(f"--scheduler needs Dask distributed: {INSTALL}") from None
    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme not in SCHEMES:  # Dask would fail only after its close times out (~10 s)
        raise ClusterError(f"{address} is not a Dask scheduler address: give tcp://HOST:8786 or tls://HOST:8786")
    # Dask logs each failed attempt at length; the one line below says it all.
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # refused, timed out, a malformed address
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                           f"({_reason(exc)}; start one with: dask scheduler)") from None
    finally:
        quiet.setLevel(level)
    return ClusterExecutor(client)


def plain_text_notice(address: str) -> str | None:
    """A warning when jobs (client names and health details) would cross a network unencrypted."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme == "tls" or _loopback(parts.hostname or ""):
        return None
    return (f"{address} is not a tls:// address: track jobs carry client details and travel unencrypted; "
            "use tls:// with Dask's TLS settings on anything but a trusted private network")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, TimeoutError) or "Timed out" in text:
        return "no answer"
    return text or type(exc).__name__
