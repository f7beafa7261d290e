"""The bad-input corpus: every case file under tests/bad_inputs/ run through the real CLI.

One case a TOML file (format in tests/bad_inputs/README.md). Each runs
``python -m compassion_audio ARGS`` in a subprocess, in the case's own folder, with its own
cache, temp folder and home, and must:

- exit with the case's code, within its timeout (a run past it is a hang: killed, failed);
- print exactly the case's one-line message on stderr (and its stdout, when given), no traceback;
- write or change nothing: the case folder is the same before and after (every path, its type,
  mode, and for files size, mtime and SHA-256, for links the target; FIFOs are never opened),
  the cache holds no file and the temp folder is empty.
"""
from __future__ import annotations

import base64
import hashlib
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CASES_DIR = Path(__file__).parent / "bad_inputs"
CASES = sorted(CASES_DIR.glob("*.toml"))
MIN_CASES = 60
DEFAULT_TIMEOUT = 20.0
KEYS = {"description", "args", "exit", "message", "stdout", "timeout", "files", "binary", "env", "setup"}
SETUP_KEYS = {"fifo", "directories", "symlinks", "readonly", "fsize_limit"}
CLIENT_WORDS = ("Zephyrine", "Quillfeather", "Paula")
"""The distinctive client values the cases use: no message may quote them."""
VOICE_MEMO = "voice-identities"
"""The one thing a failing render may leave in the cache: a voice's engine identity
(speech/voice_identity.py), remembered when a render resolves its voice - no phrase, no value."""
_LEAKY_ENV = ("COMPASSION_AUDIO_EXERCISES", "COMPASSION_AUDIO_VOICES", "COMPASSION_AUDIO_CACHE_MAX",
              "HIBARI_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")


def test_corpus_has_enough_cases():
    assert len(CASES) >= MIN_CASES, f"{len(CASES)} case files in {CASES_DIR}, want at least {MIN_CASES}"


@pytest.mark.parametrize("case_file", CASES, ids=[case.stem for case in CASES])
def test_bad_input(case_file: Path, tmp_path: Path):
    case = tomllib.loads(case_file.read_text(encoding="utf-8"))
    unknown = set(case) - KEYS
    assert not unknown, f"{case_file.name}: unknown keys {sorted(unknown)}"
    assert set(case.get("setup", {})) <= SETUP_KEYS, f"{case_file.name}: unknown [setup] keys"
    assert case.get("description"), f"{case_file.name}: say what the case is about"

    folder = tmp_path / "case"
    folder.mkdir()
    cache, temp, home = tmp_path / "cache", tmp_path / "tmp", tmp_path / "home"
    temp.mkdir()
    home.mkdir()

    def sub(text: str) -> str:
        return text.replace("{dir}", str(folder))

    _make_inputs(case, folder, sub)
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update(COMPASSION_AUDIO_CACHE=str(cache), TMPDIR=str(temp), HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_DATA_HOME=str(home / ".local" / "share"), PYTHONDONTWRITEBYTECODE="1",
               COLUMNS="200")
    env.update({key: sub(str(value)) for key, value in case.get("env", {}).items()})

    before = snapshot(folder)
    try:
        returncode, stdout, stderr = _run([sys.executable, "-m", "compassion_audio",
                                           *(sub(arg) for arg in case["args"])],
                                          cwd=folder, env=env, timeout=float(case.get("timeout", DEFAULT_TIMEOUT)),
                                          fsize_limit=case.get("setup", {}).get("fsize_limit"))
        after = snapshot(folder)
    finally:
        for name in case.get("setup", {}).get("readonly", []):
            (folder / name).chmod(0o755)

    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert not any(word in stderr for word in CLIENT_WORDS), "a client's value in the message"
    message = sub(case["message"]).rstrip("\n")
    assert "\n" not in message, f"{case_file.name}: the message must be one line"
    assert stderr == (message + "\n" if message else ""), f"stderr was:\n{stderr}"
    assert returncode == case["exit"], f"exit {returncode}; stderr:\n{stderr}"
    if "stdout" in case:
        assert stdout == sub(case["stdout"]), f"stdout was:\n{stdout}"
    assert _changes(before, after) == [], "the case folder changed"
    cached = [str(p.relative_to(cache)) for p in cache.rglob("*") if not p.is_dir()] if cache.exists() else []
    assert [p for p in cached if Path(p).parts[0] != VOICE_MEMO] == [], "files were left in the cache"
    assert sorted(str(p) for p in temp.iterdir()) == [], "the temp folder is not empty"


def _make_inputs(case: dict, folder: Path, sub) -> None:
    setup = case.get("setup", {})
    for name in setup.get("directories", []):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for name, text in case.get("files", {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    for name, data in case.get("binary", {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
    for name in setup.get("fifo", []):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(folder / name)
    for name, target in setup.get("symlinks", {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(sub(target), folder / name)
    for name in setup.get("readonly", []):
        (folder / name).chmod(0o555)


def _run(command: list[str], *, cwd: Path, env: dict, timeout: float,
         fsize_limit: int | None) -> tuple[int, str, str]:
    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=limit_file_size if fsize_limit else None)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hang: still running after {timeout:g} s (killed)")
    return proc.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` with what would show a write: type and mode; for files size,
    mtime and SHA-256; for links the target. Nothing but regular files is opened (a FIFO would
    block). A folder's own mtime and size are left out: they say only that an entry came and went,
    and any entry that stays is listed itself."""
    seen: dict[str, tuple] = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            relative = str(path.relative_to(folder))
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                seen[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                seen[relative] = ("dir", mode)
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                seen[relative] = ("file", mode, info.st_size, info.st_mtime_ns, digest)
            else:
                seen[relative] = ("special", stat.S_IFMT(info.st_mode), mode, info.st_mtime_ns)
    return seen


def _changes(before: dict, after: dict) -> list[str]:
    return ([f"new: {p}" for p in sorted(set(after) - set(before))]
            + [f"gone: {p}" for p in sorted(set(before) - set(after))]
            + [f"changed: {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]])


# ---------------------------------------------------------------- what the corpus refuses, asked for

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update(COMPASSION_AUDIO_CACHE=str(cwd / "cache"), TMPDIR=str(cwd), HOME=str(cwd))
    return subprocess.run([sys.executable, "-m", "compassion_audio", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_silent_timer_renders_a_script_with_no_speech(tmp_path):
    """The cases cli-markers-only-template and cli-empty-template are refused; --silent-timer asks
    for exactly that track: lead-in, the pauses and the breathing stretch, tail - tones only
    while it breathes."""
    from compassion_audio.core.settings import MixSettings

    from .conftest import decode, sounding_runs

    (tmp_path / "timer.txt.j2").write_text("[pause 3s]\n[breathe 2 breaths]\n[pause 2s]\n", encoding="utf-8")
    out = tmp_path / "timer.wav"
    done = _cli("render", "timer.txt.j2", "--voice", "calm-female", "--silent-timer", "--no-bells",
                "--breathing", "6", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    mix = MixSettings()
    breathe_start = mix.lead_in_seconds + 3.0
    breathe_end = breathe_start + 2 * 60 / 6
    seconds = breathe_end + 2.0 + mix.tail_seconds
    samples = decode(out)
    assert len(samples) == round(seconds * 44100)
    runs = sounding_runs(samples, 44100)
    assert runs, "the breathing tones are missing"
    assert all(breathe_start - 0.05 <= start and end <= breathe_end + 0.05 for start, end in runs), runs


@pytest.mark.parametrize("value", ["</break>", '<break time="3s"/>'])
def test_a_value_that_looks_like_a_tag_is_shown_as_written(tmp_path, value):
    (tmp_path / "t.txt.j2").write_text(
        '+++\ntitle = "Try"\n[params]\nname = { type = "str", default = "", help = "first name" }\n+++\n'
        "Hello {{ name }}.\nRest.\n", encoding="utf-8")
    done = _cli("show", "t.txt.j2", "-s", f"name={value}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line.split("  ", 1)[1] for line in done.stdout.splitlines() if line[:5].count(":") == 1 and "  " in line]
    assert f"Hello {value}." in lines, done.stdout  # spoken as written, not as a pause
    assert not any(line.startswith("[pause") for line in lines), done.stdout


def _timer_album(tmp_path: Path, silent: bool) -> Path:
    (tmp_path / "timer.txt.j2").write_text("[pause 3s]\n[bell]\n", encoding="utf-8")
    manifest = tmp_path / "a.toml"
    manifest.write_text('[album]\ntitle = "Timers"\nvoice = "calm-female"\n\n[[track]]\ntemplate = "timer.txt.j2"\n'
                        + ("silent_timer = true\n" if silent else ""), encoding="utf-8")
    return manifest


def test_an_album_refuses_a_track_with_nothing_to_say_before_building(tmp_path):
    from compassion_audio.album import BuildOptions, load_manifest, plan_albums
    from compassion_audio.core.errors import AlbumError

    manifest = _timer_album(tmp_path, silent=False)
    with pytest.raises(AlbumError) as caught:
        plan_albums(load_manifest(manifest), BuildOptions(output=tmp_path / "out"))
    assert str(caught.value).startswith(f"{manifest}:6: [[track]] 1: ")
    assert "nothing to say" in str(caught.value)


def test_an_album_track_can_be_a_silent_timer(tmp_path):
    from compassion_audio.album import BuildOptions, load_manifest, plan_albums

    plans = plan_albums(load_manifest(_timer_album(tmp_path, silent=True)), BuildOptions(output=tmp_path / "out"))
    assert [track.request.allow_silent for track in plans[0].tracks] == [True]
