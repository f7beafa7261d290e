"""Build albums on any Executor: up-to-date tracks kept, the rest rendered as jobs, every file written atomically."""
from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, wait
from dataclasses import dataclass, field
from pathlib import Path

from compassion_audio.album import probe
from compassion_audio.album.folder import album_lock, clean_leftovers, covered_name, write_bytes_if_changed
from compassion_audio.album.jobs import Blob, TrackJob, TrackOutput, job_for, render_job
from compassion_audio.album.plan import AlbumPlan, PlannedTrack
from compassion_audio.album.playlist import PLAYLIST_NAME, TRACK_LIST_NAME, Entry, playlist, track_list
from compassion_audio.album.progress import ProgressCallback, Tracker
from compassion_audio.album.session_page import recover, write_page
from compassion_audio.album.single_file import Part, single_format, single_key, single_name, write_single_file
from compassion_audio.album.state import STATE_NAME, AlbumState, TrackState, load_state, save_state, write_if_changed
from compassion_audio.core.errors import CompassionAudioError
from compassion_audio.core.files import write_bytes_atomic
from compassion_audio.core.settings import FORMATS
from compassion_audio.core.input_files import file_sha256
from compassion_audio.output.tags import read_render_key
from compassion_audio.page.locate import ALBUM_PAGE

SIDECAR_SUFFIXES = (".vtt", ".chapters.vtt", ".srt", ".txt", ".timeline.json")


@dataclass
class TrackOutcome:
    track: PlannedTrack
    status: str
    """built, unchanged or failed."""
    reason: str = ""
    """Why it failed: one line."""
    seconds: float | None = None
    phrases: int = 0
    synthesised: int = 0


@dataclass
class AlbumReport:
    plan: AlbumPlan
    outcomes: list[TrackOutcome] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Files an earlier build wrote that this manifest no longer makes (removed with prune)."""
    pruned: bool = False
    single_file: str = ""
    """The whole-album file's name, when one was asked for."""
    single_status: str = ""
    """built, unchanged, or why it was not written."""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


@dataclass
class BuildReport:
    albums: list[AlbumReport]

    def count(self, status: str) -> int:
        return sum(a.count(status) for a in self.albums)

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0 or any(a.single_status.startswith("failed") for a in self.albums)


def build_albums(plans: list[AlbumPlan], executor: Executor, *, max_in_flight: int = 1,
                 progress: ProgressCallback | None = None, prune: bool = False, force: bool = False,
                 restart: Callable[[], Executor] | None = None, local: bool = True) -> BuildReport:
    """Build every album of ``plans``: tracks whose file is whole and carries its key are left as
    they are (same bytes, same time); the rest are rendered as jobs on ``executor``, at most
    ``max_in_flight`` at once, and written here as each comes back.

    ``restart`` makes a new executor when one breaks (a worker process died): the tracks it
    held are tried once more there. ``local``: the workers share this machine (their temp
    folders go in the album folder, and the phrase cache given in the requests is theirs).
    A track that fails is reported and the others go on. Returns the report; the executor
    is the caller's to shut down.
    """
    reports = {plan.folder: AlbumReport(plan) for plan in plans}
    tracker = Tracker(sum(len(p.tracks) for p in plans), progress)
    with contextlib.ExitStack() as locks:
        states: dict[Path, AlbumState] = {}
        earlier: dict[Path, set[str]] = {}
        for plan in plans:
            plan.folder.mkdir(parents=True, exist_ok=True)
            locks.enter_context(album_lock(plan.folder))
            clean_leftovers(plan.folder)
            states[plan.folder] = load_state(plan.folder)
            earlier[plan.folder] = states[plan.folder].files()  # before this build rewrites any entry
        todo = _to_render(plans, states, reports, tracker, force)
        run = _Run(executor, max(1, max_in_flight), tracker, reports, states, restart, local)
        try:
            run.run(todo)
        finally:
            run.shut_down_own()
        for plan in plans:
            _finish(plan, reports[plan.folder], states[plan.folder], earlier[plan.folder], prune)
    tracker.event("finished")
    for report in reports.values():
        report.outcomes.sort(key=lambda o: o.track.number)
    return BuildReport(list(reports.values()))


def _to_render(plans, states, reports, tracker: Tracker, force: bool) -> deque:
    """The tracks to render, in album order; the others are reported unchanged."""
    todo: deque = deque()
    tracker.event("checking")
    for plan in plans:
        for track in plan.tracks:
            seconds = None if force else _up_to_date(plan, track, states[plan.folder])
            if seconds is None:
                todo.append((plan, track))
                tracker.plan(track.estimate_seconds)
            else:
                reports[plan.folder].outcomes.append(TrackOutcome(track, "unchanged", seconds=seconds))
                tracker.event("unchanged", track.label)
    return todo


class _Run:
    """The jobs in flight: submitted up to the window, written as they finish, retried once on a broken executor."""

    def __init__(self, executor, window, tracker, reports, states, restart, local) -> None:
        self.executor, self.window, self.tracker = executor, window, tracker
        self.reports, self.states, self.restart, self.local = reports, states, restart, local
        self.blobs: dict[tuple, Blob] = {}
        self.retried: set[tuple[Path, int]] = set()
        self.own: list[Executor] = []
        """Executors made by ``restart``: ours to shut down (the first is the caller's)."""

    def run(self, todo: deque) -> None:
        if self.window > 1:
            # Longest first: the last track to finish is then a short one, so the workers
            # stay busy until near the end (in album order, a long last track runs alone).
            todo = deque(sorted(todo, key=lambda item: -item[1].estimate_seconds))
        in_flight: dict = {}
        try:
            while todo or in_flight:
                broken = self._fill(todo, in_flight)
                if in_flight and not broken:
                    done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    finished = [(future, in_flight.pop(future)) for future in done]
                    if self.window > 1:  # the next jobs start while these are written
                        broken = self._fill(todo, in_flight)
                    for future, (plan, track) in finished:
                        broken = self._collect(plan, track, future, todo) or broken
                if broken:
                    self._restart(in_flight, todo)
        finally:
            for future in in_flight:
                future.cancel()

    def _fill(self, todo: deque, in_flight: dict) -> bool:
        """Submit jobs up to the window; True when the executor is broken."""
        while todo and len(in_flight) < self.window:
            plan, track = todo.popleft()
            self.tracker.event("started", track.label, audio_seconds=track.estimate_seconds)
            try:
                future = self.executor.submit(render_job, self._job(plan, track))
            except BrokenExecutor as exc:
                if self._broken(plan, track, exc, todo):
                    return True
                continue
            except OSError as exc:  # a cover or bell that cannot be read now
                self._failed(plan, track, _one_line(exc))
                continue
            in_flight[future] = (plan, track)
        return False

    def _collect(self, plan, track, future, todo) -> bool:
        """Write a finished job's files; True when its executor broke under it."""
        try:
            output: TrackOutput = future.result()
        except BrokenExecutor as exc:
            return self._broken(plan, track, exc, todo)
        except Exception as exc:  # the job's failure, from any executor: one line, the others go on
            self._failed(plan, track, _one_line(exc))
            return False
        try:
            seconds = _write_track(plan, track, output, self.states[plan.folder])
        except (OSError, CompassionAudioError) as exc:
            self._failed(plan, track, _one_line(exc))
            return False
        self.reports[plan.folder].outcomes.append(TrackOutcome(track, "built", seconds=seconds, phrases=output.phrases,
                                                               synthesised=output.synthesised))
        self.tracker.event("built", track.label, f"{output.elapsed_seconds:.1f} s")
        return False

    def _broken(self, plan, track, exc, todo) -> bool:
        ident = (plan.folder, track.number)
        if self.restart is not None and ident not in self.retried:
            self.retried.add(ident)
            todo.appendleft((plan, track))
            self.tracker.event("retrying", track.label, "its worker process stopped")
            return True
        self._failed(plan, track, f"its worker process stopped ({_one_line(exc)})")
        return False

    def _restart(self, in_flight: dict, todo: deque) -> None:
        # Every job still held by the broken executor comes back as broken; take them all now.
        for future in list(in_flight):
            plan, track = in_flight.pop(future)
            self._broken(plan, track, BrokenExecutor("the pool broke"), todo)
        with contextlib.suppress(Exception):
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.restart is not None:
            self.executor = self.restart()
            self.own.append(self.executor)

    def shut_down_own(self) -> None:
        for executor in self.own:
            executor.shutdown(wait=True, cancel_futures=True)

    def _failed(self, plan, track, reason: str) -> None:
        self.reports[plan.folder].outcomes.append(TrackOutcome(track, "failed", reason=reason))
        self.tracker.event("failed", track.label, reason)

    def _job(self, plan: AlbumPlan, track: PlannedTrack) -> TrackJob:
        return job_for(plan, track, local=self.local, blobs=self.blobs)


def _write_track(plan: AlbumPlan, track: PlannedTrack, output: TrackOutput, state: AlbumState) -> float:
    """Sidecars first, the audio last: a track whose audio carries its key has all its files."""
    if output.render_key != track.key:
        raise CompassionAudioError(f"the worker rendered key {output.render_key[:12]}, not {track.key[:12]}")
    folder, private = plan.folder, track.private
    sidecars = []
    for suffix, data in sorted(output.sidecars.items()):
        name = f"{track.stem}{suffix}"
        write_bytes_atomic(folder / name, data, private=private)
        sidecars.append(name)
    if not output.page:
        raise CompassionAudioError("the worker sent no page data: install the same compassion-audio on every worker")
    # Kept before the audio exists: a track whose audio carries its key has its page data too.
    state.pages[track.key] = output.page
    save_state(folder, state, private=plan.private)
    audio = folder / track.file_name
    write_bytes_atomic(audio, output.audio, private=private)
    seconds = probe.packet_seconds(audio)
    if seconds is None:
        raise CompassionAudioError(f"{audio.name} was written but ffmpeg cannot read it back")
    found = audio.stat()
    state.tracks[track.file_name] = TrackState(key=track.key, title=track.title, seconds=seconds,
                                               artist=track.artist, sidecars=sidecars, size=found.st_size,
                                               mtime_ns=found.st_mtime_ns)
    save_state(folder, state, private=plan.private)
    return seconds


def _up_to_date(plan: AlbumPlan, track: PlannedTrack, state: AlbumState) -> float | None:
    """The track's seconds when its file is whole and carries its key, its sidecars are there and its
    page data is known (the state's, else the folder's index.html), else None."""
    seconds = _audio_up_to_date(plan, track, state)
    if seconds is None or state.pages.get(track.key) or recover(plan, track, seconds, state):
        return seconds
    return None


def _audio_up_to_date(plan: AlbumPlan, track: PlannedTrack, state: AlbumState) -> float | None:
    """The track's seconds when its file is whole and carries its key (and its sidecars are there), else None."""
    audio = plan.folder / track.file_name
    if not audio.is_file() or read_render_key(audio) != track.key:
        return None
    entry = state.tracks.get(track.file_name)
    known = entry if entry is not None and entry.key == track.key else None
    export = track.request.export
    wanted = [s for s, on in ((".vtt", export.captions), (".srt", export.captions), (".txt", export.captions),
                              (".timeline.json", export.timeline_json)) if on]
    names = list(known.sidecars) if known else [f"{track.stem}{s}" for s in wanted]
    if not all((plan.folder / name).is_file() for name in names):
        return None
    if known is not None and known.unchanged(audio):
        return known.seconds  # the very file whose packets were checked when it was written
    seconds = probe.packet_seconds(audio)
    expected = known.seconds if known else probe.header_seconds(audio)
    if seconds is None or expected is None or abs(seconds - expected) > probe.TOLERANCE_SECONDS:
        return None
    # Noted (again): written by a run stopped before it could note it, or touched since.
    sidecars = list(known.sidecars) if known else \
        [f"{track.stem}{s}" for s in SIDECAR_SUFFIXES if (plan.folder / f"{track.stem}{s}").is_file()]
    found = audio.stat()
    state.tracks[track.file_name] = TrackState(key=track.key, title=track.title, seconds=seconds, artist=track.artist,
                                               sidecars=sidecars, size=found.st_size, mtime_ns=found.st_mtime_ns)
    return seconds


def _finish(plan: AlbumPlan, report: AlbumReport, state: AlbumState, previous: set[str], prune: bool) -> None:
    """The album's pages, cover and whole-album file; stale files reported (removed with prune)."""
    done = {o.track.number: o for o in report.outcomes if o.status != "failed"}
    made = [done[t.number] for t in plan.tracks if t.number in done]
    missing = [t.stem for t in plan.tracks if t.number not in done]
    current = {t.key for t in plan.tracks}
    state.pages = {key: data for key, data in state.pages.items() if key in current}
    state.extra = _pages(plan, made, missing, state)
    if plan.single_file:
        _single(plan, report, state, made, missing)
    _stale(plan, report, state, previous, prune)
    save_state(plan.folder, state, private=plan.private)


def _pages(plan: AlbumPlan, made: list[TrackOutcome], missing: list[str], state: AlbumState) -> list[str]:
    """playlist.m3u8, tracks.md, index.html and the cover, each rewritten only when it changed; their names."""
    folder, private = plan.folder, plan.private
    entries = [Entry(o.track.number, o.track.file_name, o.track.title, o.track.artist, o.seconds or 0.0)
               for o in made]
    write_if_changed(folder / PLAYLIST_NAME, playlist(entries), private=private)
    write_if_changed(folder / TRACK_LIST_NAME, track_list(plan.title, entries, artist=plan.artist, year=plan.year,
                                                          missing=missing), private=private)
    names = [PLAYLIST_NAME, TRACK_LIST_NAME]
    if write_page(plan, [o.track for o in made], state):
        names.append(ALBUM_PAGE)
    if plan.cover is not None:
        names.append(covered_name(plan.cover))
        write_bytes_if_changed(folder / names[-1], plan.cover.read_bytes(), private=private)
    return names


def _stale(plan: AlbumPlan, report: AlbumReport, state: AlbumState, previous: set[str], prune: bool) -> None:
    """Files an earlier build wrote (the state's, or audio carrying a key) that this plan does not make."""
    folder = plan.folder
    wanted = {t.file_name for t in plan.tracks}
    current = wanted | set(state.extra) | {STATE_NAME}
    for name in current & set(state.tracks):
        current.update(state.tracks[name].sidecars)
    if plan.single_file and state.single_file.get("name"):
        current.add(state.single_file["name"])  # no longer asked for: stale, like a removed track
    report.stale = sorted(n for n in (previous | _tagged_audio(folder)) - current if (folder / n).exists())
    for name in list(state.tracks):
        if name not in wanted and (prune or not (folder / name).exists()):
            del state.tracks[name]
    state.stale = list(report.stale)
    if prune:
        for name in report.stale:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        report.pruned = bool(report.stale)
        state.stale = []
        if not plan.single_file:
            state.single_file = {}


def _single(plan: AlbumPlan, report: AlbumReport, state: AlbumState, made, missing) -> None:
    first = plan.tracks[0].request
    fmt = single_format(first.export.format)
    name = single_name(plan.title, first.export.format)
    report.single_file = name
    if missing:
        report.single_status = f"not written: {len(missing)} track(s) missing"
        return
    tags = {"title": plan.title, "album": plan.title, "genre": "Meditation"}
    if plan.artist:
        tags["artist"] = tags["album_artist"] = plan.artist
    if plan.year:
        tags["year"] = plan.year
    key = single_key([t.key for t in plan.tracks], tags, file_sha256(plan.cover) if plan.cover else None, fmt,
                     first.export.bitrate, first.mix.sample_rate, first.mix.channels)
    target = plan.folder / name
    known = state.single_file
    if known.get("key") == key and known.get("name") == name and target.is_file() \
            and read_render_key(target) == key and probe.whole(target, known.get("seconds")):
        report.single_status = "unchanged"
        return
    parts = [Part(o.track.title, plan.folder / o.track.file_name) for o in made]
    try:
        write_single_file(target, parts, tags={**tags, "render_key": key}, cover=plan.cover, fmt=fmt,
                          bitrate=first.export.bitrate, sample_rate=first.mix.sample_rate,
                          channels=first.mix.channels, private=plan.private)
    except (OSError, CompassionAudioError) as exc:
        report.single_status = f"failed: {_one_line(exc)}"
        return
    state.single_file = {"name": name, "key": key, "seconds": probe.packet_seconds(target)}
    report.single_status = "built"


_AUDIO = re.compile(r"\.(" + "|".join(FORMATS + ("m4b",)) + r")$")


def _tagged_audio(folder: Path) -> set[str]:
    """Audio files in the folder that an album build made (they carry a render key)."""
    found = set()
    for path in folder.iterdir():
        if path.is_file() and not path.name.startswith(".") and _AUDIO.search(path.name) and read_render_key(path):
            found.add(path.name)
    return found


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, CompassionAudioError) else f"{type(exc).__name__}: {text}"
