"""The render key: one hash of everything that decides a track's samples and tags, stored in the track's tags."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import subprocess
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from compassion_audio import __version__
from compassion_audio.speech.voice_identity import voice_identity
from compassion_audio.core.errors import VoiceFallback
from compassion_audio.core.segments import Script
from compassion_audio.core.input_files import file_sha256
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output.export import format_for
from compassion_audio.output.tags import read_render_key
from compassion_audio.render import TrackRequest, default_output, default_tags, prepare_script
from compassion_audio.script.library import Exercise
from compassion_audio.speech.cache import CACHE_FORMAT, default_cache_dir
from compassion_audio.speech.voices import VoiceProfile, resolve_voice, usable

KEY_FORMAT = 1
"""Part of every key: bump it when what goes into a key changes, and every stored key then misses."""
_LIBRARIES = ("numpy", "scipy", "mutagen", "jinja2", "pyloudnorm", "imageio-ffmpeg")
"""Libraries whose versions can change a track's samples or tags (speech engines: in the voice identity)."""


@dataclass(frozen=True)
class Resolved:
    """A request with everything a render would decide filled in, and its key."""

    request: TrackRequest
    """The request with its voice profile (after any fallback), voice settings and format set."""
    exercise: Exercise
    template_text: str
    """The template file's text, as a worker elsewhere gets it."""
    script: Script
    path: Path
    """Where ``render_track`` writes it."""
    tags: dict[str, str]
    """The tags written (defaults, then the request's), without the key."""
    identity: dict
    """The voice's engine identity (and its fallback's)."""
    key: str


def resolve(request: TrackRequest, prepared: tuple[Exercise, Script] | None = None) -> Resolved:
    """What ``render_track(request)`` would make, decided without speaking: its key and path.

    ``prepared``: ``render.prepare_script(request)`` when the caller has it already (a template
    compiles in ~30 ms). Raises what a render raises for a bad exercise, value or voice.
    """
    exercise, script = prepared or prepare_script(request)
    fmt = format_for(request.output, request.export.format)
    path = request.output or default_output(exercise, script, fmt, prefix=request.name_prefix)
    profile = request.voice_profile or resolve_voice(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VoiceFallback)  # the render announces it
        profile = usable(profile)
    request = replace(request, voice_profile=profile, voice=request.voice or profile.settings,
                      export=replace(request.export, format=fmt))
    memo = (request.cache_dir or default_cache_dir()) if request.use_cache else None
    identity = {"voice": voice_identity(profile, request.fallback_profile, memo_dir=memo)}
    tags = {**default_tags(script, profile.name), **request.export.tags}
    tags.pop("render_key", None)
    text = exercise.path.read_text(encoding="utf-8")
    key = render_key(request, text, tags, identity)
    return Resolved(request=request, exercise=exercise, template_text=text, script=script, path=path,
                    tags=tags, identity=identity, key=key)


def render_key(request: TrackRequest, template_text: str, tags: dict[str, str], identity: dict) -> str:
    """sha256 of the canonical JSON of what decides the track (``request`` resolved as by ``resolve``)."""
    mix, export = request.mix, request.export
    decided = {
        "key_format": KEY_FORMAT, "environment": environment(),
        "template": hashlib.sha256(template_text.encode("utf-8")).hexdigest(),
        "values": request.values, "length": request.length, "group": request.group,
        "voice": _profile(request.voice_profile), "fallback": _profile(request.fallback_profile),
        "voice_settings": asdict(request.voice), "identity": identity,
        "breathing": asdict(request.breathing),
        "mix": {**asdict(mix), "bell_file": _content(mix.bell_file),
                "background": _content(mix.background) if names_a_file(mix.background) else mix.background},
        "export": {"format": export.format, "bitrate": export.bitrate, "captions": export.captions,
                   "timeline_json": export.timeline_json, "cover": _content(export.cover)},
        "tags": tags,
    }
    canonical = json.dumps(decided, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def keyed(request: TrackRequest, key: str) -> TrackRequest:
    """The request with its key among the tags it writes."""
    return replace(request, export=replace(request.export, tags={**request.export.tags, "render_key": key}))


def stored_key(path: Path) -> str | None:
    """The key in an existing file's tags (None: none, or not an audio file we can read)."""
    return read_render_key(Path(path))


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Versions that change output besides the voice: this package, the clip processing, the
    libraries and ffmpeg. A worker elsewhere must match them (jobs.render_job checks)."""
    return {"compassion_audio": __version__, "clip_format": CACHE_FORMAT,
            "libraries": {name: _version(name) for name in _LIBRARIES}, "ffmpeg": _ffmpeg_version()}


def _ffmpeg_version() -> str:
    try:
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    first = proc.stdout.splitlines()[0] if proc.stdout else "unknown"
    return first.split(" Copyright")[0].strip()


def _profile(profile: VoiceProfile | None) -> dict | None:
    if profile is None:
        return None
    return {"name": profile.name, "settings": asdict(profile.settings), "length_scale": profile.length_scale,
            "speed": profile.speed, "lexicon": dict(sorted(profile.lexicon.items())), "language": profile.language}


def names_a_file(value: object) -> bool:
    """A setting (a background) that is a path to a file rather than a name."""
    return isinstance(value, (str, Path)) and bool(str(value)) and Path(str(value)).expanduser().is_file()


def _content(path: object) -> str | None:
    """A referenced file by its content (the same bytes anywhere give the same key)."""
    return None if path is None else "sha256:" + file_sha256(Path(str(path)).expanduser())


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def up_to_date(decided: Resolved) -> bool:
    """The output exists, carries this render's key, and has the sidecars the request writes."""
    path, export = decided.path, decided.request.export
    wanted = [".vtt", ".srt", ".txt"] if export.captions else []
    wanted += [".timeline.json"] if export.timeline_json else []
    try:
        return (path.is_file() and stored_key(path) == decided.key
                and all(path.with_suffix(suffix).is_file() for suffix in wanted))
    except OSError:  # e.g. a name too long for the file system: not there, so not up to date
        return False
