"""The one library call that turns an exercise into a finished track: render_track()."""
from __future__ import annotations

import contextlib
import datetime
import json
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import templates
from .assemble import plan_timeline
from .cache import ClipCache, default_cache_dir
from .config import BreathingSettings, ExportSettings, MixSettings, VoiceSettings
from .engines.base import SpeechEngine
from .errors import SpeechError
from .export import check_writable, encode, format_for
from .files import atomic_output, write_text_atomic
from .mix import Mastering, TrackMixer, mastered_blocks, plan_mastering
from .segments import Bell, Breathe, Script
from .tones import BreathPattern
from .speech import synthesize_clips
from .timeline import Timeline
from .voices import VoiceProfile, create_engine, resolve_voice, voice_settings

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): stages are 'speech', 'measure', 'encode'."""

OUTPUT_DIR = Path("output")
LOSSY = ("mp3", "ogg", "opus", "m4a")


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
    force: bool = False
    use_cache: bool = True
    cache_dir: Path | None = None
    exercise_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class TrackResult:
    path: Path
    timeline: Timeline
    mastering: Mastering
    phrases: int
    synthesised: int
    """Phrases the engine had to speak (the rest came from the cache)."""
    sidecars: tuple[Path, ...] = ()


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
        # identity_for or busy_cores) is the wrapped engine's own.
        return getattr(self._engine, name)


def prepare_script(request: TrackRequest) -> tuple[templates.Exercise, Script]:
    exercise = templates.find_exercise(request.exercise, request.exercise_dirs)
    script = templates.render_script(exercise, request.values, length=request.length,
                                     group=request.group)
    return exercise, script


def default_output(exercise: templates.Exercise, script: Script, fmt: str,
                   folder: Path = OUTPUT_DIR) -> Path:
    """``output/<exercise>-<length>[-group].<fmt>``: no client details in the name."""
    parts = [exercise.name, str(script.meta.get("length") or "standard")]
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
    path = request.output or default_output(exercise, script, fmt)
    check_writable(path, request.force)
    export = replace(request.export, format=fmt)
    profile = request.voice_profile or resolve_voice(None)
    voice = request.voice or voice_settings(profile)
    request = replace(request, voice=voice)
    sentences = [s.text for s in script.speech]
    sources = _load_sources(script, request.mix)
    for stretch in (s for s in script.segments if isinstance(s, Breathe)):  # fail before speaking
        BreathPattern.from_settings(request.breathing, breaths_per_min=stretch.breaths_per_min,
                                    ratio=stretch.ratio)
    BreathPattern.from_settings(request.breathing)

    own_engine = engine is None
    if own_engine:
        engine = create_engine(profile, fallback=request.fallback_profile)
        _check_pack(engine, sentences, request.fallback_profile)
    counting = _CountingEngine(engine)
    with contextlib.ExitStack() as stack:
        if own_engine:
            stack.callback(counting.close)
        if request.use_cache:
            cache = ClipCache(request.cache_dir or default_cache_dir())
        else:
            cache = stack.enter_context(ClipCache.temporary())
        clips = synthesize_clips(
            sentences, counting, cache, sample_rate=request.mix.sample_rate,
            lexicon=dict(profile.lexicon) or None,
            progress=(lambda d, t: progress("speech", d, t)) if progress else None)
        timeline, mixer = _assemble(script, clips, request, sources)
        mastering = plan_mastering(
            mixer, (lambda d, t: progress("measure", d, t)) if progress else None)
        tags = {**default_tags(script, profile.name), **export.tags}
        _write_audio(mixer, mastering, path, export, tags, timeline, progress)
        sidecars = _write_sidecars(timeline, path, export)
    return TrackResult(path=path, timeline=timeline, mastering=mastering,
                       phrases=len(set(sentences)), synthesised=counting.calls,
                       sidecars=tuple(sidecars))


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
    from . import bells

    sr = mix.sample_rate
    bell, ring, bed = None, 0, None
    if mix.bells or any(isinstance(s, Bell) for s in script.segments):
        bell = bells.load_bell(mix.bell_file, sr) if mix.bell_file else bells.singing_bowl(sr)
        ring = bells.ring_frames(bell, sr)
    if mix.background:
        from .beds import Bed

        bed = Bed.from_setting(mix.background, sr, mix.channels)
    return _Sources(bell, ring, bed)


def _assemble(script: Script, clips, request: TrackRequest,
              sources: _Sources) -> tuple[Timeline, TrackMixer]:
    bell = sources.bell
    timeline = plan_timeline(script, clips, voice=request.voice, breathing=request.breathing,
                             mix=request.mix, bell_frames=0 if bell is None else bell.shape[0],
                             bell_ring_frames=sources.ring_frames)
    mixer = TrackMixer(timeline, mix=request.mix, breathing=request.breathing, bell=bell,
                       bed=sources.bed)
    return timeline, mixer


def _write_audio(mixer: TrackMixer, mastering: Mastering, path: Path, export: ExportSettings,
                 tags: Mapping[str, str], timeline: Timeline, progress: Progress | None) -> None:
    from . import tags as tagging

    sr = timeline.sample_rate
    blocks = mastered_blocks(mixer, mastering, lossy=export.format in LOSSY)
    if progress:
        blocks = _reporting(blocks, timeline.frames, progress)
    with atomic_output(path) as tmp, contextlib.ExitStack() as stack:
        meta = None
        if export.format == "m4a":
            meta = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "meta.txt"
            meta.write_text(tagging.ffmetadata(tags, timeline.chapters, sr), encoding="utf-8")
        encode(blocks, tmp, sample_rate=sr, channels=mixer.channels, settings=export,
               extra_input=meta)
        tagging.write_tags(tmp, export.format, tags, chapters=timeline.chapters, sample_rate=sr,
                           cover=export.cover, duration_frames=timeline.frames)


def _reporting(blocks, total: int, progress: Progress):
    done = 0
    for block in blocks:
        done += block.shape[0]
        progress("encode", min(done, total), total)
        yield block


def _write_sidecars(timeline: Timeline, path: Path, export: ExportSettings) -> list[Path]:
    written: list[Path] = []
    if export.captions:
        from .captions import write_captions

        written += write_captions(timeline, path)
    if export.timeline_json:
        target = path.with_suffix(".timeline.json")
        write_text_atomic(target, json.dumps(timeline.to_json(), indent=2, ensure_ascii=False) + "\n",
                          mode=stat.S_IMODE(path.stat().st_mode))
        written.append(target)
    return written
