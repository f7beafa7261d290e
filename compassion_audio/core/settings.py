"""Settings as frozen dataclasses: one object per concern, passed whole.

Voice settings come from voices/*.toml (speech/voices.py), breathing from client
profiles (script/profile.py); the others are built by the CLI or the library caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("mp3", "ogg", "opus", "flac", "wav", "m4a")
"""Output formats; ``ogg`` is Ogg/Opus like ``opus``."""

BITRATE_KBPS = (32, 320)
"""The constant bitrates (kbit/s) every lossy format takes: LAME's MPEG-1 range for MP3, well
inside Opus's 6-510 and AAC's; FLAC and WAV are lossless and ignore it."""

def is_bitrate(text: object) -> bool:
    """True for a bitrate written as ``128k`` within BITRATE_KBPS."""
    match = re.fullmatch(r"([1-9][0-9]{1,3})k", text) if isinstance(text, str) else None
    return bool(match) and BITRATE_KBPS[0] <= int(match.group(1)) <= BITRATE_KBPS[1]


LOUDNESS_LUFS = (-40.0, -5.0)
"""Loudness targets: from far quieter than broadcast (-23) to louder than any music master."""

RATE_WPM_RANGE = (100, 220)
"""The speaking rates every engine honours; the CLI, voice profiles and the pyttsx3
engine all refuse a rate outside it.

100: espeak-ng cannot speak slower. Measured (espeak-ng 1.52, voices gmw/en and
gmw/en-us, two paragraphs of 61 and 47 words, first to last audible sample), every
espeak `rate` setting from 1 to 80 sounds the same, 96-104 wpm; a request for 90 would come out
~11% fast. 220: faster than any guided practice (110-140 wpm) or everyday speech,
leaving room to try a voice; espeak-ng reaches ~480 wpm. Piper and recorded packs
take their pace from the model or the person (rate_wpm only times their estimates),
so any rate in the range is fine for them."""


@dataclass(frozen=True)
class VoiceSettings:
    """How the speech engine speaks."""

    engine: str = "pyttsx3"
    """Engine adapter name."""
    voice: str | None = None
    """Engine voice id (None: the engine's default English voice)."""
    rate_wpm: int = 130
    """Speaking rate in words per minute (meditation pace is ~110-140), within RATE_WPM_RANGE."""
    pitch: int | None = None
    """Engine pitch 0-100 (None: engine default)."""
    volume: float = 1.0
    """Engine volume 0-1."""
    sentence_gap_seconds: float = 0.6
    """Silence between sentences of one paragraph."""
    paragraph_gap_seconds: float = 1.2
    """Silence before a new paragraph (a blank line in the script)."""


@dataclass(frozen=True)
class BreathingSettings:
    """Breathing pace for [breathe] stretches and their tones."""

    breaths_per_min: float = 6.0
    ratio: tuple[float, float] = (4.0, 6.0)
    """In:out proportion of the breath (holds excluded)."""
    hold_in_seconds: float = 0.0
    hold_out_seconds: float = 0.0
    tones: bool = True
    """Play pacing tones during [breathe] stretches."""
    style: str = "glide"
    """Tone style: glide (rising in, falling out), chime (a soft chime at each turn) or quiet."""
    tones_in_pauses_seconds: float | None = None
    """Also play tones under pauses at least this long (None: never)."""
    level_db: float = -20.0
    """Tone level relative to the speech level."""

    @property
    def cycle_seconds(self) -> float:
        return 60.0 / self.breaths_per_min


@dataclass(frozen=True)
class MixSettings:
    """How the track is assembled."""

    sample_rate: int = 44100
    channels: int = 1
    fade_in_seconds: float = 1.5
    fade_out_seconds: float = 3.0
    lead_in_seconds: float = 1.0
    """Silence (or bell) before the first words."""
    tail_seconds: float = 2.0
    """Silence after the last sound."""
    bells: bool = True
    """A bell at the start and the end of the track."""
    bell_file: Path | None = None
    """The user's own bell sound instead of the synthesised one."""
    background: str | None = None
    """Ambient bed: pink, brown, rain, waves, or a path to an audio file."""
    background_level_db: float = -22.0
    """Bed level relative to speech."""
    duck_db: float = 4.0
    """How far the bed dips while the voice speaks."""
    loudness_lufs: float | None = -16.0
    """Integrated loudness target (None: no normalisation, peak-safe only)."""
    true_peak_db: float = -1.0


@dataclass(frozen=True)
class ExportSettings:
    """How the file is written."""

    format: str | None = None
    """mp3, ogg, opus, flac, wav or m4a (None: from the output suffix, else mp3)."""
    bitrate: str | None = None
    """Constant bitrate, e.g. "160k" (None: MP3 as VBR quality 3, about 100-130 kbps for
    mono speech - it keeps the measured loudness, where LAME's CBR modes lost 0.3-0.4 LU -
    Opus 96k, AAC 160k)."""
    tags: dict[str, str] = field(default_factory=dict)
    cover: Path | None = None
    captions: bool = False
    timeline_json: bool = False

