"""Track jobs: everything a worker on any machine needs to render one track, and what it sends back.

``render_job`` is the function an executor runs (a local process pool, or a Dask cluster's
executor): it renders into a temp folder of its own and returns the encoded bytes; the
client writes the album. A worker keeps its engines between jobs and uses its own
machine's phrase cache.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing.util
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from compassion_audio.album import keys
from compassion_audio.album.plan import AlbumPlan, PlannedTrack
from compassion_audio.core.errors import VoiceError
from compassion_audio.core.files import held_folder
from compassion_audio.core.settings import BreathingSettings, ExportSettings, MixSettings, VoiceSettings
from compassion_audio.core.input_files import file_sha256
from compassion_audio.page.data import track_data
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.speech.voices import VoiceProfile, create_engine, resolve_voice

SCRATCH_PREFIX = ".album-work-"
"""A worker's temp folder; in the album folder for a local pool, so a killed run's is found and removed."""


@dataclass(frozen=True)
class Blob:
    """A file the track reads (cover, bell, background), carried as its bytes."""

    name: str
    """Its file name (the suffix tells decoders the format)."""
    sha256: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class TrackJob:
    """One track to render: picklable, with no path that only the client's machine has."""

    label: str
    """How progress and errors name it (``01 Soothing rhythm breathing``)."""
    template_name: str
    template_text: str
    values: dict
    length: str | None
    group: bool
    voice_profile: VoiceProfile
    fallback_profile: VoiceProfile | None
    voice: VoiceSettings
    breathing: BreathingSettings
    mix: MixSettings
    """bell_file and a background file are None here: they travel in ``files``."""
    export: ExportSettings
    """Format set; cover None (in ``files``); tags complete, with the render key."""
    files: dict[str, Blob]
    """"bell_file", "background" and "cover", when the track uses them."""
    render_key: str
    identity: dict
    """The voice identity the key was made with: the worker's must be the same."""
    environment: dict
    """keys.environment() on the client: the worker's must be the same."""
    private: bool
    use_cache: bool = True
    cache_dir: str | None = None
    """The phrase cache on the worker's machine (None: that machine's default)."""
    scratch_root: str | None = None
    """Where the worker makes its temp folder (None: its system temp folder)."""
    audio_name: str = ""
    """The track's file name in the album folder: the page data's audio path (the page sits beside it)."""
    hold: bool = False
    """The page data's hold flag (the album page stops at each chapter's end)."""


@dataclass(frozen=True)
class TrackOutput:
    """What a worker sends back: the encoded track, its sidecars and what the album pages need."""

    render_key: str
    audio: bytes = field(repr=False)
    sidecars: dict[str, bytes] = field(repr=False)
    """Suffix (``.vtt``, ``.chapters.vtt``, ``.srt``, ``.txt``, ``.timeline.json``) -> bytes."""
    seconds: float
    sample_rate: int
    chapters: tuple[tuple[str, float, float], ...]
    """(title, start s, end s) of each chapter."""
    phrases: int
    synthesised: int
    elapsed_seconds: float
    worker: str
    """host:pid that rendered it."""
    page: dict = field(default_factory=dict, repr=False)
    """The track's session-page data (page.PageTrack.to_json), its audio the track's file name."""


def job_for(plan: AlbumPlan, track: PlannedTrack, *, local: bool = False, blobs: dict | None = None) -> TrackJob:
    """The job that renders ``track``: the template's text and the files' bytes, no path of this machine's
    (``local``: the worker shares it, so its temp folder goes in the album folder and it uses the requests'
    phrase cache). ``blobs`` keeps one copy of each file's bytes however many jobs carry it."""
    request, resolved = track.request, track.resolved
    blobs = {} if blobs is None else blobs
    files = {}
    if request.mix.bell_file:
        files["bell_file"] = _blob(Path(request.mix.bell_file), blobs)
    background = request.mix.background
    if background and keys.names_a_file(background):
        files["background"] = _blob(Path(background).expanduser(), blobs)
    if request.export.cover:
        files["cover"] = _blob(Path(request.export.cover), blobs)
    return TrackJob(
        label=track.label, template_name=resolved.exercise.name, template_text=resolved.template_text,
        values=dict(request.values), length=request.length, group=request.group,
        voice_profile=request.voice_profile, fallback_profile=request.fallback_profile, voice=request.voice,
        breathing=request.breathing,
        mix=replace(request.mix, bell_file=None, background=None if "background" in files else background),
        export=replace(request.export, cover=None), files=files, render_key=track.key,
        identity=resolved.identity, environment=keys.environment(), private=request.private,
        use_cache=request.use_cache, cache_dir=str(request.cache_dir) if local and request.cache_dir else None,
        scratch_root=str(plan.folder) if local else None, audio_name=track.file_name, hold=track.hold)


def _blob(path: Path, blobs: dict) -> Blob:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if memo not in blobs:
        blobs[memo] = Blob(name=path.name, sha256=file_sha256(path), data=path.read_bytes())
    return blobs[memo]


def render_job(job: TrackJob) -> TrackOutput:
    """Render one job in a temp folder of this worker's and return the files' bytes."""
    started = time.perf_counter()
    _same_environment(job)
    profile, fallback = _local(job.voice_profile), _local(job.fallback_profile)
    with _ENGINES.borrow(profile, fallback) as engine:
        _same_voice(job, engine, fallback)
        with _scratch(job.scratch_root) as folder:
            request = _request(job, folder, profile, fallback)
            result = render_track(request, engine=engine)
            audio = request.output.read_bytes()
            stem = request.output.name[: -len(request.output.suffix)]
            sidecars = {side.name[len(stem):]: side.read_bytes() for side in result.sidecars}
            page = track_data(result, page_dir=folder, hold=job.hold)
    if job.audio_name:  # rendered as track.<fmt> here; the page sits beside the album's file
        page = replace(page, audio=job.audio_name)
    timeline = result.timeline
    sr = timeline.sample_rate
    return TrackOutput(render_key=job.render_key, audio=audio, sidecars=sidecars, seconds=timeline.seconds,
                       sample_rate=sr, chapters=tuple((c.title, c.start / sr, c.end / sr) for c in timeline.chapters),
                       phrases=result.phrases, synthesised=result.synthesised,
                       elapsed_seconds=time.perf_counter() - started, worker=f"{socket.gethostname()}:{os.getpid()}",
                       page=page.to_json())


def _request(job: TrackJob, folder: Path, profile, fallback) -> TrackRequest:
    template = folder / f"{job.template_name}.txt.j2"
    template.write_text(job.template_text, encoding="utf-8")
    paths = {}
    for role, blob in job.files.items():
        paths[role] = folder / f"{role}-{blob.name}"
        paths[role].write_bytes(blob.data)
    mix = replace(job.mix, bell_file=paths.get("bell_file"),
                  background=str(paths["background"]) if "background" in paths else job.mix.background)
    export = replace(job.export, cover=paths.get("cover"))
    return TrackRequest(exercise=str(template), values=job.values, length=job.length, group=job.group,
                        voice_profile=profile, fallback_profile=fallback, voice=job.voice,
                        breathing=job.breathing, mix=mix, export=export,
                        output=folder / f"track.{job.export.format}", force=True, use_cache=job.use_cache,
                        cache_dir=Path(job.cache_dir) if job.cache_dir else None, personal=job.private)


def _local(profile: VoiceProfile | None) -> VoiceProfile | None:
    """The profile with its file on this machine: a worker elsewhere has the same voice under the
    same name, but in another folder (model paths are relative to the profile's file)."""
    if profile is None or profile.source is None or profile.source.exists():
        return profile
    return replace(profile, source=resolve_voice(profile.key).source)


def _same_environment(job: TrackJob) -> None:
    mine = keys.environment()
    if mine != job.environment:
        raise VoiceError("this worker's software differs from the client's "
                         f"({_first_difference(job.environment, mine)}): install the same versions on every worker")


def _same_voice(job: TrackJob, engine, fallback) -> None:
    identity = {"voice": json.loads(json.dumps(engine.identity(), sort_keys=True, default=str))}
    if identity != job.identity:
        raise VoiceError(f"this worker's voice {job.voice_profile.key!r} differs from the client's "
                         f"({_first_difference(job.identity, identity)}): "
                         "install the same voice and engine everywhere")


def _first_difference(theirs: object, mine: object, path: str = "") -> str:
    if isinstance(theirs, dict) and isinstance(mine, dict):
        for key in sorted(set(theirs) | set(mine)):
            if theirs.get(key) != mine.get(key):
                return _first_difference(theirs.get(key), mine.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'value'}: client {theirs!r}, worker {mine!r}"


class _EnginePool:
    """Engines kept between jobs in this worker (a start costs 0.5-1 s), one user at a time each:
    a pyttsx3 engine shared by two threads hangs. An engine whose job failed is closed, not reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, list] = {}

    @contextlib.contextmanager
    def borrow(self, profile: VoiceProfile, fallback: VoiceProfile | None):
        key = (profile, fallback)
        with self._lock:
            idle = self._idle.setdefault(key, [])
            engine = idle.pop() if idle else None
        if engine is None:
            engine = create_engine(profile, fallback=fallback)
        try:
            yield engine
        except BaseException:
            with contextlib.suppress(Exception):
                engine.close()
            raise
        with self._lock:
            self._idle.setdefault(key, []).append(engine)

    def forget(self) -> None:
        """Drop the engines without closing them: a forked worker's are its parent's (their pipes too)."""
        with self._lock:
            self._idle.clear()

    def close(self) -> None:
        with self._lock:
            engines = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for engine in engines:
            with contextlib.suppress(Exception):
                engine.close()


_ENGINES = _EnginePool()
_SCRATCH: set[str] = set()
"""This worker's temp folders in use (removed by the watchdog if the client dies)."""


def close_engines() -> None:
    """Close the engines this process keeps (an in-process run calls it when the album is done)."""
    _ENGINES.close()


@contextlib.contextmanager
def _scratch(root: str | None):
    """A temp folder for one job, held while the job runs (core/files.HeldFolder): the folders
    that killed workers left in ``root`` (the system temp folder of a Dask worker) are removed
    first - never one another worker on this machine is using."""
    with held_folder(SCRATCH_PREFIX, Path(root) if root else None) as folder:
        _SCRATCH.add(str(folder))
        try:
            yield folder
        finally:
            _SCRATCH.discard(str(folder))


def worker_started(client_pid: int) -> None:
    """A local pool worker's initializer: close the engines when it ends, and end it - removing its
    temp folders - when the client is gone (killed: no one would read its results) or when the
    pool stops it (SIGTERM: a forked worker would otherwise inherit the CLI's stop handler and
    unwind with a traceback into the album's output)."""
    _ENGINES.forget()
    multiprocessing.util.Finalize(None, close_engines, exitpriority=10)

    def end(code: int) -> None:
        for folder in list(_SCRATCH):
            shutil.rmtree(folder, ignore_errors=True)
        close_engines()
        os._exit(code)

    def watch() -> None:
        while os.getppid() == client_pid:
            time.sleep(0.25)
        end(1)

    signal.signal(signal.SIGTERM, lambda signum, frame: end(128 + signum))
    threading.Thread(target=watch, name="compassion-audio-album-watchdog", daemon=True).start()
