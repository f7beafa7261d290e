"""Is a written track whole? ffmpeg reads every packet (without decoding) and reports the duration."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import mutagen

from compassion_audio.core.tools import ffmpeg_exe

TOLERANCE_SECONDS = 0.1
"""How far a track's packets may run from the duration recorded when it was written."""
_OUT_TIME = re.compile(r"^out_time_us=(\d+)$", re.M)


def packet_seconds(path: Path) -> float | None:
    """Seconds of audio packets in the file (None: ffmpeg cannot read it).

    Copying the stream to nowhere parses every packet without decoding it: ~50 ms for a
    30-minute MP3, and a truncated or damaged file comes out short or fails."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:a:0",
           "-c", "copy", "-f", "null", "-", "-progress", "pipe:1", "-nostats"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _OUT_TIME.findall(proc.stdout)
    if proc.returncode != 0 or proc.stderr.strip() or not found:
        return None
    return int(found[-1]) / 1e6


def header_seconds(path: Path) -> float | None:
    """The duration a file's header claims (mutagen), for a track written before the album state knew it."""
    try:
        info = getattr(mutagen.File(path), "info", None)
    except (mutagen.MutagenError, OSError):
        return None
    return float(info.length) if info is not None and info.length else None


def whole(path: Path, expected_seconds: float | None) -> bool:
    """The file's packets last ``expected_seconds`` (else its header's duration) within TOLERANCE_SECONDS."""
    expected = expected_seconds if expected_seconds is not None else header_seconds(path)
    actual = packet_seconds(path)
    return actual is not None and expected is not None and abs(actual - expected) <= TOLERANCE_SECONDS
