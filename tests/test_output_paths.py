"""Output paths and the files a render reads: refused before anything is spoken when they cannot
work; a full disk, a folder that refuses files, a sidecar that fails and two renders racing to one
output leave a consistent set of files - all old or all new - and nothing partial."""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from compassion_audio.core.errors import OutputError, ParameterError
from compassion_audio.core.limits import MAX_IMAGE_BYTES, MAX_SOUND_FILE_BYTES
from compassion_audio.core.settings import ExportSettings, MixSettings
from compassion_audio.core.tools import ffmpeg_exe
from compassion_audio.output import captions
from compassion_audio.render import TrackRequest, render_track

from .conftest import decode

SCRIPT = "Hello there.\n[pause 1s]\nGoodbye.\n"
FAKE_FFMPEG = Path(__file__).parent / "fake_ffmpeg" / "ffmpeg"


def _script(tmp_path: Path, text: str = SCRIPT) -> Path:
    path = tmp_path / "mine.txt.j2"
    path.write_text(text, encoding="utf-8")
    return path


def _request(tmp_path: Path, output: Path, **kw) -> TrackRequest:
    mix = kw.pop("mix", MixSettings(bells=False))
    return TrackRequest(exercise=str(_script(tmp_path)), output=output, mix=mix, **kw)


def _state(folder: Path) -> dict[str, object]:
    """Every entry under ``folder`` without opening anything but regular files."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(folder))
        if path.is_symlink():
            seen[name] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[name] = "dir"
        elif path.is_file():
            seen[name] = (path.read_bytes(), info.st_mtime_ns)
        else:
            seen[name] = ("other", info.st_mode)
    return seen


LONG = "a" * 250


@pytest.mark.parametrize("case", ["folder", "fifo", "dangling-link", "foreign-link", "device",
                                  "too-long", "sidecar-folder", "sidecar-fifo"])
def test_an_unusable_output_path_is_refused_before_anything_is_spoken(case, tmp_path, fake_engine):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "x.mp3"
    export = ExportSettings()
    expected = None
    if case == "folder":
        target.mkdir()
        expected = f"{target} is a folder: give a file name"
    elif case == "fifo":
        os.mkfifo(target)
        expected = f"{target} is not a regular file: choose another -o"
    elif case == "dangling-link":
        target.symlink_to(out / "missing" / "y.mp3")
        expected = f"{target} is a symbolic link: give the path of the file itself (links are neither followed nor replaced)"
    elif case == "foreign-link":
        (tmp_path / "elsewhere.mp3").write_bytes(b"someone else's file")
        target.symlink_to(tmp_path / "elsewhere.mp3")
        expected = f"{target} is a symbolic link: give the path of the file itself (links are neither followed nor replaced)"
    elif case == "device":
        target = Path("/dev/null")
        expected = "/dev/null is not a regular file: choose another -o"
    elif case == "too-long":
        target = out / f"{LONG}.mp3"
        expected = "the output file name is too long: 254 bytes, and at most 237 fit in this folder (choose a shorter -o)"
    elif case == "sidecar-folder":
        (out / "x.vtt").mkdir()
        export = ExportSettings(captions=True)
        expected = f"{out / 'x.vtt'} is a folder: give a file name"
    elif case == "sidecar-fifo":
        os.mkfifo(out / "x.timeline.json")
        export = ExportSettings(timeline_json=True)
        expected = f"{out / 'x.timeline.json'} is not a regular file: choose another name"
    request = _request(tmp_path, target, export=export, force=True)
    before = _state(tmp_path)
    with pytest.raises(OutputError) as caught:
        render_track(request, engine=fake_engine)
    assert str(caught.value) == expected
    assert fake_engine.calls == []  # refused before any synthesis
    assert _state(tmp_path) == before


@contextlib.contextmanager
def _immutable(folder: Path):
    """A folder even root cannot add files to (chmod does not stop root; the immutable flag does)."""
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_folder_that_cannot_be_written_is_refused_first(tmp_path, fake_engine):
    out = tmp_path / "locked"
    out.mkdir()
    with _immutable(out):
        with pytest.raises(OutputError) as caught:
            render_track(_request(tmp_path, out / "x.mp3"), engine=fake_engine)
    assert str(caught.value) == f"cannot write to {out}: choose another -o"
    assert fake_engine.calls == [] and list(out.iterdir()) == []


def test_a_folder_that_refuses_the_temp_file_is_one_clear_error(tmp_path, fake_engine):
    """/sys says "writable" to root (access(2)) yet refuses every new file: found when the temp
    file is made - before any phrase is spoken - and reported as an OutputError."""
    with pytest.raises(OutputError) as caught:
        render_track(_request(tmp_path, Path("/sys/x.mp3")), engine=fake_engine)
    assert str(caught.value) == "cannot write the track in /sys: Permission denied (nothing was written)"
    assert fake_engine.calls == []


def test_a_full_disk_keeps_the_older_track_and_leaves_nothing_partial(tmp_path, fake_engine):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        old = small / "x.wav"
        old.write_bytes(b"an earlier track")
        script = _script(tmp_path, "Hello there.\n[pause 10s]\nGoodbye.\n")  # ~900 KB of WAV
        request = TrackRequest(exercise=str(script), output=old, mix=MixSettings(bells=False), force=True)
        with pytest.raises(OutputError) as caught:
            render_track(request, engine=fake_engine)
        assert str(caught.value) == f"cannot write the track in {small}: the disk is full (nothing was written)"
        assert [p.name for p in small.iterdir()] == ["x.wav"]
        assert old.read_bytes() == b"an earlier track"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_file_size_limit_keeps_the_older_track(tmp_path):
    """RLIMIT_FSIZE through the real command, with --force over an existing file."""
    _script(tmp_path, "Hello there.\n[pause 10s]\nGoodbye.\n")
    old = tmp_path / "out.wav"
    old.write_bytes(b"an earlier track")
    (tmp_path / "tmp").mkdir()

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", "mine.txt.j2", "--voice",
                           "calm-female", "--no-bells", "--no-cache", "-q", "--force", "-o", "out.wav"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, preexec_fn=limit)
    assert proc.returncode == 1
    assert proc.stderr == ("error: cannot write the track in the current folder: a file-size limit was reached "
                           "(nothing was written)\n")
    assert old.read_bytes() == b"an earlier track"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["mine.txt.j2", "out.wav", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


def _old_set(tmp_path: Path, engine, out: Path) -> dict[str, object]:
    render_track(_request(tmp_path, out, export=ExportSettings(captions=True, timeline_json=True)), engine=engine)
    return _state(out.parent)


@pytest.mark.parametrize("failing", [".srt", ".timeline.json"])
def test_a_failing_sidecar_puts_the_whole_older_set_back(tmp_path, fake_engine, monkeypatch, failing):
    """The track and its sidecars are published as one set: a sidecar that cannot be written
    (here the disk fills as it is written) leaves the older track with its older captions."""
    out = tmp_path / "out" / "x.mp3"
    out.parent.mkdir()
    _script(tmp_path, "Hello there.\n")
    older = _old_set(tmp_path, fake_engine, out)
    assert set(older) == {"x.mp3", "x.vtt", "x.srt", "x.txt", "x.timeline.json"}
    write = captions.write_text_atomic

    def full_disk(path, text, **kw):
        if str(path).endswith(failing):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, text, **kw)

    monkeypatch.setattr(captions, "write_text_atomic", full_disk)
    _script(tmp_path, "Hello there, again.\n[pause 1s]\nAnd goodbye.\n")  # a different track
    request = _request(tmp_path, out, export=ExportSettings(captions=True, timeline_json=True), force=True)
    with pytest.raises(OutputError, match=rf"^cannot write x{failing} in {out.parent}: No space left on device$"):
        render_track(request, engine=fake_engine)
    assert _state(out.parent) == older  # every file as it was, no temp or kept copy left


def test_a_failing_sidecar_with_no_older_set_leaves_nothing(tmp_path, fake_engine, monkeypatch):
    out = tmp_path / "out" / "x.mp3"
    out.parent.mkdir()
    write = captions.write_text_atomic

    def full_disk(path, text, **kw):
        if str(path).endswith(".txt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(path, text, **kw)

    monkeypatch.setattr(captions, "write_text_atomic", full_disk)
    with pytest.raises(OutputError):
        render_track(_request(tmp_path, out, export=ExportSettings(captions=True)), engine=fake_engine)
    assert list(out.parent.iterdir()) == []


def test_a_sidecar_folder_with_force_keeps_the_older_set_through_the_cli(tmp_path):
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    (tmp_path / "x.mp3").write_bytes(b"an earlier track")
    (tmp_path / "x.srt").write_text("its captions")
    (tmp_path / "x.vtt").mkdir()
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", "t.txt.j2", "--voice",
                           "calm-female", "--captions", "--force", "-q", "-o", "x.mp3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "error: x.vtt is a folder: give a file name\n")
    assert (tmp_path / "x.mp3").read_bytes() == b"an earlier track"
    assert (tmp_path / "x.srt").read_text() == "its captions"


def test_two_renders_to_one_output_one_wins_and_one_is_told(tmp_path):
    """Started together without --force, both find the name free; the encoder is slowed (2 s)
    so both are writing at once. Exactly one publishes; the other fails as if the file had
    been there, and leaves the winner's track (and captions) intact."""
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    env = {**os.environ, "COMPASSION_AUDIO_FFMPEG": str(FAKE_FFMPEG), "REAL_FFMPEG": ffmpeg_exe(),
           "FAKE_FFMPEG_FAULT": "slow", "FAKE_FFMPEG_STAGE": "encode"}
    renders = [subprocess.Popen([sys.executable, "-m", "compassion_audio", "render", "t.txt.j2", "--voice",
                                 "calm-female", "--no-bells", "--captions", "-q", "--title", title, "-o", "x.mp3"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for title in ("first", "second")]
    results = [(p.wait(timeout=90), p.stdout.read(), p.stderr.read()) for p in renders]
    for p in renders:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    winner = ("first", "second")[[code for code, _, _ in results].index(0)]
    loser = next(r for r in results if r[0] == 1)
    assert loser[2] == "error: x.mp3 already exists: choose another -o or add --force to replace it\n"
    from mutagen.id3 import ID3

    assert str(ID3(tmp_path / "x.mp3")["TIT2"]) == winner
    assert decode(tmp_path / "x.mp3").size > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == [
        "t.txt.j2", "x.mp3", "x.srt", "x.txt", "x.vtt"]


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


@pytest.mark.parametrize("what", ["cover", "bell", "background"])
def test_input_files_over_their_limit_are_refused_before_anything_is_spoken(what, tmp_path, fake_engine):
    if what == "cover":
        big = _sparse(tmp_path / "big.png", MAX_IMAGE_BYTES + 1, b"\x89PNG\r\n\x1a\n")
        kw = {"export": ExportSettings(cover=big)}
        expected = f"{big}: the cover image is over the 10 MB limit ({MAX_IMAGE_BYTES + 1} bytes; use a smaller file)"
    elif what == "bell":
        big = _sparse(tmp_path / "big.wav", MAX_SOUND_FILE_BYTES + 1, b"RIFF")
        kw = {"mix": MixSettings(bell_file=big)}
        expected = f"{big}: the bell file is over the 200 MB limit ({MAX_SOUND_FILE_BYTES + 1} bytes; use a smaller file)"
    else:
        big = _sparse(tmp_path / "big.wav", MAX_SOUND_FILE_BYTES + 1, b"RIFF")
        kw = {"mix": MixSettings(bells=False, background=str(big))}
        expected = (f"{big}: the background file is over the 200 MB limit ({MAX_SOUND_FILE_BYTES + 1} bytes; "
                    "use a smaller file)")
    with pytest.raises(ParameterError) as caught:
        render_track(_request(tmp_path, tmp_path / "x.mp3", **kw), engine=fake_engine)
    assert str(caught.value) == expected
    assert fake_engine.calls == [] and not (tmp_path / "x.mp3").exists()


@pytest.mark.parametrize("what", ["cover", "bell", "background"])
def test_a_fifo_as_an_input_file_is_refused_at_once(what, tmp_path, fake_engine):
    fifo = tmp_path / ("in.png" if what == "cover" else "in.wav")
    os.mkfifo(fifo)
    kw = {"cover": {"export": ExportSettings(cover=fifo)}, "bell": {"mix": MixSettings(bell_file=fifo)},
          "background": {"mix": MixSettings(bells=False, background=str(fifo))}}[what]
    with pytest.raises(ParameterError) as caught:
        render_track(_request(tmp_path, tmp_path / "x.mp3", **kw), engine=fake_engine)
    assert str(caught.value) == f"{fifo}: not a regular file (give the path of an ordinary file)"
    assert fake_engine.calls == []


def test_a_cover_that_is_not_an_image_is_refused_before_anything_is_spoken(tmp_path, fake_engine):
    text = tmp_path / "cover.png"
    text.write_text("not an image")
    with pytest.raises(ParameterError, match="cover image is not a JPEG or PNG file"):
        render_track(_request(tmp_path, tmp_path / "x.mp3", export=ExportSettings(cover=text)), engine=fake_engine)
    assert fake_engine.calls == []


def test_an_over_long_name_without_force_is_one_line_through_the_cli(tmp_path):
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", "t.txt.j2", "--voice",
                           "calm-female", "-q", "-o", f"{LONG}.mp3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "error: the output file name is too long: 254 bytes, and at "
                                                 "most 237 fit in this folder (choose a shorter -o)\n")


def test_a_name_beyond_the_file_system_limit_without_force_is_one_line(tmp_path):
    (tmp_path / "t.txt.j2").write_text("Hello.\n")
    proc = subprocess.run([sys.executable, "-m", "compassion_audio", "render", "t.txt.j2", "--voice",
                           "calm-female", "-q", "-o", f"{'a' * 300}.mp3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "error: the output file name is too long: 304 bytes, and at "
                                                 "most 237 fit in this folder (choose a shorter -o)\n")
