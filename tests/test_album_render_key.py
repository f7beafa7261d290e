"""The render key: stored in every format's tags, changed by what changes a track, and `render`'s "up to date"."""
from __future__ import annotations

import time
import wave
from dataclasses import replace
from pathlib import Path

import mutagen
import numpy as np
import pytest
from click.testing import CliRunner

from compassion_audio.speech import voice_identity as identity
from compassion_audio.album.keys import resolve, up_to_date
from compassion_audio.cli.app import cli
from compassion_audio.output.tags import read_render_key, write_tags
from compassion_audio.render import TrackRequest
from compassion_audio.core.settings import ExportSettings
from compassion_audio.speech.voices import resolve_voice

from .test_tags import ENCODERS, encode, png_bytes

KEY = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """One second of a quiet 440 Hz tone as 16-bit WAV, for the encoders."""
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    samples = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(44100) / 44100) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(samples.tobytes())
    return path


@pytest.mark.parametrize("fmt", sorted(ENCODERS))
def test_the_key_is_kept_in_every_format(source, tmp_path, fmt):
    path = encode(source, tmp_path, fmt)
    assert read_render_key(path) is None
    write_tags(path, fmt, {"title": "A track", "render_key": KEY})
    assert read_render_key(path) == KEY
    # Under its own name in the format's custom field, beside the ordinary tags.
    tags = mutagen.File(path).tags
    names = {"mp3": "TXXX:compassion-audio-render-key", "wav": "TXXX:compassion-audio-render-key",
             "m4a": "----:com.apple.iTunes:compassion-audio-render-key"}
    assert names.get(fmt, "COMPASSION_AUDIO_RENDER_KEY") in tags


@pytest.fixture
def template(tmp_path) -> Path:
    path = tmp_path / "short.txt.j2"
    path.write_text('+++\ntitle = "Short"\n[params]\nname = { type = "str", default = "" }\n+++\n'
                    "Hello {{ name }}.\n[pause 1s]\nBreathe out slowly.\n", encoding="utf-8")
    return path


def _request(template: Path, **changes) -> TrackRequest:
    request = TrackRequest(exercise=str(template), values={"name": "Ana"}, voice_profile=resolve_voice("calm-female"),
                           output=template.with_suffix(".mp3"))
    return replace(request, **changes)


def test_what_changes_the_track_changes_the_key(template, tmp_path):
    base = resolve(_request(template)).key
    assert resolve(_request(template)).key == base
    assert resolve(_request(template, output=tmp_path / "elsewhere.mp3")).key == base  # where is not what
    assert resolve(_request(template, values={"name": "Ben"})).key != base
    slower = resolve_voice("calm-female").with_settings(rate_wpm=110)
    assert resolve(_request(template, voice_profile=slower)).key != base
    assert resolve(_request(template, export=ExportSettings(tags={"album": "Week 1"}))).key != base
    cover = tmp_path / "cover.png"
    cover.write_bytes(png_bytes())
    with_cover = resolve(_request(template, export=ExportSettings(cover=cover))).key
    cover.write_bytes(png_bytes() + b"\x00")  # the same path, other bytes
    assert resolve(_request(template, export=ExportSettings(cover=cover))).key not in (base, with_cover)
    template.write_text(template.read_text(encoding="utf-8").replace("slowly", "gently"), encoding="utf-8")
    assert resolve(_request(template)).key != base


def test_the_voice_identity_is_remembered_not_asked_again(template, monkeypatch):
    first = resolve(_request(template))
    monkeypatch.setattr(identity, "create_engine", lambda *a, **k: pytest.fail("started an engine"))
    assert resolve(_request(template)).identity == first.identity
    assert first.identity["voice"]["engine"] == "pyttsx3" and first.identity["voice"]["rate_wpm"] == 125


@pytest.mark.engine
def test_render_says_up_to_date_and_leaves_the_file(template, tmp_path):
    out = tmp_path / "out.mp3"
    args = ["render", str(template), "-s", "name=Ana", "--voice", "calm-female", "-o", str(out)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and first.stdout.startswith(f"Wrote {out}")
    stamp = out.stat().st_mtime_ns
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and again.stdout == f"up to date: {out}\n"
    assert out.stat().st_mtime_ns == stamp
    started = time.perf_counter()
    assert up_to_date(resolve(_request(template, output=out)))
    assert time.perf_counter() - started < 0.5
    changed = CliRunner().invoke(cli, args + ["--rate", "110"])
    assert changed.exit_code == 1 and "already exists" in changed.output
    forced = CliRunner().invoke(cli, args + ["--force"])
    assert forced.exit_code == 0 and forced.stdout.startswith(f"Wrote {out}")
    assert out.stat().st_mtime_ns != stamp
    captions = CliRunner().invoke(cli, args + ["--captions"])
    assert captions.exit_code == 1 and "already exists" in captions.output  # another request: another key
