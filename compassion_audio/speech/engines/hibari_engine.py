"""hibari neural voices (the default): deterministic synthesis from the bundled voice or a local .onnx file.

hibari-tts (Apache-2.0; numpy + onnxruntime, no torch) ships one voice, "heart" (US female,
7.9 MB int8 ONNX), and speaks at 24 kHz. Its other voices (emma, fable, fenrir, kore) are not in
the wheel: the library would download them at first use, which this adapter never allows - they
are used only from a file the user brought (``compassion-audio voices add``).

A profile's ``voice`` is a registry name (heart, emma, ...), looked up in the voice folders and in
hibari's own cache ($HIBARI_HOME, else ~/.cache/hibari) under its registry file name and checked
against the registry's sha256; or the path of a hibari-format .onnx file (relative to the profile).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from compassion_audio.core.audio import Audio
from compassion_audio.core.errors import EngineUnavailable, SpeechError, VoiceError
from compassion_audio.core.input_files import file_sha256
from compassion_audio.speech.engines.base import EngineVoice

if TYPE_CHECKING:  # pragma: no cover
    from compassion_audio.speech.voices import VoiceProfile

INSTALL_HINT = "pip install hibari-tts (it comes with compassion-audio; reinstall it)"
DEFAULT_VOICE = "heart"
DEFAULT_SPEED = 0.65
"""hibari's speed input (durations are divided by it). Measured on 12 meditation sentences
(tests/voice_measures.py): 148 wpm of audible speech at 0.65 (239 at 1.0), pitch variation and
pocketsphinx WER no worse than at 1.0. The pace is a staircase in the speed, so a profile states
the exact speed it was measured at."""
SPEED_RANGE = (0.5, 2.0)
"""hibari's documented range: speed 0 makes onnxruntime raise, a negative one gives noise."""
SEED = 0
"""Fixes the noise component: the same phrase gives bit-identical samples, in and across processes."""
SAMPLE_RATE = 24000
_MODEL_INPUTS = {"ids", "speed"}
_MODEL_OUTPUTS = {"lh", "theta", "ln", "lr", "phi", "f0"}
_NOT_SPOKEN = frozenset(';:,.!?—…"“”()[] ')
"""What hibari's G2P emits for text with no words. Such a phrase still yields ~0.45 s of breathy
noise (peak about -35 dBFS, loud enough to pass as speech), so it is refused instead."""


def require_hibari():
    """The hibari package with a working onnxruntime, or EngineUnavailable naming what failed."""
    try:
        importlib.import_module("onnxruntime")
        return importlib.import_module("hibari")
    except Exception as exc:  # ImportError; OSError: a native library that does not load here;
        # anything else a broken install raises while importing (an ABI mismatch, a bad file)
        missing = getattr(exc, "name", None) or _failing_module(exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineUnavailable(f"the hibari neural voice cannot load ({missing}: {first}); "
                                f"{INSTALL_HINT}") from exc


def _failing_module(exc: BaseException) -> str:
    """The runtime package (onnxruntime or hibari) whose import raised ``exc``."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    for name in reversed(frames):
        if name.split(".")[0] in ("onnxruntime", "hibari"):
            return name.split(".")[0]
    return "onnxruntime"


def registry() -> dict:
    """hibari's voice registry: name -> {file, sha256, language, accent, gender, british, bundled}."""
    require_hibari()
    from hibari.voices import VOICES

    return VOICES


def registry_name_of(path: Path) -> str | None:
    """The registry voice a model file is (by sha256), or None for a voice of the user's own."""
    digest = file_sha256(path)
    return next((name for name, entry in registry().items() if entry["sha256"] == digest), None)


def resolve_model(profile: "VoiceProfile", folders: Iterable[Path] = ()) -> tuple[Path, str]:
    """(model file, registry voice whose G2P it uses: US or British) for a profile; VoiceError if unusable.

    ``folders``: where a registry voice's file may be, besides hibari's own cache.
    """
    voices = registry()
    ref = (profile.settings.voice or "").strip() or DEFAULT_VOICE
    if ref in voices:
        return registered_model(ref, folders), ref
    path = Path(ref).expanduser()
    if not path.is_absolute() and profile.source is not None:
        path = profile.source.parent / path
    if path.suffix != ".onnx":
        raise VoiceError(f"unknown hibari voice {ref!r} in voice {profile.key!r}: name one of "
                         f"{', '.join(voices)}, or an .onnx file")
    if not path.is_file():
        raise VoiceError(f"hibari model not found: {path} (voice {profile.key!r})")
    known = registry_name_of(path)
    if known is not None:
        return path, known
    british = (profile.language or "").lower().replace("_", "-").startswith("en-gb")
    return path, next(n for n, e in voices.items() if bool(e.get("british")) == british)


def registered_model(name: str, folders: Iterable[Path] = ()) -> Path:
    """The file of registry voice ``name``: inside hibari-tts, or a checked copy the user brought."""
    from hibari.voices import cache_dir, voice_path

    entry = registry()[name]
    if entry.get("bundled"):
        return Path(voice_path(name, download_missing=False))
    places = [Path(f) / entry["file"] for f in folders] + [Path(cache_dir()) / entry["file"]]
    for place in places:
        if place.is_file():
            if file_sha256(place) != entry["sha256"]:
                raise VoiceError(f"{place} is not hibari's {name!r} voice (its sha256 is "
                                 f"{file_sha256(place)[:12]}..., the registry's {entry['sha256'][:12]}...): "
                                 "remove it, or bring the right file")
            return place
    raise VoiceError(f"hibari voice {name!r} is not installed: it is not inside hibari-tts and is never "
                     f"downloaded here; bring {entry['file']} ({entry['bytes'] / 1e6:.1f} MB, sha256 "
                     f"{entry['sha256'][:12]}...) and run: compassion-audio voices add {entry['file']}")


def profile_speed(profile: "VoiceProfile") -> float:
    speed = DEFAULT_SPEED if profile.speed is None else float(profile.speed)
    if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        raise VoiceError(f"hibari speed {speed:g} is outside {SPEED_RANGE[0]:g}-{SPEED_RANGE[1]:g} "
                         f"(voice {profile.key!r})")
    return speed


def load_model(path: Path, voice_name: str):
    """A Hibari instance for ``path`` on one thread; VoiceError if it is not a hibari model."""
    from hibari import Hibari

    try:
        # One inference thread: measured faster than two on 2 cores (RTF 0.0068 vs 0.0102), as the
        # second spins and takes the CPU from hibari's own signal processing and from the encoder.
        tts = Hibari(voice=voice_name, model=str(path), threads=1)
    except Exception as exc:  # onnxruntime raises its own types (NoSuchFile, InvalidProtobuf, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VoiceError(f"hibari cannot load {path}: {first}") from exc
    inputs = {i.name for i in tts.sess.get_inputs()}
    outputs = {o.name for o in tts.sess.get_outputs()}
    if inputs != _MODEL_INPUTS or not _MODEL_OUTPUTS <= outputs:
        raise VoiceError(f"{path} is not a hibari voice (model inputs {', '.join(sorted(inputs))}; "
                         "a Piper voice comes with an .onnx.json beside it)")
    return tts


class HibariEngine:
    """SpeechEngine over hibari-tts. Loads on first use (~0.3 s model, +0.3 s G2P; ~200-250 MB RSS)."""

    name = "hibari"

    def __init__(self, profile: "VoiceProfile", folders: Iterable[Path] = ()) -> None:
        require_hibari()
        self._model, self._voice_name = resolve_model(profile, folders)
        self._speed = profile_speed(profile)
        self._volume = float(profile.settings.volume)
        self._sha256 = file_sha256(self._model)
        self._tts = None
        self._lock = threading.Lock()

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def identity(self) -> dict:
        import onnxruntime
        from hibari import dsp

        return {
            "engine": "hibari",
            "hibari_version": importlib.metadata.version("hibari-tts"),
            "model_sha256": self._sha256,
            "g2p": "gb" if registry()[self._voice_name].get("british") else "us",
            "speed": self._speed,
            "seed": SEED,
            "volume": self._volume,
            # The output's bits depend on these too: scipy's and numpy's FFTs differ by ~1e-7
            # (hibari uses scipy when importable), the noise comes from numpy's generator, and
            # onnxruntime's kernels may change between releases.
            "fft_backend": dsp.FFT_BACKEND,
            "onnxruntime_version": onnxruntime.__version__,
            "numpy_version": np.__version__,
            "scipy_version": _version("scipy"),
        }

    def _loaded(self):
        with self._lock:
            if self._tts is None:
                self._tts = load_model(self._model, self._voice_name)
            return self._tts

    def synthesize(self, text: str) -> Audio:
        tts = self._loaded()
        chunks = tts.phonemize(text.strip())
        if not any(set(ps) - _NOT_SPOKEN for ps in chunks):
            raise SpeechError("the hibari voice has no words to say in the phrase (only punctuation or symbols)")
        # Each chunk (hibari splits a phrase at sentence ends, and past 400 phonemes at commas)
        # gets a fresh seed, so a sentence sounds the same wherever it stands; hibari's own
        # call threads one generator through the chunks. Chunks are joined as hibari joins them:
        # each carries ~0.4 s of lead and ~0.5-0.8 s of tail silence of its own.
        parts = [tts.from_phonemes(ps, speed=self._speed, seed=SEED) for ps in chunks]
        samples = np.concatenate(parts).astype(np.float32, copy=False)
        if samples.size == 0:
            raise SpeechError("the hibari voice produced no audio")
        if self._volume != 1.0:
            samples = samples * np.float32(self._volume)
        return Audio(samples, SAMPLE_RATE)

    def voices(self) -> list[EngineVoice]:
        entry = registry()[self._voice_name]
        own = self._sha256 == entry["sha256"]  # else a voice of the user's own, on this voice's G2P
        return [EngineVoice(id=str(self._model), name=self._voice_name if own else self._model.stem,
                            languages=(entry["language"].lower(),), gender=entry["gender"] if own else None)]

    def close(self) -> None:
        with self._lock:
            self._tts = None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
