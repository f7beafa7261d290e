"""What ``list`` prints for each exercise, remembered per template file so ``list`` answers at once.

Summarising an exercise means compiling its template, rendering it at every length and
planning each timeline: some 15 ms an exercise, most of ``list``'s time. The summary
depends only on the template's bytes and place, the code that computes it, and the
default voice's pace and gaps, so it is stored in the cache folder (``listing/``) under a
hash of exactly those: a changed template, an upgraded or edited package, or another
default voice computes it afresh. A template with an error is never stored (``list``
reports it every time). The entries hold no client data: ``list`` renders every exercise
with its defaults.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

from compassion_audio.core.files import write_text_atomic

FORMAT = 1
"""Bump when the stored fields change."""

log = logging.getLogger(__name__)


def summaries(paths: list[Path], cache_dir: Path | None) -> list[tuple[dict, dict[str, float]]]:
    """For each template: (its ``list --json`` entry, estimated seconds per length), from
    ``cache_dir/listing`` where a summary of this very file is there, else computed (and stored)."""
    voice = _default_voice_key()
    found = []
    for path in paths:
        data = path.read_bytes()
        entry_path = None
        if cache_dir is not None:
            entry_path = cache_dir / "listing" / f"{_key(path, data, voice)}.json"
            stored = _read(entry_path)
            if stored is not None:
                found.append(stored)
                continue
        summary = _summarise(path)
        if entry_path is not None:
            _write(entry_path, summary)
        found.append(summary)
    return found


def _summarise(path: Path) -> tuple[dict, dict[str, float]]:
    from compassion_audio.cli.exercise_info import estimated_seconds, exercise_json
    from compassion_audio.script.library import load_exercise

    exercise = load_exercise(path)
    seconds = estimated_seconds(exercise)
    return exercise_json(exercise, seconds), seconds


def _key(path: Path, data: bytes, voice: str) -> str:
    digest = hashlib.sha256()
    for part in (str(FORMAT), _code_fingerprint(), voice, str(path.resolve())):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(data)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """The package's code and data as installed: name, size and modification time of each file."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*")):
        if file.suffix in (".py", ".toml", ".j2"):
            stat = file.stat()
            digest.update(f"{file.relative_to(package)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _default_voice_key() -> str:
    from compassion_audio.speech.voices import resolve_voice

    return repr(resolve_voice(None).settings)


def _read(entry_path: Path) -> tuple[dict, dict[str, float]] | None:
    try:
        stored = json.loads(entry_path.read_text(encoding="utf-8"))
        entry, seconds = stored["entry"], stored["seconds"]
        if not isinstance(entry, dict) or not all(isinstance(v, (int, float)) for v in seconds.values()):
            raise ValueError("wrong types")
        return entry, {str(k): float(v) for k, v in seconds.items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        log.debug("listing: ignoring unreadable entry %s (%s)", entry_path.name, type(exc).__name__)
        return None


def _write(entry_path: Path, summary: tuple[dict, dict[str, float]]) -> None:
    entry, seconds = summary
    try:
        entry_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(entry_path, json.dumps({"entry": entry, "seconds": seconds}, ensure_ascii=False))
    except OSError as exc:  # a read-only or full cache: list still answers, just not faster next time
        log.debug("listing: cannot store %s (%s)", entry_path.name, exc.strerror or type(exc).__name__)
