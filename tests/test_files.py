"""The one atomic writer: a file appears whole or not at all, and the old one stays until then."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from compassion_audio.core import files


def full_disk(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("write", [
    lambda path: files.write_bytes_atomic(path, b"new" * 1000),
    lambda path: files.write_text_atomic(path, "new\n" * 1000, mode=0o644),
], ids=["bytes", "text"])
def test_a_write_that_fails_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, write):
    target = tmp_path / "notes.txt"
    target.write_bytes(b"old")
    # The data is in the temp file; the disk fills up as it is flushed.
    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write(target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_a_writer_that_fails_half_way_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "clip.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half way"):
        with files.atomic_open(target) as fh:
            fh.write(b"the first half")
            raise RuntimeError("stopped half way")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["clip.npy"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_finished_write_replaces_the_file_with_its_mode(tmp_path, durable):
    target = tmp_path / "captions.vtt"
    target.write_bytes(b"old")
    files.write_bytes_atomic(target, b"WEBVTT\r\n\nnew\n", mode=0o640, durable=durable)
    assert target.read_bytes() == b"WEBVTT\r\n\nnew\n"  # bytes as given: no newline translation
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    files.write_text_atomic(target, "a\nb\n")
    assert target.read_bytes() == b"a\nb\n"
    assert os.listdir(tmp_path) == ["captions.vtt"]


def test_the_temp_name_is_hidden_beside_the_target(tmp_path):
    with files.atomic_output(tmp_path / "001.wav") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".001.") and tmp.name.endswith(".partial.wav")
        # A pack looks its recordings up as 001.*: a take being written is not one.
        assert list(tmp_path.glob("001.*")) == []
        assert stat.S_IMODE(tmp.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [tmp_path / "001.wav"]
