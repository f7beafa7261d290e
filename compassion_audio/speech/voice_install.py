"""Install a voice model the user brought (a hibari .onnx, or a Piper .onnx + .onnx.json) into a
voices folder, after checking that it loads and speaks here, and write a profile for it."""
from __future__ import annotations

import datetime
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from compassion_audio.core.audio import Audio
from compassion_audio.core.errors import CompassionAudioError, VoiceError
from compassion_audio.core.files import atomic_output, write_text_atomic
from compassion_audio.core.settings import RATE_WPM_RANGE, VoiceSettings
from compassion_audio.core.text import word_count
from compassion_audio.speech.clip_processing import process_clip
from compassion_audio.speech.voices import (PROFILES_DIR, VoiceProfile, create_engine, load_voice_profile,
                                            user_voices_dir)

SAMPLE_SENTENCES = ("Let your breathing find its own soothing rhythm.",
                    "When you are ready, bring to mind a kind and friendly presence.",
                    "There is nothing you need to get right.")
"""Spoken, one clip each as in a track, to check a new voice and time its pace (rate_wpm
times a track's estimates)."""
SENTENCE_GAP_SECONDS = 0.8
PARAGRAPH_GAP_SECONDS = 1.6
"""A calm pace from the gaps, as the shipped neural voices (their descriptions give the figures)."""
PIPER_LENGTH_SCALE = 1.3
"""Piper's phoneme length for a voice of the user's own: neural-joe's, chosen by measurement."""
HIBARI_SPEED = 0.65


@dataclass(frozen=True)
class Installed:
    """What `voices add` did with one model."""

    key: str
    """The voice's name for --voice."""
    files: tuple[Path, ...]
    profile: Path | None
    """The profile written (None: a voice of hibari's registry, whose profile ships)."""
    engine: str
    rate_wpm: int


def add_voices(files: Sequence[str | Path], folder: Path | None = None, *, language: str | None = None,
               force: bool = False) -> list[Installed]:
    """Install every model among ``files`` (a Piper model's .onnx.json may be listed or lie beside it)."""
    paths = [Path(f).expanduser() for f in files]
    for path in paths:
        if not path.is_file():
            raise VoiceError(f"{path}: no such file")
    models = [p for p in paths if p.suffix.lower() == ".onnx"]
    strays = [p for p in paths if p.suffix.lower() != ".onnx" and
              not (p.name.endswith(".onnx.json") and Path(str(p)[:-5]) in models)]
    if strays or not models:
        raise VoiceError(f"{(strays or paths)[0]}: not a voice model (give a hibari .onnx file, or a "
                         "Piper .onnx file with its .onnx.json)")
    folder = Path(folder).expanduser() if folder else user_voices_dir()
    if folder.resolve() == PROFILES_DIR:
        raise VoiceError(f"{folder} holds the shipped profiles: install into your own voices folder")
    folder.mkdir(parents=True, exist_ok=True)
    return [_add(model, folder, language=language, force=force) for model in models]


def _add(model: Path, folder: Path, *, language: str | None, force: bool) -> Installed:
    config = Path(f"{model}.json")
    if config.is_file():
        return _add_piper(model, config, folder, force=force)
    return _add_hibari(model, folder, language=language, force=force)


def _add_hibari(model: Path, folder: Path, *, language: str | None, force: bool) -> Installed:
    from compassion_audio.speech.engines.hibari_engine import registry, registry_name_of

    known = registry_name_of(model)
    entry = registry().get(known or "", {})
    if known and entry.get("bundled"):
        raise VoiceError(f"{model} is hibari's {known!r} voice, which comes with compassion-audio: "
                         f"use --voice {known}")
    if known:
        # A registry voice: installed under its registry file name, where its profile finds it.
        target = folder / entry["file"]
        profile_path = None if _shipped_profile_for(known) else folder / f"{known}.toml"
        _refuse_existing([target] + ([profile_path] if profile_path else []), force)
        rate = _measured_rate(VoiceProfile(name=known, settings=VoiceSettings(engine="hibari",
                                                                              voice=str(model.resolve())),
                                           speed=HIBARI_SPEED))
        _copy(model, target)
        if profile_path is not None:
            _write_profile(profile_path, {
                "name": f"{known.capitalize()} (hibari, {entry['accent']} {entry['gender']})", "engine": "hibari",
                "voice": known, "language": entry["language"].lower(),
                "licence": f"Apache-2.0 (hibari voice model, distilled from Kokoro-82M {entry['kokoro']}, "
                           "Apache-2.0; check the page the file came from)",
                "speed": HIBARI_SPEED, "rate_wpm": rate}, model)
        return Installed(key=known, files=(target,), profile=profile_path, engine="hibari", rate_wpm=rate)
    language = (language or "en-us").lower().replace("_", "-")
    if language not in ("en-us", "en-gb"):
        raise VoiceError(f"language {language!r}: a hibari voice speaks en-us or en-gb")
    key = _key(model.name.removesuffix(".onnx"))
    target, profile_path = folder / f"{key}.onnx", folder / f"{key}.toml"
    _refuse_existing([target, profile_path], force)
    check = VoiceProfile(name=key, settings=VoiceSettings(engine="hibari", voice=str(model.resolve())),
                         language=language, speed=HIBARI_SPEED)
    rate = _measured_rate(check)
    _copy(model, target)
    _write_profile(profile_path, {
        "name": f"{key} (hibari, your own voice)", "engine": "hibari", "voice": target.name,
        "language": language, "licence": "unknown: check where the file came from", "speed": HIBARI_SPEED,
        "rate_wpm": rate}, model)
    return Installed(key=key, files=(target,), profile=profile_path, engine="hibari", rate_wpm=rate)


def _add_piper(model: Path, config: Path, folder: Path, *, force: bool) -> Installed:
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
        code = settings.get("language", {}).get("code") or settings.get("espeak", {}).get("voice") or "en"
    except (ValueError, AttributeError, OSError) as exc:
        raise VoiceError(f"{config}: not a Piper voice config ({exc})") from exc
    key = _key(model.name.removesuffix(".onnx"))
    target, profile_path = folder / model.name, folder / f"{key}.toml"
    _refuse_existing([target, Path(f"{target}.json"), profile_path], force)
    check = VoiceProfile(name=key, settings=VoiceSettings(engine="piper", voice=str(model.resolve())),
                         length_scale=PIPER_LENGTH_SCALE)
    rate = _measured_rate(check)
    _copy(model, target)
    _copy(config, Path(f"{target}.json"))
    dataset = settings.get("dataset") or "its dataset"
    _write_profile(profile_path, {
        "name": f"{key} (Piper, your own voice)", "engine": "piper", "voice": target.name,
        "language": code.lower().replace("_", "-"),
        "licence": f"GPL-3.0 (piper-tts); model: check the licence of {dataset}",
        "length_scale": PIPER_LENGTH_SCALE, "rate_wpm": rate}, model)
    return Installed(key=key, files=(target, Path(f"{target}.json")), profile=profile_path, engine="piper",
                     rate_wpm=rate)


def _measured_rate(profile: VoiceProfile) -> int:
    """Load the voice, speak SAMPLE_SENTENCES and return its audible pace in words per minute (in
    the range every engine honours): a model that does not load or speak is a VoiceError."""
    engine = create_engine(profile)
    seconds = 0.0
    try:
        for sentence in SAMPLE_SENTENCES:
            audio: Audio = engine.synthesize(sentence)
            clip = process_clip(audio, audio.sample_rate, sentence)
            seconds += (clip.samples.shape[0] - clip.lead_frames - clip.tail_frames) / audio.sample_rate
    except CompassionAudioError:
        raise
    except Exception as exc:  # the runtime's own errors: the file is no usable voice
        raise VoiceError(f"{profile.settings.voice} does not speak here: {exc}") from exc
    finally:
        engine.close()
    low, high = RATE_WPM_RANGE
    words = sum(word_count(s) for s in SAMPLE_SENTENCES)
    return int(min(max(round(words / seconds * 60), low), high))


def _shipped_profile_for(name: str) -> bool:
    """Whether a shipped profile speaks hibari's registry voice ``name`` (emma, fable, fenrir do)."""
    return any(p.settings.engine == "hibari" and p.settings.voice == name
               for p in map(load_voice_profile, sorted(PROFILES_DIR.glob("*.toml"))))


def _key(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "voice"


def _refuse_existing(targets: list[Path], force: bool) -> None:
    for target in targets:
        if target.exists() and not force:
            raise VoiceError(f"{target} already exists: add --force to replace it")


def _copy(source: Path, target: Path) -> None:
    with atomic_output(target) as tmp:
        shutil.copyfile(source, tmp)


def _write_profile(path: Path, values: dict, source: Path) -> None:
    """A profile with the calm-pace gaps and a note of where the model came from; checked by loading."""
    values = {**values, "sentence_gap_seconds": SENTENCE_GAP_SECONDS,
              "paragraph_gap_seconds": PARAGRAPH_GAP_SECONDS,
              "description": (f"Installed by `compassion-audio voices add` from {source} on "
                              f"{datetime.date.today().isoformat()}; speaks {values['rate_wpm']} wpm of "
                              "audible speech here. Check the model's licence before sharing tracks.")}
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
    write_text_atomic(path, "\n".join(lines) + "\n")
    load_voice_profile(path)
