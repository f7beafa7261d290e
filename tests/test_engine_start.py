"""A render starts its speech engine only when a phrase is not in the cache; a stale voice record stops it safely."""
from __future__ import annotations

import json

import numpy as np
import pytest

from compassion_audio.core.errors import SpeechError
from compassion_audio.core.settings import MixSettings
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.speech.voice_identity import MEMO_FOLDER
from compassion_audio.speech.voices import resolve_voice

from .conftest import decode, sounding_runs

SCRIPT = "Let your breath slow a little.\n[pause 1s]\nNotice where you are sitting.\n"
MIX = MixSettings(bells=False, loudness_lufs=-16.0)


def _render(tmp_path, text: str, name: str, **kw):
    script = tmp_path / "walk.txt"
    script.write_text(text, encoding="utf-8")
    return render_track(TrackRequest(exercise=str(script), output=tmp_path / name, mix=MIX,
                                     voice_profile=resolve_voice("calm-female"),
                                     cache_dir=tmp_path / "cache", **kw))


def test_a_warm_render_starts_no_engine_and_makes_the_same_track(tmp_path, started_workers):
    first = _render(tmp_path, SCRIPT, "a.wav")
    assert len(started_workers) == 1 and first.synthesised == 2
    second = _render(tmp_path, SCRIPT, "b.wav")
    assert len(started_workers) == 1, "a render with every phrase cached started a worker"
    assert second.synthesised == 0
    a, b = decode(tmp_path / "a.wav"), decode(tmp_path / "b.wav")
    assert a.shape == b.shape and np.array_equal(a, b)
    assert len(sounding_runs(b, 44100)) == 2


def test_a_new_phrase_starts_the_engine_once(tmp_path, started_workers):
    _render(tmp_path, SCRIPT, "a.wav")
    more = SCRIPT + "[pause 1s]\nRest here as long as you like.\nAnd one more kind word.\n"
    result = _render(tmp_path, more, "b.wav")
    assert len(started_workers) == 2 and result.synthesised == 2
    assert len(sounding_runs(decode(tmp_path / "b.wav"), 44100)) == 4


def test_without_the_cache_the_engine_always_starts(tmp_path, started_workers):
    _render(tmp_path, SCRIPT, "a.wav")
    _render(tmp_path, SCRIPT, "b.wav", use_cache=False)
    assert len(started_workers) == 2


def test_a_stale_voice_record_stops_before_storing_and_is_renewed(tmp_path, started_workers):
    _render(tmp_path, SCRIPT, "a.wav")
    (memo,) = (tmp_path / "cache" / MEMO_FOLDER).glob("*.json")
    entry = json.loads(memo.read_text(encoding="utf-8"))
    real = entry["identity"]
    entry["identity"] = {**real, "espeak_version": "0.0-not-this-one"}
    memo.write_text(json.dumps(entry), encoding="utf-8")
    entries_before = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    with pytest.raises(SpeechError, match="run the command again"):
        _render(tmp_path, SCRIPT + "A phrase nobody has spoken yet.\n", "b.wav")
    assert not (tmp_path / "b.wav").exists()
    assert json.loads(memo.read_text(encoding="utf-8"))["identity"] == real
    after = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert [n for n in after if n not in entries_before] == [], "a clip was stored under the stale identity"
    result = _render(tmp_path, SCRIPT + "A phrase nobody has spoken yet.\n", "b.wav")
    assert result.synthesised == 1
