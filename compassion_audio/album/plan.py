"""Manifest + the run's options -> album plans: every track checked, resolved and keyed before anything is spoken."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from compassion_audio.album import keys
from compassion_audio.album import options as opts
from compassion_audio.album.manifest import Manifest, TrackEntry
from compassion_audio.album.names import slug, track_stem
from compassion_audio.core.errors import (AlbumError, AudioError, CompassionAudioError, ExerciseNotFound,
                                          ParameterError, SourceError, TemplateError)
from compassion_audio.core.segments import Breathe
from compassion_audio.output.tags import check_tags
from compassion_audio.render import NOTHING_TO_SAY, OUTPUT_DIR, TrackRequest
from compassion_audio.script.library import find_exercise
from compassion_audio.script.personalise import personalise
from compassion_audio.script.profile import ClientProfile, client_file_id, empty_profile, load_profile
from compassion_audio.script.templates import render_script
from compassion_audio.sound.estimate import estimate_timeline
from compassion_audio.sound.tones import BreathPattern
from compassion_audio.speech.voices import resolve_voice


@dataclass(frozen=True)
class BuildOptions:
    """What the command line adds to a manifest."""

    output: Path | None = None
    """The album folder (with --clients: the folder of the clients' album folders)."""
    clients: Path | None = None
    """A folder of client profiles: one album each."""
    client: Path | None = None
    """One client profile (instead of [album] client)."""
    name_in_file: bool = False
    overrides: dict = field(default_factory=dict)
    """Render options from the command line, typed as options.check_option gives them; they beat the manifest's."""
    exercise_dirs: tuple[Path, ...] = ()
    voice_dirs: tuple[Path, ...] = ()
    cache_dir: Path | None = None
    use_cache: bool = True
    single_file: bool = False


@dataclass(frozen=True)
class PlannedTrack:
    number: int
    title: str
    stem: str
    """``01 Soothing rhythm breathing``: the file name without its suffix."""
    label: str
    """How progress and the summary name it."""
    resolved: keys.Resolved
    request: TrackRequest
    """The request as rendered: its output in the album folder and its key among its tags."""
    estimate_seconds: float
    """The track's estimated length (for the ETA)."""
    artist: str
    hold: bool = False
    """The album page stops at this track's chapter ends (page only: not in the key)."""

    @property
    def key(self) -> str:
        return self.resolved.key

    @property
    def file_name(self) -> str:
        return f"{self.stem}.{self.request.export.format}"

    @property
    def private(self) -> bool:
        return self.request.private


@dataclass(frozen=True)
class AlbumPlan:
    title: str
    """The album tag."""
    folder: Path
    tracks: tuple[PlannedTrack, ...]
    artist: str | None = None
    year: str | None = None
    cover: Path | None = None
    single_file: bool = False
    notices: tuple[str, ...] = ()

    @property
    def private(self) -> bool:
        """Any personal track makes every page of the album private (0600)."""
        return any(t.private for t in self.tracks)


def plan_albums(manifest: Manifest, options: BuildOptions = BuildOptions()) -> list[AlbumPlan]:
    """Check everything - every profile, track, template, value, voice and file - then key every
    track (a voice's engine may start to tell its identity; nothing is spoken)."""
    clients = _clients(manifest, options)
    profiles = [(path, load_profile(path) if path else empty_profile()) for path in clients]
    _check_cover(manifest)
    memo: dict[tuple, object] = {}  # each template loaded, each bell or background decoded once per batch
    drafts = [_draft(manifest, options, path, profile, memo) for path, profile in profiles]
    _distinct_folders(drafts, options)
    many = len(drafts) > 1
    plans = []
    for plan, tracks in drafts:
        keyed = []
        for track in tracks:
            resolved = keys.resolve(track["request"], prepared=track["prepared"])
            label = f"{plan.folder.name}/{track['stem']}" if many else track["stem"]
            keyed.append(PlannedTrack(number=track["number"], title=track["title"], stem=track["stem"],
                                      label=label, resolved=resolved,
                                      request=keys.keyed(resolved.request, resolved.key),
                                      estimate_seconds=track["estimate"], artist=track["artist"],
                                      hold=track["hold"]))
        plans.append(replace(plan, tracks=tuple(keyed)))
    return plans


def _clients(manifest: Manifest, options: BuildOptions) -> list[Path | None]:
    if options.clients is not None:
        if not options.clients.is_dir():
            raise AlbumError("no such folder", source=str(options.clients),
                             hint="--clients takes a folder of client profiles")
        found = sorted(p for p in options.clients.glob("*.toml") if not p.name.startswith("."))
        if not found:
            raise AlbumError("no client profiles (*.toml) in this folder", source=str(options.clients),
                             hint="'compassion-audio client new FILE' writes one")
        return found
    return [options.client or manifest.client]


def _check_cover(manifest: Manifest) -> None:
    if manifest.cover is None:
        return
    head = manifest.cover.read_bytes()[:8]
    if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")):
        raise manifest.error("cover is not a JPEG or PNG file", "cover", "players only show JPEG and PNG covers")


def _folder(manifest: Manifest, options: BuildOptions, path: Path | None, profile: ClientProfile) -> Path:
    base = options.output or OUTPUT_DIR / (manifest.folder_name or slug(manifest.title))
    if path is None or (options.output is not None and options.clients is None):
        return base
    name = str(profile.values.get("name") or "")
    own = slug(name, "") if _name_in_file(manifest, options) else ""
    return base / (own or client_file_id(path))


def _name_in_file(manifest: Manifest, options: BuildOptions) -> bool:
    return options.name_in_file or manifest.name_in_file


def _draft(manifest: Manifest, options: BuildOptions, path: Path | None, profile: ClientProfile,
           memo: dict):
    folder = _folder(manifest, options, path, profile)
    name = str(profile.values.get("name") or "")
    title = manifest.title
    if name and _name_in_file(manifest, options):
        title = f"{title} - for {name}"
    total = len(manifest.tracks)
    tracks, notices = [], []
    for entry in manifest.tracks:
        track = _track(manifest, options, entry, folder, path, profile, title, total, memo)
        tracks.append(track)
        notices += [f"{track['stem']}: {notice}" for notice in track["notices"]]
    plan = AlbumPlan(title=title, folder=folder, tracks=(), artist=manifest.artist, year=manifest.year,
                     cover=manifest.cover, single_file=options.single_file, notices=tuple(dict.fromkeys(notices)))
    return plan, tracks


def _track(manifest: Manifest, options: BuildOptions, entry: TrackEntry, folder: Path, client: Path | None,
           profile: ClientProfile, album_title: str, total: int, memo: dict) -> dict:
    def fail(key: str, message: str, hint: str | None = None) -> AlbumError:
        return AlbumError(f"{entry.label}: {message}", source=manifest.source,
                          line=_line(manifest, entry, key), hint=hint)

    chosen = {**manifest.options, **entry.options, **options.overrides}
    dirs = tuple(options.exercise_dirs) + tuple(manifest.exercise_dirs)
    what = "exercise" if entry.exercise else "template"
    wanted = ("exercise", entry.exercise or str(entry.template), dirs)
    try:
        if wanted not in memo:
            memo[wanted] = find_exercise(wanted[1], dirs)
    except ExerciseNotFound as exc:
        raise fail(what, f"{what}: {exc}") from None
    exercise = memo[wanted]
    group = bool(chosen.get("group", False))
    if group and not exercise.group:
        raise fail("group", f"{exercise.name} has no group variant", "leave out group = true for this track")
    try:
        used = personalise(exercise, profile, entry.sets, group=group)
    except SourceError as exc:
        raise fail("set", f"set: {exc.message}", exc.hint) from None
    length = chosen.get("length") or used.profile.length or exercise.default_length
    if length not in exercise.lengths:
        raise fail("length", f"{exercise.name} has no {length} version", f"lengths are {', '.join(exercise.lengths)}")
    try:
        script = render_script(exercise, used.values, length=length, group=group)
    except TemplateError:
        raise  # the template's own file and line
    except ParameterError as exc:
        raise fail("set", exc.message, exc.hint) from None
    silent_timer = bool(chosen.get("silent_timer"))
    if not script.speech and not silent_timer:
        raise fail(what, NOTHING_TO_SAY, "write the words to speak, or set silent_timer = true for a track "
                                         "of pauses and bells")
    voice_dirs = tuple(options.voice_dirs) + tuple(chosen.get("voices", ()))
    voice = _voice(chosen.get("voice") or used.profile.voice, voice_dirs, fail, "voice")
    if "rate" in chosen:
        voice = voice.with_settings(rate_wpm=int(chosen["rate"]))
    fallback = None
    if "fallback_voice" in chosen:
        fallback = _voice(chosen["fallback_voice"], voice_dirs, fail, "fallback_voice")
    breathing = opts.breathing_for(chosen, used.profile)
    try:
        BreathPattern.from_settings(breathing)
        for stretch in (s for s in script.segments if isinstance(s, Breathe)):
            BreathPattern.from_settings(breathing, breaths_per_min=stretch.breaths_per_min, ratio=stretch.ratio)
    except CompassionAudioError as exc:
        raise fail("breathing", f"breathing: {exc}") from None
    mix = opts.mix_for(chosen)
    _check_sounds(mix, fail, memo)
    title = entry.title or script.title
    tags = {"title": title, "album": album_title, "track": f"{entry.number}/{total}"}
    for key, value in (("artist", chosen.get("artist") or manifest.artist), ("album_artist", manifest.artist),
                       ("year", manifest.year), ("comment", chosen.get("comment"))):
        if value:
            tags[key] = value
    try:
        check_tags(tags)
    except ParameterError as exc:
        raise fail("title", f"tags: {exc.message}", exc.hint) from None
    export = opts.export_for(chosen, tags, manifest.cover)
    stem = track_stem(entry.number, total, title)
    fmt = export.format or "mp3"
    request = TrackRequest(
        exercise=exercise.name if exercise.builtin else str(exercise.path), values=used.values, length=length,
        group=group, voice_profile=voice, fallback_profile=fallback, breathing=breathing, mix=mix,
        export=export, output=folder / f"{stem}.{fmt}", force=True, use_cache=options.use_cache,
        cache_dir=options.cache_dir, exercise_dirs=dirs, personal=True if client and not group else None,
        allow_silent=silent_timer)
    estimate = estimate_timeline(script, voice=voice.settings, breathing=breathing, mix=mix).seconds
    return {"number": entry.number, "title": title, "stem": stem, "request": request, "estimate": estimate,
            "prepared": (exercise, script),
            "artist": tags.get("artist") or voice.name, "notices": used.notices, "hold": bool(chosen.get("hold"))}


def _voice(name: str | None, dirs: tuple[Path, ...], fail, key: str):
    try:
        return resolve_voice(name, dirs)
    except CompassionAudioError as exc:
        raise fail(key, f"{key}: {exc}") from None


def _check_sounds(mix, fail, memo: dict) -> None:
    """The bell and background load as a render would load them: a bad file fails here, not mid-batch.
    ``memo`` (the batch's) keeps what each (file, rate, channels) gave: None, or the problem."""
    from compassion_audio.sound.bells import load_bell
    from compassion_audio.sound.beds import Bed

    checks = []
    if mix.bell_file:
        checks.append(("bell_file", ("bell", str(mix.bell_file), mix.sample_rate),
                       lambda: load_bell(mix.bell_file, mix.sample_rate)))
    if mix.background:
        checks.append(("background", ("background", mix.background, mix.sample_rate, mix.channels),
                       lambda: Bed.from_setting(mix.background, mix.sample_rate, mix.channels)))
    for key, sound, load in checks:
        if sound not in memo:
            try:
                load()
                memo[sound] = None
            except (AudioError, ParameterError, OSError) as exc:
                memo[sound] = str(exc)
        if memo[sound]:
            raise fail(key, f"{key}: {memo[sound]}")


def _line(manifest: Manifest, entry: TrackEntry, key: str) -> int | None:
    """The line that set ``key`` for this track: the track's own, else [album]'s, else the track's header."""
    names = [key] + [k for k, v in opts.OPPOSITES.items() if v == key]
    for name in names:
        if name in entry.key_lines:
            return entry.key_lines[name]
    for name in names:
        if name in manifest.key_lines:
            return manifest.key_lines[name]
    return entry.line


def _distinct_folders(drafts, options: BuildOptions) -> None:
    seen: dict[Path, int] = {}
    for index, (plan, _) in enumerate(drafts):
        if plan.folder in seen:
            raise AlbumError(f"two client profiles would share the album folder {plan.folder}",
                             source=str(options.clients or plan.folder),
                             hint="give the clients different names, or leave out --name-in-file")
        seen[plan.folder] = index
