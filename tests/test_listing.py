"""`list` remembers each exercise's summary per template file: same answer, recomputed when anything it depends on changes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from compassion_audio.cli import listing
from compassion_audio.cli.app import cli

TEMPLATE = """+++
title = "My walk"
lengths = ["short", "standard"]
+++
{% if length == "short" %}Breathe gently. [pause 20s]{% else %}Breathe gently. [pause 2m]{% endif %}
Notice the ground under your feet. [pause 10s]
"""


def _list_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["list", "--json", *args])
    assert result.exit_code == 0, result.output
    return {e["name"]: e for e in json.loads(result.output)["exercises"]}


def _entries(tmp_path):
    return sorted((tmp_path / "cache" / "listing").glob("*.json"))


def test_second_list_reads_the_stored_summaries_and_says_the_same(tmp_path, monkeypatch):
    first = _list_json()
    stored = _entries(tmp_path)
    assert len(stored) == len(first) >= 12
    # A hit must not summarise anything: make summarising impossible and list again.
    monkeypatch.setattr(listing, "_summarise", lambda path: (_ for _ in ()).throw(AssertionError(path)))
    assert _list_json() == first
    text = CliRunner().invoke(cli, ["list"])
    assert text.exit_code == 0 and "compassionate-self" in text.output


def test_an_edited_template_is_summarised_afresh(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my-walk.txt.j2").write_text(TEMPLATE, encoding="utf-8")
    before = _list_json("--exercises", str(mine))["my-walk"]["estimated_seconds"]
    (mine / "my-walk.txt.j2").write_text(TEMPLATE.replace("[pause 2m]", "[pause 4m]"), encoding="utf-8")
    after = _list_json("--exercises", str(mine))["my-walk"]["estimated_seconds"]
    assert after["short"] == before["short"]
    assert after["standard"] - before["standard"] == 120.0


def test_another_default_voice_or_changed_code_is_another_key(tmp_path, monkeypatch):
    path = tmp_path / "x.txt.j2"
    path.write_text(TEMPLATE, encoding="utf-8")
    data = path.read_bytes()
    key = listing._key(path, data, "voice A")
    assert listing._key(path, data, "voice B") != key
    assert listing._key(path, data + b" ", "voice A") != key
    monkeypatch.setattr(listing, "_code_fingerprint", lambda: "other code")
    assert listing._key(path, data, "voice A") != key


def test_a_damaged_entry_is_recomputed_and_a_broken_template_never_stored(tmp_path):
    first = _list_json()
    for entry in _entries(tmp_path):
        entry.write_text("{not json", encoding="utf-8")
    assert _list_json() == first
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "broken.txt.j2").write_text("Hello {% if %}", encoding="utf-8")
    count = len(_entries(tmp_path))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["list", "--exercises", str(mine)])
        assert result.exit_code == 1 and "broken.txt.j2" in result.output
    assert len(_entries(tmp_path)) == count


def test_a_cache_that_cannot_be_written_still_lists(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("COMPASSION_AUDIO_CACHE", str(blocker / "cache"))
    assert "compassionate-self" in _list_json()
