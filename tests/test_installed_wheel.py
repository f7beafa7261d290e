"""From an installed wheel in a fresh venv (not the editable checkout): the shipped profiles are
there as package data, the default voice is hibari's heart, and a render speaks with it.

The wheel is built from a copy of the sources and installed with --no-deps; the fresh venv sees the
project venv's site-packages (numpy, onnxruntime, hibari-tts, ...) through a plain path line in a
.pth file, which adds the folder without running its .pth files - so the editable install's finder
stays inactive and `import compassion_audio` can only find the wheel's copy.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import decode
from .test_voice_renders import PLAIN, PLAIN_PAUSES, gaps, voice_runs

pytestmark = pytest.mark.engine  # ~12 s on 2 cores (wheel build 7 s): not marked slow

ROOT = Path(__file__).resolve().parent.parent


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """(venv python, environment) with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "compassion_audio", source / "compassion_audio",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    run(*pip, "wheel", "--no-deps", "-w", work / "dist", source)
    wheel = next((work / "dist").glob("compassion_audio-*.whl"))
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(*pip, "--python", python, "install", "--no-deps", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COMPASSION_AUDIO_VOICES")}
    env.update(HIBARI_HOME=str(work / "hibari-home"), XDG_DATA_HOME=str(work / "data"),
               COMPASSION_AUDIO_CACHE=str(work / "cache"))
    return python, env, work


def test_the_wheel_is_what_runs(fresh):
    python, env, work = fresh
    code = ("import compassion_audio, compassion_audio.speech.voices as v; "
            "print(compassion_audio.__file__); print(v.PROFILES_DIR); print(v.resolve_voice(None).source)")
    files = [Path(line) for line in run(python, "-c", code, env=env, cwd=work).stdout.splitlines()]
    venv = work / "venv"
    assert all(venv in path.parents for path in files), files
    shipped = sorted(p.name for p in (ROOT / "compassion_audio" / "speech" / "profiles").glob("*.toml"))
    assert sorted(p.name for p in files[1].glob("*.toml")) == shipped


def test_the_default_voice_is_heart_in_the_wheel(fresh):
    python, env, work = fresh
    out = run(work / "venv" / "bin" / "compassion-audio", "voices", env=env, cwd=work).stdout
    first = out.splitlines()[0]
    assert first.startswith("ok  heart ") and "hibari" in first and first.endswith("(default)"), out


def test_a_render_from_the_wheel_speaks_with_heart(fresh):
    python, env, work = fresh
    script = work / "plain.txt.j2"
    script.write_text(PLAIN, encoding="utf-8")
    out = work / "plain.wav"
    proc = run(work / "venv" / "bin" / "compassion-audio", "render", script, "-o", out, "--no-bells", "-q",
               env=env, cwd=work)
    assert proc.stderr == "" and proc.stdout.strip() == str(out)  # no fallback, no warning
    runs = voice_runs(decode(out))
    assert len(runs) == 3 and gaps(runs) == pytest.approx(PLAIN_PAUSES, abs=0.05), runs
