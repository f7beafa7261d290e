"""Piper neural voices (optional extra): deterministic synthesis from a local .onnx model."""
from __future__ import annotations

import importlib
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from compassion_audio.core.audio import Audio
from compassion_audio.core.errors import EngineUnavailable, SpeechError, VoiceError
from compassion_audio.speech.engines.base import EngineVoice
from compassion_audio.core.input_files import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from compassion_audio.speech.voices import VoiceProfile

INSTALL_HINT = "pip install 'compassion-audio[neural]'"


def require_piper():
    """The piper package, or EngineUnavailable naming the install command."""
    try:
        return importlib.import_module("piper")
    except ImportError as exc:
        raise EngineUnavailable(f"the Piper neural voice needs piper-tts: {INSTALL_HINT}") from exc


def model_path(profile: "VoiceProfile") -> Path:
    """The .onnx file a profile names: a path (relative to the profile file) or `package:NAME`."""
    ref = (profile.settings.voice or "").strip()
    if ref.startswith("package:"):
        path = _package_model(ref[len("package:"):].strip())
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and profile.source is not None:
            path = profile.source.parent / path
    if not path.is_file():
        raise VoiceError(f"Piper model not found: {path}")
    if not Path(f"{path}.json").is_file():
        raise VoiceError(f"Piper model config not found: {path}.json (it ships next to the .onnx file)")
    return path


def _package_model(package: str) -> Path:
    module_name = package.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineUnavailable(f"voice package {package!r} is not installed: {INSTALL_HINT} "
                                f"(or pip install {package})") from exc
    if hasattr(module, "model_path"):
        return Path(module.model_path())
    # Packages without a model_path() helper: the one .onnx file they ship.
    models = sorted(Path(module.__file__).parent.rglob("*.onnx"))
    if len(models) != 1:
        raise VoiceError(f"voice package {package!r} ships {len(models)} .onnx models; name one by path")
    return models[0]


class PiperEngine:
    """SpeechEngine over piper-tts. The model loads on first use (~0.5 s, ~300 MB)."""

    name = "piper"

    def __init__(self, profile: "VoiceProfile") -> None:
        require_piper()
        self._model = model_path(profile)
        self._config = json.loads(Path(f"{self._model}.json").read_text(encoding="utf-8"))
        self._length_scale = float(profile.length_scale)
        self._volume = float(profile.settings.volume)
        self._voice = None

    @property
    def sample_rate(self) -> int:
        return int(self._config["audio"]["sample_rate"])

    def identity(self) -> dict:
        return {
            "engine": "piper",
            "piper_version": importlib.metadata.version("piper-tts"),
            "model_sha256": file_sha256(self._model),
            "config_sha256": file_sha256(Path(f"{self._model}.json")),
            "length_scale": self._length_scale,
            "noise_scale": 0.0,
            "noise_w_scale": 0.0,
            "volume": self._volume,
        }

    def _loaded(self):
        if self._voice is None:
            import onnxruntime
            from piper import PiperConfig, PiperVoice

            # As PiperVoice.load does, but with idle inference threads sleeping rather than
            # spinning: while the track is mixed and encoded beside synthesis, spinning
            # threads took CPU from that work (measured: synthesis beside an MP3 encode
            # 20.5 s spinning, 19.4 s not; alone both 15.9 s).
            options = onnxruntime.SessionOptions()
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = onnxruntime.InferenceSession(str(self._model), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
            self._voice = PiperVoice(config=PiperConfig.from_dict(self._config), session=session)
        return self._voice

    def synthesize(self, text: str) -> Audio:
        from piper import SynthesisConfig

        # Zero noise makes output repeatable (cacheable, testable); no normalisation keeps
        # headroom - the speech stage level-matches every clip anyway.
        config = SynthesisConfig(length_scale=self._length_scale, noise_scale=0.0, noise_w_scale=0.0,
                                 normalize_audio=False, volume=self._volume)
        chunks = [c.audio_float_array for c in self._loaded().synthesize(text, config)]
        if not chunks:
            raise SpeechError("Piper produced no audio")
        samples = np.concatenate(chunks).astype(np.float32, copy=False)
        return Audio(samples, self.sample_rate)

    def voices(self) -> list[EngineVoice]:
        language = self._config.get("language", {}).get("code") or self._config.get("espeak", {}).get("voice", "")
        return [EngineVoice(id=str(self._model), name=self._model.name.removesuffix(".onnx"),
                            languages=(language,) if language else ())]

    def close(self) -> None:
        self._voice = None
