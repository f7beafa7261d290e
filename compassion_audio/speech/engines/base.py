"""The protocol every speech engine adapter implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from compassion_audio.core.audio import Audio


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
