"""A client's details end up on disk only where the user asked for them - also when renders fail.

One sandbox (HOME, XDG_*, TMPDIR, the phrase cache and the working folder all inside it) sees
personalised renders and an album with a distinctive name and place, and renders that fail:
a bad marker after the name, a speech engine that keeps dying (tests/faulty_worker.py), a
render killed with SIGKILL, ``--no-cache``, ``--debug``. Then every file in the sandbox is
read (names and bytes; UTF-8, UTF-16 LE and BE, any case): the values may be only in the
outputs asked for (captions, transcripts, timeline, the album's session page and the state
file that keeps its data; the audio's tags and file names only with --name-in-file) and in the phrase cache (it keeps the phrases' text by
design, README "How it works") - until ``cache clear --client FILE`` removes them.
Every run's stdout and stderr is checked too: --debug lines never quote them (README: "never
a phrase's text or a profile value"); only a --debug traceback may.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from compassion_audio.speech.cache import SPOOL_PREFIX

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[1]
NAME = "Zephyrine Quillfeather"
PLACE = "Glimmerwick Harbour"
WORDS = ("zephyrine", "quillfeather", "glimmerwick")
PATTERNS = {word: [word.encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be")] for word in WORDS}
AUDIO = (".mp3", ".m4a", ".ogg", ".opus", ".flac", ".wav")

PROFILE = f"""\
name = "{NAME}"
daily_act = "a slow walk by {PLACE}"
kind_phrases = ["I can rest in {PLACE}"]

[place]
description = "{PLACE} at dawn"
"""

CALM = """\
+++
title = "Calm"
lengths = ["short"]

[params]
name = { type = "str", default = "" }
daily_act = { type = "str", default = "" }
+++
[chapter Arriving]
Hello {{ name }}. [pause 1s]
[chapter Today]
Today, {{ daily_act }}. [pause 1s]
Thank you.
"""

BAD_MARKER = CALM.replace("Hello {{ name }}. [pause 1s]", "Hello {{ name }}. [pause {{ daily_act }}]")
"""A pause marker whose value is the client's text: the error must not quote it."""

LONG = CALM.replace("Thank you.", "{% for i in range(24) %}Rest here, {{ name }}, as long as you like. "
                                  "[pause 1s]\n{% endfor %}Thank you.")

ALBUM = """\
[album]
title = "Week one"
voice = "calm-female"
length = "short"
captions = true
bells = false

[[track]]
template = "calm.txt.j2"

[[track]]
exercise = "daily-compassionate-act"
"""

FAULTY_CLI = ("import sys; from compassion_audio.speech.engines import pyttsx3_engine; "
              "pyttsx3_engine.WORKER_MODULE = 'tests.faulty_worker'; "
              "from compassion_audio.cli.app import main; sys.argv[0] = 'compassion-audio'; main()")
"""The real CLI with the speech worker replaced by tests/faulty_worker.py."""


def found_in(data: bytes) -> list[str]:
    """The client words in ``data``, in any case and encoding."""
    lowered = data.lower()
    return [word for word, patterns in PATTERNS.items() if any(p in lowered for p in patterns)]


@dataclass
class Run:
    args: tuple
    code: int
    stdout: str
    stderr: str
    debug: bool
    shows_name: bool


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.cache = root / "xdg" / "cache" / "compassion-audio"
        for folder in ("home", "xdg/config", "xdg/cache", "xdg/data", "xdg/state", "xdg/runtime", "tmp",
                       "work/clients"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "xdg" / "runtime").chmod(0o700)
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("XDG_", "COMPASSION_AUDIO_"))}
        self.env.update(HOME=str(root / "home"), TMPDIR=str(root / "tmp"), HIBARI_HOME=str(root / "home" / "hibari"),
                        XDG_CONFIG_HOME=str(root / "xdg/config"), XDG_CACHE_HOME=str(root / "xdg/cache"),
                        XDG_DATA_HOME=str(root / "xdg/data"), XDG_STATE_HOME=str(root / "xdg/state"),
                        XDG_RUNTIME_DIR=str(root / "xdg/runtime"), PYTHONPATH=str(REPO))
        for name, text in (("calm.txt.j2", CALM), ("bad.txt.j2", BAD_MARKER), ("long.txt.j2", LONG),
                           ("album.toml", ALBUM), ("clients/c0142.toml", PROFILE)):
            (self.work / name).write_text(text, encoding="utf-8")
        self.inputs = {self.work / "clients" / "c0142.toml"}
        self.runs: list[Run] = []
        self.allowed: set[Path] = set()
        """Outputs that may hold the client's details (asked for)."""

    def command(self, *args: str, faulty: str | None = None) -> list[str]:
        if faulty:
            return [sys.executable, "-c", FAULTY_CLI, *args]
        return [sys.executable, "-m", "compassion_audio", *args]

    def run(self, *args: str, code: int = 0, faulty: str | None = None, shows_name: bool = False) -> Run:
        env = dict(self.env, COMPASSION_AUDIO_TEST_FAULT=faulty) if faulty else self.env
        proc = subprocess.run(self.command(*args, faulty=faulty), cwd=self.work, env=env, capture_output=True,
                              text=True, timeout=300)
        run = Run(args, proc.returncode, proc.stdout, proc.stderr, "--debug" in args, shows_name)
        self.runs.append(run)
        assert proc.returncode == code, (args, proc.stderr)
        return run

    def allow(self, *paths: Path) -> None:
        for path in paths:
            assert path.is_file(), path
            self.allowed.add(path)

    def files(self) -> list[Path]:
        found = []
        for folder, dirs, names in os.walk(self.root):
            found += [Path(folder) / name for name in names + dirs]  # folder names are checked too
        return found

    def leaks(self, *, cache_allowed: bool) -> dict[str, list[str]]:
        """Every file or folder outside the allowed ones whose name or bytes hold a client word."""
        leaks = {}
        for path in self.files():
            rel = str(path.relative_to(self.root))
            words = found_in(rel.encode("utf-8"))
            if path in self.inputs or path in self.allowed or (cache_allowed and self.cache in path.parents):
                continue
            if path.is_file() and not path.is_symlink():
                words += found_in(path.read_bytes())
            if words:
                leaks[rel] = sorted(set(words))
        return leaks


def _sidecars(audio: Path) -> list[Path]:
    stem = audio.name[: -len(audio.suffix)]
    return [p for p in audio.parent.iterdir() if p.name.startswith(stem + ".") and p != audio]


def _kill_while_encoding(box: Sandbox, *args: str) -> None:
    out = box.work / "killed"
    proc = subprocess.Popen(box.command(*args), cwd=box.work, env=box.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".") and p.stat().st_size > 0 for p in out.glob(".*.partial.*")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the render never started encoding"
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    box.runs.append(Run(args, proc.returncode, stdout, stderr, False, False))
    time.sleep(1.0)  # its speech worker and ffmpeg notice and end


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("privacy"))
    client = ("--client", "clients/c0142.toml")
    voice = ("--voice", "calm-female", "--no-bells")
    # Personalised renders that work: captions and timeline asked for; the name in the file name asked for.
    box.run("render", "calm.txt.j2", *client, *voice, "--captions", "--timeline", "-o", "out/calm.mp3")
    box.allow(*_sidecars(box.work / "out" / "calm.mp3"))
    box.run("render", "calm.txt.j2", *client, *voice, "--name-in-file", "--format", "m4a", "--captions",
            shows_name=True)
    named = [p for p in (box.work / "output").iterdir() if "zephyrine" in p.name.lower()]
    assert any(p.suffix == ".m4a" for p in named)
    box.allow(*named)
    box.run("render", "calm.txt.j2", "-s", f"name={NAME}", "-s", f"daily_act=a walk by {PLACE}", *voice,
            "--no-cache", "-o", "out/nocache.ogg")
    box.run("--debug", "render", "calm.txt.j2", *client, *voice, "--captions", "-o", "out/debug.flac")
    box.allow(*_sidecars(box.work / "out" / "debug.flac"))
    # Renders that fail: a bad marker after the name (with and without --debug), an engine that keeps dying.
    box.run("render", "bad.txt.j2", *client, *voice, "-o", "out/bad.mp3", code=1)
    box.run("--debug", "render", "bad.txt.j2", *client, *voice, "-o", "out/bad-debug.mp3", code=1)
    box.run("render", "long.txt.j2", *client, *voice, "-o", "out/dying.mp3", code=1, faulty="kill:always")
    box.run("render", "long.txt.j2", *client, *voice, "--no-cache", "-o", "out/silent.mp3", code=1,
            faulty="silent:always")
    # A render killed while encoding: what it leaves, before and after the next run removes it.
    _kill_while_encoding(box, "render", "long.txt.j2", *client, *voice, "--captions", "-o", "killed/long.mp3")
    box.after_kill = box.leaks(cache_allowed=True)
    box.debris = sorted(p.name for p in (box.work / "killed").iterdir())
    box.run("render", "long.txt.j2", *client, *voice, "--captions", "-o", "killed/long.mp3")
    box.allow(*_sidecars(box.work / "killed" / "long.mp3"))
    # An album for the client.
    box.run("album", "album.toml", *client, "-o", "albums/one", "--jobs", "2", "-q")
    album = box.work / "albums" / "one"
    # Its captions and transcripts, its session page, and the state file that keeps each track's page
    # data to write index.html again (a hidden file of the album, private like it).
    box.allow(*[p for p in album.iterdir() if p.suffix in (".vtt", ".srt", ".txt")],
              album / "index.html", album / ".album-state.json")
    box.before_clear = box.leaks(cache_allowed=True)
    box.cache_words = sorted({w for p in box.cache.rglob("*") if p.is_file() for w in found_in(p.read_bytes())})
    box.run("cache", "clear", *client)
    return box


def test_the_runs_did_what_they_were_asked(sandbox):
    assert [r.code for r in sandbox.runs] == [0, 0, 0, 0, 1, 1, 1, 1, -signal.SIGKILL, 0, 0, 0]
    assert not (sandbox.work / "out" / "bad.mp3").exists() and not (sandbox.work / "out" / "dying.mp3").exists()
    assert sandbox.cache_words == sorted(WORDS)  # the cache held the phrases' text, as documented
    assert [p for p in (sandbox.root / "tmp").iterdir() if p.name.startswith(SPOOL_PREFIX)] == []


def test_no_message_quotes_a_client_value(sandbox):
    quoted = []
    for run in sandbox.runs:
        lines = run.stderr.splitlines() + ([] if run.shows_name else run.stdout.splitlines())
        if run.debug and run.code != 0:
            # A --debug traceback may quote the failing phrase (README); its debug: lines may not.
            lines = [line for line in lines if line.startswith(("debug:", "error:", "warning:"))]
        quoted += [(run.args[:2], line) for line in lines if found_in(line.encode("utf-8"))]
    assert quoted == []


def test_failed_runs_say_what_failed_in_one_line(sandbox):
    failed = [r for r in sandbox.runs if r.code == 1 and not r.debug]
    for run in failed:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr


def test_a_killed_render_leaves_no_client_value_and_its_debris_goes(sandbox):
    assert sandbox.after_kill == {}
    assert any(".partial" in name for name in sandbox.debris)
    assert sorted(p.name for p in (sandbox.work / "killed").iterdir() if ".partial" in p.name) == []


def test_client_values_are_only_in_the_outputs_asked_for_and_the_cache(sandbox):
    assert sandbox.before_clear == {}
    audio = [p for p in sandbox.allowed if p.suffix in AUDIO]
    assert audio and all("zephyrine" in p.name.lower() for p in audio)  # only with --name-in-file
    assert any(found_in(p.read_bytes()) for p in sandbox.allowed if p.suffix == ".vtt")


def test_cache_clear_client_removes_the_clients_phrases(sandbox):
    assert sandbox.leaks(cache_allowed=False) == {}
    assert any(sandbox.cache.rglob("*.npy"))  # the phrases without the client's values stay
