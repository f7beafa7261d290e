"""The protocol every speech engine adapter implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from compassion_audio.core.audio import Audio, gain_to_db

SILENT_PEAK_DB = -50.0
"""Audio whose peak is below this has no audible speech (an engine's speech peaks near 0 dBFS;
a silent take or a file of zeros is refused, never processed or cached as speech)."""


def has_audible_speech(audio: Audio) -> bool:
    """False for no frames, or a peak under SILENT_PEAK_DB (or one that is not a number)."""
    samples = np.asarray(audio.samples)
    if samples.size == 0:
        return False
    peak = gain_to_db(float(np.abs(samples).max()))
    return peak >= SILENT_PEAK_DB


@dataclass(frozen=True)
class EngineVoice:
    """A voice an engine offers on this machine."""

    id: str
    name: str
    languages: tuple[str, ...] = ()
    gender: str | None = None


@runtime_checkable
class SpeechEngine(Protocol):
    """Turns one phrase into audio. Adapters import their engine lazily.

    ``identity()`` returns everything that affects the sound (engine name and
    version, voice, rate, pitch, model hash, ...) - it is hashed into clip cache
    keys, so two engines with equal identities must produce the same audio.
    """

    name: str

    def identity(self) -> dict: ...

    def synthesize(self, text: str) -> Audio:
        """Raw engine audio for ``text`` (engine padding included), mono float32."""
        ...

    def voices(self) -> list[EngineVoice]: ...

    def close(self) -> None: ...
