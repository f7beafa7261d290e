"""Speech engines: one adapter per engine behind the small SpeechEngine protocol."""
from __future__ import annotations

from compassion_audio.speech.engines.base import EngineVoice, SpeechEngine

__all__ = ["EngineVoice", "SpeechEngine"]
