"""The one library call that turns an exercise into a finished track: render_track()."""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import stat
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from compassion_audio.script import library, templates
from compassion_audio.sound.assemble import estimate_clips, plan_timeline
from compassion_audio.speech.cache import ClipCache, default_cache_dir
from compassion_audio.core.settings import BreathingSettings, ExportSettings, MixSettings, VoiceSettings
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import SpeechError
from compassion_audio.output.export import check_writable, encode, format_for
from compassion_audio.core.files import atomic_output, write_text_atomic
from compassion_audio.core.loudness import LoudnessMeter
from compassion_audio.sound.mastering import TOLERANCE_DB, Mastering, gain_for, measured, predict
from compassion_audio.sound.mix import StreamMaster, TrackMixer
from compassion_audio.core.audio import db_to_gain
from compassion_audio.core.segments import Bell, Breathe, Script
from compassion_audio.sound.tones import BreathPattern
from compassion_audio.core.levels import BELL_PEAK_DB, CLIP_LUFS
from compassion_audio.speech.clip_source import ClipSource
from compassion_audio.core.timeline import Timeline
from compassion_audio.speech.voices import VoiceProfile, create_engine, resolve_voice, usable

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total), in frames of the track: 'render' (speaking, mixing and
encoding, side by side; the total is estimated until every phrase is spoken) and, only
when the first pass missed the loudness target, 'correct' (the track written again)."""

OUTPUT_DIR = Path("output")
LOSSY = ("mp3", "ogg", "opus", "m4a")

log = logging.getLogger(__name__)


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


def render_track(request: TrackRequest, *, engine: SpeechEngine | None = None,
                 progress: Progress | None = None) -> TrackResult:
    """Render, synthesise, assemble, master and write one track; sidecars after the audio."""
    exercise, script = prepare_script(request)
    fmt = format_for(request.output, request.export.format)
    path = request.output or default_output(exercise, script, fmt, prefix=request.name_prefix)
    check_writable(path, request.force)
    from compassion_audio.output.tags import check_tags

    check_tags(request.export.tags)  # a bad --year or --track fails now, not after the speaking
    export = replace(request.export, format=fmt)
    profile = request.voice_profile or resolve_voice(None)
    if engine is None:
        profile = usable(profile)  # its fallback, announced, when its engine cannot load here
    voice = request.voice or profile.settings
    request = replace(request, voice=voice)
    sentences = [s.text for s in script.speech]
    own_engine = engine is None
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The engine starts (a worker process, or a model loading) while the bell, the
        # background and the breathing settings are checked - all before anything is spoken.
        starting = pool.submit(create_engine, profile, fallback=request.fallback_profile) \
            if own_engine else None
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
        source = ClipSource(sentences, counting, cache, sample_rate=request.mix.sample_rate,
                            lexicon=dict(profile.lexicon) or None)
        tags = {**default_tags(script, profile.name), **export.tags}
        timeline, mastering = _write_audio(script, source, request, sources, path, export, tags,
                                           progress)
        sidecars = _write_sidecars(timeline, path, export)
    return TrackResult(path=path, timeline=timeline, mastering=mastering,
                       phrases=len(set(sentences)), synthesised=counting.calls,
                       sidecars=tuple(sidecars), breathing=request.breathing)


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
                 progress: Progress | None) -> tuple[Timeline, Mastering]:
    """Speak, mix, master and encode in one pass: blocks are encoded as soon as the
    phrases they hold are spoken, with the gain the plan predicts; the mastered track
    is metered on the way and, if it missed the target by more than TOLERANCE_DB,
    written again with the gain corrected by the measurement."""
    from compassion_audio.output import tags as tagging

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

    def blocks():
        for sentence, clip in source.ahead():
            known[sentence] = clip
            mixer.extend(_plan(script, known, request, sources, partial=True))
            yield from master.advance()
        mixer.extend(_plan(script, known, request, sources))
        yield from master.advance()

    def position() -> tuple[int, int]:
        frames = mixer.timeline.frames if mixer.timeline.complete else max(plan.frames, master.done)
        return master.done, frames

    stream = _reporting(blocks(), "render", progress, position) if progress else blocks()
    with atomic_output(path, private=request.private) as tmp:
        encode(stream, tmp, sample_rate=sr, channels=mixer.channels, settings=export)
        timeline = mixer.timeline
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
                whole, voice = measured(meter, timeline)
                mastering = Mastering(gain, whole, voice, predicted_gain_db=predicted, passes=2)
        tagging.write_tags(tmp, export.format, tags, chapters=timeline.chapters, sample_rate=sr,
                           cover=export.cover, duration_frames=timeline.frames)
    return timeline, mastering


def _reporting(blocks, stage: str, progress: Progress, position: Callable[[], tuple[int, int]]):
    """Call ``progress(stage, *position())`` as each block goes to the encoder."""
    for block in blocks:
        progress(stage, *position())
        yield block


def _write_sidecars(timeline: Timeline, path: Path, export: ExportSettings) -> list[Path]:
    written: list[Path] = []
    if export.captions:
        from compassion_audio.output.captions import write_captions

        written += write_captions(timeline, path)
    if export.timeline_json:
        target = path.with_suffix(".timeline.json")
        write_text_atomic(target, json.dumps(timeline.to_json(), indent=2, ensure_ascii=False) + "\n",
                          mode=stat.S_IMODE(path.stat().st_mode))
        written.append(target)
    return written
