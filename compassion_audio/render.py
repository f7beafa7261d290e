"""The one library call that turns an exercise into a finished track: render_track()."""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import stat
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from compassion_audio.script import library, templates
from compassion_audio.sound.assemble import estimate_clips, plan_timeline
from compassion_audio.speech.cache import ClipCache, default_cache_dir
from compassion_audio.core.settings import BreathingSettings, ExportSettings, MixSettings, VoiceSettings
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import SpeechError, TemplateError
from compassion_audio.output.export import encode, format_for
from compassion_audio.output.targets import check_writable
from compassion_audio.core.files import atomic_output
from compassion_audio.core.loudness import LoudnessMeter
from compassion_audio.sound.mastering import TOLERANCE_DB, Mastering, gain_for, measured, predict
from compassion_audio.sound.mix import StreamMaster, TrackMixer
from compassion_audio.core.audio import db_to_gain
from compassion_audio.core.segments import Bell, Breathe, Script
from compassion_audio.sound.tones import BreathPattern
from compassion_audio.core.levels import BELL_PEAK_DB, CLIP_LUFS
from compassion_audio.speech.clip_source import ClipSource
from compassion_audio.speech.voice_identity import remember_identity, remembered_identity
from compassion_audio.core.timeline import Timeline
from compassion_audio.speech.voices import VoiceProfile, create_engine, resolve_voice, usable

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total), in frames of the track: 'render' (speaking, mixing and
encoding, side by side; the total is estimated until every phrase is spoken) and, only
when the first pass missed the loudness target, 'correct' (the track written again)."""

OUTPUT_DIR = Path("output")
LOSSY = ("mp3", "ogg", "opus", "m4a")

log = logging.getLogger(__name__)
NOTHING_TO_SAY = "nothing to say: the script has no speech, only markers or nothing at all"
"""Why a script without speech is refused (unless a silent timer is asked for)."""


@dataclass(frozen=True)
class TrackRequest:
    """Everything that decides one track."""

    exercise: str
    """Built-in name, user exercise name, or a template path."""
    values: Mapping[str, object] = field(default_factory=dict)
    length: str | None = None
    group: bool = False
    voice_profile: "VoiceProfile | None" = None
    """The voice (None: the default profile). Its lexicon is applied before synthesis."""
    fallback_profile: "VoiceProfile | None" = None
    """Speaks phrases a recorded voice pack lacks (None: a missing phrase is an error)."""
    voice: VoiceSettings | None = None
    """Overrides the profile's timing settings (gaps); None: from the profile."""
    breathing: BreathingSettings = field(default_factory=BreathingSettings)
    mix: MixSettings = field(default_factory=MixSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    output: Path | None = None
    name_prefix: str = ""
    """Put before the default file name: a client's file id (``profile.client_file_id``), or a
    name the user asked for. Not used when ``output`` is given."""
    force: bool = False
    use_cache: bool = True
    cache_dir: Path | None = None
    exercise_dirs: tuple[Path, ...] = ()
    allow_silent: bool = False
    """A track with no speech (a timer of pauses, tones and bells) is wanted: without this, a
    script with nothing to say is refused before anything is made."""
    personal: bool | None = None
    """Made for one client: the track and every file beside it are written 0600. False:
    they follow the umask, so a clinic can share them. None: personal when an individual
    track is given any words of its own (a text or list value); a group track never is."""

    @property
    def private(self) -> bool:
        """Whether the output is written 0600 (see ``personal``)."""
        if self.personal is not None:
            return self.personal
        return not self.group and any(_has_words(v) for v in self.values.values())


def _has_words(value: object) -> bool:
    if isinstance(value, Mapping):
        return any(_has_words(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_words(v) for v in value)
    return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True)
class TrackResult:
    path: Path
    timeline: Timeline
    mastering: Mastering
    phrases: int
    synthesised: int
    """Phrases the engine had to speak (the rest came from the cache)."""
    sidecars: tuple[Path, ...] = ()
    breathing: BreathingSettings = field(default_factory=BreathingSettings)
    """The breathing settings the tones were paced by (the session page follows them)."""


class _CountingEngine:
    """Wraps an engine to count real syntheses (cache misses)."""

    def __init__(self, engine: SpeechEngine) -> None:
        self._engine = engine
        self.calls = 0

    def synthesize(self, text: str):
        self.calls += 1
        return self._engine.synthesize(text)

    def __getattr__(self, name: str):
        # Everything else (name, identity, voices, close, and optional extras such as
        # identity_for or missing) is the wrapped engine's own.
        return getattr(self._engine, name)


def prepare_script(request: TrackRequest) -> tuple[library.Exercise, Script]:
    exercise = library.find_exercise(request.exercise, request.exercise_dirs)
    script = templates.render_script(exercise, request.values, length=request.length,
                                     group=request.group)
    if not script.speech and not request.allow_silent:
        raise TemplateError(NOTHING_TO_SAY, source=str(exercise.path),
                            hint="write the words to speak, or pass --silent-timer for a track of pauses and bells")
    return exercise, script


def default_output(exercise: library.Exercise, script: Script, fmt: str,
                   folder: Path = OUTPUT_DIR, prefix: str = "") -> Path:
    """``output/[<prefix>-]<exercise>-<length>[-group].<fmt>``: the prefix is the only
    part that can tell two clients apart, and the caller chooses it."""
    parts = [prefix] if prefix else []
    parts += [exercise.name, str(script.meta.get("length") or "standard")]
    if script.meta.get("group"):
        parts.append("group")
    return folder / (("-".join(parts)) + f".{fmt}")


def default_tags(script: Script, voice_name: str) -> dict[str, str]:
    return {
        "title": script.title,
        "artist": voice_name,
        "album": "Compassion practice",
        "genre": "Meditation",
        "date": str(datetime.date.today().year),
        "comment": str(script.meta.get("summary", "")),
    }


def check_request(request: TrackRequest) -> tuple[library.Exercise, Script]:
    """Everything about a request that can be checked without speaking - the script renders
    and has words (or is a silent timer), the tags are valid, the output and its sidecars
    can be written, the cover, bell and background files are usable. An existing output is
    not refused here (``render_track`` refuses it without ``force``), so a caller can first
    ask whether it is already up to date. Nothing is written. Returns what
    ``prepare_script(request)`` returns, for the caller to reuse."""
    exercise, script, _, _ = _checked(request, force=True)
    return exercise, script


def _checked(request: TrackRequest, *, force: bool) -> tuple[library.Exercise, Script, Path, str]:
    exercise, script = prepare_script(request)
    fmt = format_for(request.output, request.export.format)
    path = request.output or default_output(exercise, script, fmt, prefix=request.name_prefix)
    check_writable(path, force, export=request.export, mix=request.mix)
    from compassion_audio.output.tags import check_tags

    check_tags(request.export.tags)  # a bad --year or --track fails now, not after the speaking
    return exercise, script, path, fmt


def render_track(request: TrackRequest, *, engine: SpeechEngine | None = None,
                 progress: Progress | None = None) -> TrackResult:
    """Render, synthesise, assemble, master and write one track; sidecars after the audio."""
    exercise, script, path, fmt = _checked(request, force=request.force)
    export = replace(request.export, format=fmt)
    profile = request.voice_profile or resolve_voice(None)
    if engine is None:
        profile = usable(profile)  # its fallback, announced, when its engine cannot load here
    voice = request.voice or profile.settings
    request = replace(request, voice=voice)
    sentences = [s.text for s in script.speech]
    own_engine = engine is None
    memo_dir = (request.cache_dir or default_cache_dir()) if request.use_cache else None
    # A voice this machine has used before is known by its remembered identity: its engine
    # starts only if a phrase is not in the cache (a warm render starts none).
    known = remembered_identity(profile, request.fallback_profile, memo_dir) \
        if own_engine and memo_dir is not None else None
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The engine starts (a worker process, or a model loading) while the bell, the
        # background and the breathing settings are checked - all before anything is spoken.
        starting = pool.submit(create_engine, profile, fallback=request.fallback_profile) \
            if own_engine and known is None else None
        try:
            sources = _load_sources(script, request.mix)
            for stretch in (s for s in script.segments if isinstance(s, Breathe)):
                BreathPattern.from_settings(request.breathing, breaths_per_min=stretch.breaths_per_min,
                                            ratio=stretch.ratio)
            BreathPattern.from_settings(request.breathing)
        except BaseException:
            if starting is not None:
                with contextlib.suppress(Exception):
                    starting.result().close()
            raise
        if starting is not None:
            engine = starting.result()
    if known is not None:
        engine = _StartOnFirstUse(profile, request.fallback_profile, known, memo_dir)
    elif own_engine and memo_dir is not None and profile.settings.engine != "pack":
        try:
            remember_identity(engine, profile, request.fallback_profile, memo_dir)
        except BaseException:
            engine.close()
            raise
    if own_engine:
        _check_pack(engine, sentences, request.fallback_profile)
    counting = _CountingEngine(engine)
    with contextlib.ExitStack() as stack:
        if own_engine:
            stack.callback(counting.close)
        if request.use_cache:
            cache = stack.enter_context(ClipCache(request.cache_dir or default_cache_dir()))
        else:
            cache = stack.enter_context(ClipCache.temporary())
        source = ClipSource(script.speech, counting, cache, sample_rate=request.mix.sample_rate,
                            lexicon=dict(profile.lexicon) or None, source=exercise.path.name)
        tags = {**default_tags(script, profile.name), **export.tags}
        timeline, mastering, sidecars = _write_audio(script, source, request, sources, path, export,
                                                     tags, progress)
    return TrackResult(path=path, timeline=timeline, mastering=mastering,
                       phrases=len(set(sentences)), synthesised=counting.calls,
                       sidecars=sidecars, breathing=request.breathing)


class _StartOnFirstUse:
    """The render's own engine, started only when a phrase is not in the cache.

    A warm render speaks nothing, so it need not start a worker process or load a model
    (0.3-0.8 s). Until then its identity - what the cache keys clips on - is the one
    ``speech.voice_identity`` remembered for this voice and installation. Should the
    started engine say otherwise (the memo outlived a change its fingerprint missed),
    the render stops before storing a clip under the wrong key, and the memo is renewed
    so that running the command again works.
    """

    def __init__(self, profile: VoiceProfile, fallback: VoiceProfile | None, identity: dict,
                 memo_dir: Path) -> None:
        self.name = profile.settings.engine
        self._profile, self._fallback, self._memo_dir = profile, fallback, memo_dir
        self._identity = identity
        self._engine: SpeechEngine | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict:
        return self._identity

    def synthesize(self, text: str):
        return self._started().synthesize(text)

    def voices(self):
        return self._started().voices()

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()

    def _started(self) -> SpeechEngine:
        with self._lock:
            if self._engine is None:
                log.debug("engine: a phrase is not in the cache; starting %s", self.name)
                engine = create_engine(self._profile, fallback=self._fallback)
                try:
                    actual = remember_identity(engine, self._profile, self._fallback, self._memo_dir)
                except BaseException:
                    engine.close()
                    raise
                if actual != self._identity:
                    engine.close()
                    raise SpeechError("the voice's engine is not the one this machine used before "
                                      "(an update?); its record is renewed: run the command again")
                self._engine = engine
            return self._engine


def _check_pack(engine: SpeechEngine, sentences: list[str], fallback) -> None:
    """A recorded voice pack without a fallback must have every phrase: list all that are missing."""
    missing = getattr(engine, "missing", None)
    if fallback is None and missing is not None and missing(sentences):
        report = engine.missing_report(sentences)
        engine.close()
        raise SpeechError(report)


@dataclass(frozen=True)
class _Sources:
    """The non-speech sounds of a track, loaded before any synthesis so a bad bell or
    background file fails at once rather than after minutes of speech."""

    bell: object = None
    ring_frames: int = 0
    bed: object = None


def _load_sources(script: Script, mix: MixSettings) -> _Sources:
    """The bell and the background, loaded before anything is spoken (check_writable has
    already refused a bell or background file that is not a regular file within its limit;
    one that does not decode is refused here, not after minutes of speech)."""
    from compassion_audio.sound import bells

    sr = mix.sample_rate
    bell, ring, bed = None, 0, None
    if mix.bells or any(isinstance(s, Bell) for s in script.segments):
        bell = bells.load_bell(mix.bell_file, sr) if mix.bell_file else bells.singing_bowl(sr)
        ring = bells.ring_frames(bell, sr)
    if mix.background:
        from compassion_audio.sound.beds import Bed

        bed = Bed.from_setting(mix.background, sr, mix.channels)
    return _Sources(bell, ring, bed)


def _plan(script: Script, clips, request: TrackRequest, sources: _Sources, *,
          partial: bool = False) -> Timeline:
    bell = sources.bell
    return plan_timeline(script, clips, voice=request.voice, breathing=request.breathing,
                         mix=request.mix, bell_frames=0 if bell is None else bell.shape[0],
                         bell_ring_frames=sources.ring_frames, partial=partial)


def _write_audio(script: Script, source: ClipSource, request: TrackRequest, sources: _Sources,
                 path: Path, export: ExportSettings, tags: Mapping[str, str],
                 progress: Progress | None) -> tuple[Timeline, Mastering, tuple[Path, ...]]:
    """Speak, mix, master and encode in one pass: blocks are encoded as soon as the
    phrases they hold are spoken, with the gain the plan predicts; the mastered track
    is metered on the way and, if it missed the target by more than TOLERANCE_DB,
    written again with the gain corrected by the measurement.

    Nothing takes a final name until everything is made: the track is encoded, checked
    (export.verify), tagged and its sidecars' text made under temp names first. Then the
    track is published - without --force only if its name is still free, so of two renders
    racing to one output the second fails as if the file had been there - and then each
    sidecar; if any of them fails, every file published is put back as it was
    (export.published_together): afterwards the whole older set or the whole new one is there.
    """
    from compassion_audio.core.errors import OutputError
    from compassion_audio.output import export as export_files
    from compassion_audio.output import targets
    from compassion_audio.output import tags as tagging
    from compassion_audio.output.captions import write_sidecar

    mix, sr = request.mix, request.mix.sample_rate
    known = dict(source.ready)
    mixer = TrackMixer(_plan(script, known, request, sources, partial=True), mix=mix,
                       breathing=request.breathing, bell=sources.bell, bed=sources.bed)
    target = mix.loudness_lufs
    # The plan with every phrase timed from its word count: for the loudness
    # prediction, and the progress total until the real plan is complete. Even
    # clips already cached are estimated, so the same request gets the same gain -
    # and the same file - whatever the cache holds.
    plan = _plan(script, estimate_clips(source.distinct, request.voice, sr), request, sources)
    predicted = math.nan
    if target is not None:
        predicted = predict(plan, mix=mix, voice_lufs=CLIP_LUFS,
                            bell=sources.bell, bell_gain=db_to_gain(BELL_PEAK_DB), bed=sources.bed,
                            tone_steps=mixer.tone_powers(plan)).gain_db
    meter = LoudnessMeter(sr, mixer.channels) if target is not None else None
    lossy = export.format in LOSSY
    master = StreamMaster(mixer, 0.0 if target is None else predicted, lossy=lossy, meter=meter)

    clips = source.ahead()

    def blocks():
        for sentence, clip in clips:
            known[sentence] = clip
            mixer.extend(_plan(script, known, request, sources, partial=True))
            yield from master.advance()
        mixer.extend(_plan(script, known, request, sources))
        yield from master.advance()

    def position() -> tuple[int, int]:
        frames = mixer.timeline.frames if mixer.timeline.complete else max(plan.frames, master.done)
        return master.done, frames

    stream = _reporting(blocks(), "render", progress, position) if progress else blocks()

    def cannot_write(exc: OSError) -> OutputError:  # a full disk, no permission, a file-size limit
        if isinstance(exc, FileExistsError):
            return OutputError(targets.exists_message(path))
        return OutputError(f"cannot write the track in {targets.folder_label(path)}: "
                           f"{exc.strerror or exc} (nothing was written)")

    # The speech threads are stopped here, not left to the garbage collector: on an error or a
    # stop (Ctrl-C, SIGTERM) they end before the cache folder they write to is removed.
    with contextlib.closing(clips), \
            export_files.published_together([path, *targets.sidecar_paths(path, export)]) as done:
        with contextlib.ExitStack() as stack:
            try:
                tmp = stack.enter_context(atomic_output(path, private=request.private,
                                                        exclusive=not request.force))
            except OSError as exc:
                raise cannot_write(exc) from exc
            timeline, mastering = _encode_mastered(stream, tmp, request, export, mixer, meter,
                                                   predicted, target, lossy, progress)
            tagging.write_tags(tmp, export.format, tags, chapters=timeline.chapters, sample_rate=sr,
                               cover=export.cover, duration_frames=timeline.frames)
            if export.format == "m4a":  # the chapters remux rewrote it
                export_files.verify(tmp, export.format, frames=timeline.frames, sample_rate=sr)
            sidecars = export_files.sidecar_texts(timeline, path, export)
            mode = stat.S_IMODE(tmp.stat().st_mode)  # sidecars carry the track's words: its mode
            try:
                stack.close()  # atomic_output renames the temp file into place
            except OSError as exc:
                raise cannot_write(exc) from exc
        done.add(path)
        for side, text in sidecars.items():
            write_sidecar(side, text, mode)
            done.add(side)
    return timeline, mastering, tuple(sidecars)


def _encode_mastered(stream, tmp: Path, request: TrackRequest, export: ExportSettings, mixer, meter,
                     predicted: float, target, lossy: bool, progress: Progress | None):
    """Encode ``stream`` into ``tmp`` (checked with export.verify); if the metered loudness
    missed the target by more than TOLERANCE_DB, encode it again with the gain corrected."""
    from compassion_audio.output import export as export_files

    sr = request.mix.sample_rate
    encode(stream, tmp, sample_rate=sr, channels=mixer.channels, settings=export)
    timeline = mixer.timeline
    export_files.verify(tmp, export.format, frames=timeline.frames, sample_rate=sr)
    mastering = Mastering(0.0)
    if meter is not None:
        whole, voice = measured(meter, timeline)
        mastering = Mastering(predicted, whole, voice, predicted_gain_db=predicted)
        correction = gain_for(whole, voice, target)
        log.debug("mastering: predicted gain %+.2f dB; measured %.2f LUFS (voice %.2f); correction %+.2f dB",
                  predicted, whole, voice, correction)
        if abs(correction) > TOLERANCE_DB:
            gain = predicted + correction
            meter = LoudnessMeter(sr, mixer.channels)
            second = StreamMaster(mixer, gain, lossy=lossy, meter=meter)
            again = second.advance()
            if progress:
                again = _reporting(again, "correct", progress,
                                   lambda: (second.done, timeline.frames))
            encode(again, tmp, sample_rate=sr, channels=mixer.channels, settings=export)
            export_files.verify(tmp, export.format, frames=timeline.frames, sample_rate=sr)
            whole, voice = measured(meter, timeline)
            mastering = Mastering(gain, whole, voice, predicted_gain_db=predicted, passes=2)
    return timeline, mastering


def _reporting(blocks, stage: str, progress: Progress, position: Callable[[], tuple[int, int]]):
    """Call ``progress(stage, *position())`` as each block goes to the encoder."""
    for block in blocks:
        progress(stage, *position())
        yield block
