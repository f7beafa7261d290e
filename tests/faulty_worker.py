"""A pyttsx3 worker that misbehaves on request, for the engine's recovery tests (never shipped).

Run as the engine's worker module (monkeypatch ``pyttsx3_engine.WORKER_MODULE``) with
``COMPASSION_AUDIO_TEST_FAULT`` set to ``KIND:WHEN``. WHEN is ``always`` (every phrase), a
PATH (one phrase: in the first worker to delete PATH; then all speak) or, for ``hang`` only,
``after-first`` (each worker speaks its first phrase, then hangs on every later one). KIND:
- ``hang``: the phrase hangs (the engine kills the worker long before it ends);
- ``segv`` / ``kill``: the worker dies of SIGSEGV / SIGKILL while speaking the phrase;
- ``silent``: the phrase is written as a WAV file of silence (a whole second of zeros);
- ``empty``: the phrase is written as a WAV header with no frames (and reported done);
- ``rates:PATH``: each phrase takes the first line of PATH, while there is one, and is
  spoken at that espeak rate instead of the one asked for, as a lost rate setting did.
"""
from __future__ import annotations

import os
import signal
import time
import wave
from pathlib import Path

from compassion_audio.speech.engines import _pyttsx3_worker as real

FAULT_ENV = "COMPASSION_AUDIO_TEST_FAULT"


def _claim(path: Path) -> str | None:
    """Take the first line of ``path`` (None when it is empty or gone)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if not lines:
        return None
    path.write_text("".join(f"{line}\n" for line in lines[1:]), encoding="utf-8")
    return lines[0]


def _write_wav(path: str, frames: int) -> None:
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(22050)
        f.writeframes(b"\0\0" * frames)


class _FaultySpeaker(real._Speaker):
    phrases = 0

    def synth(self, request: dict) -> dict:
        self.phrases += 1
        kind, _, when = os.environ.get(FAULT_ENV, "").partition(":")
        if kind == "rates":
            wrong_rate = _claim(Path(when))
            if wrong_rate is not None:
                request = {**request, "rate": int(wrong_rate)}
            return super().synth(request)
        due = when == "always" or (when == "after-first" and self.phrases > 1) or \
            (when not in ("always", "after-first") and _remove(when))
        if not due:
            return super().synth(request)
        if kind == "hang":
            time.sleep(60)  # the engine kills the worker long before this ends
        elif kind in ("segv", "kill"):
            os.kill(os.getpid(), signal.SIGSEGV if kind == "segv" else signal.SIGKILL)
            time.sleep(60)
        elif kind == "silent":
            _write_wav(request["path"], 22050)
            return {"ok": True}
        elif kind == "empty":
            _write_wav(request["path"], 0)
            return {"ok": True}
        return super().synth(request)


def _remove(path: str) -> bool:
    try:
        os.remove(path)  # only one worker can claim the token
    except OSError:
        return False
    return True


if __name__ == "__main__":
    real._Speaker = _FaultySpeaker
    real.main()
