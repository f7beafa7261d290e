"""Practice programmes: a course of weeks, each with a clinician's note and a list of tracks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compassion_audio.core.errors import ExerciseNotFound, ProgrammeError
from compassion_audio.core.tomlfile import load_toml
from compassion_audio.script.library import find_exercise

PROGRAMME_DIR = Path(__file__).parent / "programmes"


@dataclass(frozen=True)
class Track:
    """One exercise at one length."""

    exercise: str
    length: str = "standard"


@dataclass(frozen=True)
class Week:
    """One week of a programme."""

    number: int
    title: str
    note: str
    """A short note for the clinician."""
    tracks: tuple[Track, ...]


@dataclass(frozen=True)
class Programme:
    """A course of weekly home practice."""

    name: str
    title: str
    summary: str
    weeks: tuple[Week, ...]
    path: Path


def list_programmes() -> list[Programme]:
    """Every built-in programme, by name."""
    return [load_programme(path.stem) for path in sorted(PROGRAMME_DIR.glob("*.toml"))]


def load_programme(name: str) -> Programme:
    """Load a built-in programme by name (or a .toml path), checking every track's exercise and length."""
    path = Path(name) if name.endswith(".toml") else PROGRAMME_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(PROGRAMME_DIR.glob("*.toml")))
        raise ProgrammeError(f"no programme called {name!r}", source=name, hint=f"programmes: {known}")
    data = load_toml(path, error=ProgrammeError)
    source = str(path)
    weeks_data = data.get("weeks")
    if not isinstance(weeks_data, list) or not weeks_data:
        raise ProgrammeError("a programme needs at least one [[weeks]] table", source=source)
    weeks = tuple(_week(number, week, source) for number, week in enumerate(weeks_data, 1))
    return Programme(name=path.stem, title=str(data.get("title", path.stem)),
                     summary=str(data.get("summary", "")), weeks=weeks, path=path)


def _week(number: int, data: dict, source: str) -> Week:
    unknown = set(data) - {"title", "note", "tracks"}
    if unknown:
        raise ProgrammeError(f"week {number}: unknown key {sorted(unknown)[0]!r}", source=source,
                           hint="weeks have title, note and tracks")
    tracks = tuple(_track(number, track, source) for track in data.get("tracks", []))
    if not tracks:
        raise ProgrammeError(f"week {number} has no tracks", source=source)
    return Week(number=number, title=str(data.get("title", f"Week {number}")),
                note=str(data.get("note", "")), tracks=tracks)


def _track(number: int, data: dict, source: str) -> Track:
    if not isinstance(data, dict) or "exercise" not in data:
        raise ProgrammeError(f"week {number}: each track needs an exercise", source=source,
                           hint='write { exercise = "compassionate-place", length = "standard" }')
    track = Track(exercise=str(data["exercise"]), length=str(data.get("length", "standard")))
    try:
        exercise = find_exercise(track.exercise)
    except ExerciseNotFound as exc:
        raise ProgrammeError(f"week {number}: no exercise called {track.exercise!r}", source=source) from exc
    if track.length not in exercise.lengths:
        raise ProgrammeError(f"week {number}: {track.exercise} has no length {track.length!r}", source=source,
                           hint=f"lengths are {', '.join(exercise.lengths)}")
    return track
