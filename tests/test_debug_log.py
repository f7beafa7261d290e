"""--debug shows the library's decisions on stderr, without phrase text or profile values."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.core import tools

pytestmark = pytest.mark.engine


def test_debug_names_the_tools_and_the_mastering_decision_but_no_phrase(tmp_path):
    template = tmp_path / "hello.txt.j2"
    template.write_text('+++\ntitle = "Hello"\n[params]\nname = { type = "str", default = "" }\n+++\n'
                        "Hello {{ name }}, welcome.\n", encoding="utf-8")
    tools.ffmpeg_exe.cache_clear()  # found once per process: make this run find it
    out = tmp_path / "hello.wav"
    result = CliRunner().invoke(cli, ["--debug", "render", str(template), "-s", "name=Zebedee",
                                      "--voice", "calm-female", "--no-bells", "-o", str(out),
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    debug = [line for line in result.stderr.splitlines() if line.startswith("debug: ")]
    assert any("ffmpeg: " in line for line in debug), debug
    assert any("mastering: predicted gain" in line and "LUFS" in line for line in debug), debug
    assert "Zebedee" not in result.stderr


def test_without_debug_no_debug_lines_and_no_handler_left(tmp_path):
    import logging

    before = list(logging.getLogger("compassion_audio").handlers)
    result = CliRunner().invoke(cli, ["--debug", "list"])
    assert result.exit_code == 0
    assert logging.getLogger("compassion_audio").handlers == before
    result = CliRunner().invoke(cli, ["list"])
    assert "debug:" not in result.stderr

