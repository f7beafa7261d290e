"""A pyttsx3 worker that misbehaves on request, for the engine's recovery tests (never shipped).

Run as the engine's worker module (monkeypatch ``pyttsx3_engine.WORKER_MODULE``) with
``COMPASSION_AUDIO_TEST_FAULT`` set to:
- ``hang:always``: every phrase hangs;
- ``hang:PATH``: one phrase hangs - in the first worker to delete PATH - then all speak;
- ``rates:PATH``: each phrase takes the first line of PATH, while there is one, and is
  spoken at that espeak rate instead of the one asked for, as a lost rate setting did.
"""
from __future__ import annotations

import os
import time
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


class _FaultySpeaker(real._Speaker):
    def synth(self, request: dict) -> dict:
        kind, _, arg = os.environ.get(FAULT_ENV, "").partition(":")
        if kind == "hang" and (arg == "always" or _remove(arg)):
            time.sleep(60)  # the engine kills the worker long before this ends
        wrong_rate = _claim(Path(arg)) if kind == "rates" else None
        if wrong_rate is not None:
            request = {**request, "rate": int(wrong_rate)}
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
