"""voices try: the default sample file is replaced each time; a file named with -o only with --force."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli

pytestmark = pytest.mark.engine


def test_voices_try_keeps_a_named_file_unless_forced(tmp_path):
    out = tmp_path / "mine.mp3"
    out.write_bytes(b"my own file")
    runner = CliRunner()
    result = runner.invoke(cli, ["voices", "try", "calm-female", "Hello.", "-o", str(out)])
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert out.read_bytes() == b"my own file"
    result = runner.invoke(cli, ["voices", "try", "calm-female", "Hello.", "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != b"my own file"
