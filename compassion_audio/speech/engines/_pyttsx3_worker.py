"""Worker process for the pyttsx3 adapter: one long-lived engine, one JSON-line request at a time."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import threading
import time

NO_ROOM = {errno.ENOSPC: "ENOSPC", errno.EFBIG: "EFBIG", getattr(errno, "EDQUOT", errno.ENOSPC): "EDQUOT"}
"""Write errors that mean the temp folder has no room (a full disk, a quota, a file-size limit)."""
FULL_BYTES = 64 * 1024
"""An empty take in a folder with less free space than this is put down to the full disk."""


def _claim_stdout():
    """Keep the real stdout for the protocol and send fd 1 to the null device.

    The espeak driver prints "Audio saved to ..." for every file; redirecting
    the file descriptor (not just sys.stdout) also silences C-level writes.
    """
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = open(os.devnull, "w", encoding="utf-8")
    return protocol


class _Speaker:
    """The one pyttsx3 engine of this process, used only from the main thread."""

    def __init__(self) -> None:
        self.espeak_library = None
        if sys.platform.startswith("linux"):
            from compassion_audio.core.tools import prepare_espeak

            self.espeak_library = prepare_espeak()
        import pyttsx3

        self.pyttsx3 = pyttsx3
        self.engine = pyttsx3.init()
        self.driver = getattr(self.engine, "driver_name", "unknown")
        self.done = threading.Event()
        self.cancelled = False
        self.callback_error: BaseException | None = None
        self.engine.connect("finished-utterance", self._finished)
        sys.unraisablehook = self._unraisable
        self.default_voice = self.engine.getProperty("voice")
        # pyttsx3's command queue starts "busy": until the first run loop, setProperty
        # only queues the change, which runAndWait then hands to espeak just before its
        # endLoop calls Cancel - dropping it (measured: 1 fresh worker in 15-40 spoke its
        # first phrase at espeak's default rate). One empty run loop opens the queue, so every
        # later setting reaches espeak at once and _configure can wait until it is applied.
        self.engine.runAndWait()
        self._parameter = self._espeak_parameter_reader()

    def _unraisable(self, unraisable) -> None:
        """An exception in the driver's ctypes callback (such as its WAV write failing on a full
        disk) cannot propagate: the phrase would never finish and runAndWait never return.
        Note it and end the driver's loop, so synth() can answer at once."""
        self.callback_error = unraisable.exc_value
        self.done.set()
        end_loop = getattr(getattr(self.engine.proxy, "_driver", None), "endLoop", None)
        if end_loop is not None:
            end_loop()

    def _finished(self, name=None, completed=True) -> None:
        # The espeak driver also sends a stale completed=False after a finished
        # phrase (its endLoop "stops" an engine that still reports playing):
        # only a completed utterance counts.
        if completed:
            self.done.set()
        else:
            self.cancelled = True

    def hello(self) -> dict:
        from importlib.metadata import PackageNotFoundError, version

        try:
            pyttsx3_version = version("pyttsx3")
        except PackageNotFoundError:
            pyttsx3_version = "unknown"
        return {
            "pyttsx3_version": pyttsx3_version,
            "driver": self.driver,
            "default_voice": self.default_voice,
            "espeak_library": os.path.basename(self.espeak_library) if self.espeak_library else None,
            "espeak_version": self._espeak_version(),
            "voices": self._voices(),
            "variants": self._variants(),
        }

    def _espeak_version(self) -> str | None:
        if self.driver != "espeak":
            return None
        from pyttsx3.drivers import _espeak

        raw = _espeak.Info(None)
        return raw.decode("utf-8", "replace") if raw else None

    def _voices(self) -> list[dict]:
        out = []
        for v in self.engine.getProperty("voices"):
            out.append({"id": str(v.id), "name": str(v.name or v.id),
                        "languages": [str(x) for x in (v.languages or [])],
                        "gender": v.gender})
        return out

    def _variants(self) -> list[str]:
        """espeak voice variants ("f3", "klatt", ...) usable as ``voice+variant``."""
        if self.driver != "espeak":
            return []
        from pyttsx3.drivers import _espeak

        spec = _espeak.VOICE()
        spec.languages = b"variant"
        names = []
        for v in _espeak.ListVoices(spec):
            ident = v.identifier.decode("utf-8", "replace")
            names.append(ident.split("/", 1)[-1].lower())
        return names

    def synth(self, request: dict) -> dict:
        path = request["path"]
        # A missing folder or a non-str path raises inside the ctypes callback,
        # where nothing can catch it, and the engine hangs from then on.
        if not isinstance(path, str) or not os.path.isdir(os.path.dirname(path)):
            return {"ok": False, "error": "bad-path", "message": "output folder does not exist"}
        if not self._configure(request):
            return {"ok": False, "error": "settings", "message": "espeak did not apply the voice settings"}
        wait_seconds = float(request.get("wait_seconds", 20.0))
        for _attempt in range(3):
            self.done.clear()
            self.cancelled = False
            self.callback_error = None
            self.engine.save_to_file(request["text"], path)
            self.engine.runAndWait()
            # runAndWait can return before the file is written: wait for the callback.
            finished = self.done.wait(wait_seconds)
            if self.callback_error is not None:
                return _write_failure(self.callback_error, path)
            if not finished:
                what = "cancelled" if self.cancelled else "never finished"
                return {"ok": False, "error": "hang", "message": f"the engine {what} the phrase"}
            if not self.cancelled:
                return self._check_file(path)
            # A cancel during the phrase may have cut it short or dropped a
            # setting: set everything again and say it again.
            if not self._configure(request):
                break
        return {"ok": False, "error": "cancelled", "message": "the engine kept cancelling the phrase"}

    def _configure(self, request: dict) -> bool:
        """Set voice, rate, pitch and volume; True once espeak reports them all applied."""
        for _attempt in range(2):
            if request.get("voice"):
                self.engine.setProperty("voice", request["voice"])
            self.engine.setProperty("rate", request["rate"])
            if request.get("pitch") is not None:
                self.engine.setProperty("pitch", request["pitch"])
            self.engine.setProperty("volume", request["volume"])
            if self._settle(request):
                return True
        return False

    def _settle(self, request: dict, timeout_seconds: float = 2.0) -> bool:
        """Wait until espeak has applied the requested rate, pitch and volume.

        espeak-ng queues SetParameter on its own thread and reports "playing"
        meanwhile; the driver's runAndWait then calls Cancel, which drops a change
        still queued. Measured without this wait: 1 phrase in 3 spoke at the
        previous rate and 1 in 400 came out empty. espeak's own current values
        are read back (pyttsx3's getProperty reads its defaults), so a change
        that never arrived is seen, not assumed.
        """
        if self.driver != "espeak":
            return True
        from pyttsx3.drivers import _espeak

        wanted = {_espeak.RATE: int(request["rate"]),
                  _espeak.VOLUME: int(round(float(request["volume"]) * 100, 2))}
        if request.get("pitch") is not None:
            wanted[_espeak.PITCH] = int(request["pitch"])
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if not _espeak.IsPlaying() and all(self._parameter(k, 1) == v for k, v in wanted.items()):
                return True
            time.sleep(0.001)
        return False

    def _espeak_parameter_reader(self):
        """espeak_GetParameter(parameter, current) (pyttsx3's binding drops ``current``)."""
        if self.driver != "espeak":
            return None
        import ctypes

        from pyttsx3.drivers import _espeak

        prototype = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)
        return prototype(("espeak_GetParameter", _espeak.dll))

    @staticmethod
    def _check_file(path: str) -> dict:
        deadline = time.monotonic() + 2.0
        # Some drivers (nsss) finish the callback a moment before the file is flushed.
        while time.monotonic() < deadline:
            if os.path.exists(path) and os.path.getsize(path) > 64:
                return {"ok": True}
            time.sleep(0.01)
        try:
            full = shutil.disk_usage(os.path.dirname(path)).free < FULL_BYTES
        except OSError:
            full = False
        if full:
            return {"ok": False, "error": "no-room", "errno": "ENOSPC", "message": os.strerror(errno.ENOSPC)}
        return {"ok": False, "error": "empty", "message": "the engine wrote no audio"}


def _write_failure(error: BaseException, path: str) -> dict:
    """The answer for an exception in the driver's callback: no room to write the WAV file
    (its OSError is the cause of the driver's RuntimeError), or another failure, by type only
    (a message could quote the phrase)."""
    try:
        os.remove(path)  # whatever part of the file was written
    except OSError:
        pass
    cause = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError) and cause.errno in NO_ROOM:
        return {"ok": False, "error": "no-room", "errno": NO_ROOM[cause.errno], "message": os.strerror(cause.errno)}
    what = f"{type(cause).__name__} {errno.errorcode.get(cause.errno, cause.errno)}" \
        if isinstance(cause, OSError) else type(error).__name__
    return {"ok": False, "error": "callback", "message": f"the engine failed writing the phrase ({what})"}


def _handle(speaker: _Speaker, request: dict) -> dict:
    op = request.get("op")
    if op == "hello":
        return {"ok": True, **speaker.hello()}
    if op == "synth":
        return speaker.synth(request)
    return {"ok": False, "error": "protocol", "message": f"unknown request {op!r}"}


def main() -> None:
    protocol = _claim_stdout()
    try:
        speaker = _Speaker()
    except Exception as exc:  # reported to the parent, which raises EngineUnavailable
        protocol.write(json.dumps({"ok": False, "error": "unavailable",
                                   "message": f"{type(exc).__name__}: {exc}"}) + "\n")
        protocol.flush()
        os._exit(3)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            reply = _handle(speaker, request)
        except Exception as exc:  # one bad phrase must not end the worker silently
            reply = {"ok": False, "error": "exception", "message": f"{type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()
    protocol.flush()
    # espeak asserts on close and the engine may segfault when collected: skip teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
