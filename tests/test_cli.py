"""The command line through click's CliRunner: listings, errors, renders, authoring, privacy.

Renders use the real engine (pyttsx3 + espeak-ng) and ffmpeg; the files are decoded
independently (tests/conftest.py ``decode``) and measured with numpy. Expensive renders
are shared by module-scoped fixtures with their own cache folder.
"""
from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import wave
from pathlib import Path

import mutagen
import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.script import library, templates
from compassion_audio.sound.estimate import estimate_timeline
from compassion_audio.core.errors import (AudioError, ExerciseNotFound, MarkerError, OutputError,
                                     ParameterError, ProfileError, VoiceError)

from compassion_audio.speech.voices import PROFILES_DIR

from .conftest import FILE_LOUDNESS_LU, decode, ebur128, sounding_runs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
SR = 44100
PAUSE_TOLERANCE = 0.05   # audio-standards.md: a marked pause is N s +-50 ms
WROTE = re.compile(r"^Wrote (?P<path>.+) \((?P<m>\d+):(?P<s>\d\d); (?P<phrases>\d+) phrases, "
                   r"(?P<new>\d+) newly spoken\)$")
TINY = "Hello there. Rest now.\n[pause 2s]\nGoodbye now.\n"
NAME = "Zebedee"


def run(*args: str, env: dict | None = None):
    """Invoke the CLI in-process; stdout and stderr are kept apart (click 8.2+)."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def partials(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.partial*"))


def assert_one_error_line(result, line: str | None = None) -> str:
    """Exit 1, exactly one stderr line starting 'error: ' (equal to ``line`` when given), no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    if line is not None:
        assert lines[0] == line
    assert "Traceback" not in result.output
    return lines[0]


# ---------------------------------------------------------------- shared material

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    """Templates, profiles and files the error and render tests point at (absolute paths)."""
    folder = tmp_path_factory.mktemp("work")
    files = {
        "tiny": ("tiny.txt", TINY),
        "params": ("params.txt.j2",
                   '+++\ntitle = "Params"\n[params]\n'
                   'who = { type = "str", help = "Who is listening (required)." }\n'
                   '"place.sight" = { type = "str", default = "", help = "What they see." }\n+++\n'
                   "Hello {{ who }}.{% if place.sight %} You see {{ place.sight }}.{% endif %}\n"),
        "typo": ("typo.txt.j2", '+++\ntitle = "Typo"\n+++\nHello there.\nSettle in. [pasue 3s]\nBye.\n'),
        "p_key": ("key.toml", 'name = "Jo"\nnmae = "Jo"\n'),
        "p_type": ("type.toml", 'name = "Jo"\nstrengths = "patience"\n'),
        "p_rate": ("rate.toml", 'name = "Jo"\n\n[breathing]\nbreaths_per_min = 20\n'),
        "afile": ("afile", "a regular file, not a folder\n"),
        "existing": ("existing.wav", "not really audio: must survive\n"),
    }
    paths = {}
    for key, (name, text) in files.items():
        paths[key] = folder / name
        paths[key].write_text(text, encoding="utf-8")
    paths["folder"] = folder
    return paths


@pytest.fixture(scope="module")
def tiny_render(tmp_path_factory, work):
    """One real render of the tiny template with the CLI's defaults (bells on) to WAV, then a
    second, quiet one from the warm cache."""
    folder = tmp_path_factory.mktemp("tiny")
    cache = folder / "cache"
    env = {"COMPASSION_AUDIO_CACHE": str(cache)}
    first = run("render", work["tiny"], "-o", folder / "out" / "tiny.wav", env=env)
    quiet = run("render", work["tiny"], "-o", folder / "out" / "quiet.wav", "-q", env=env)
    return {"first": first, "quiet": quiet, "path": folder / "out" / "tiny.wav",
            "quiet_path": folder / "out" / "quiet.wav", "cache": cache, "folder": folder}


@pytest.fixture(scope="module")
def privacy(tmp_path_factory):
    """compassionate-self, short, for a named client: once by default, once with --name-in-file,
    run from an empty folder of its own (the default output folder is ./output).

    (CliRunner.isolated_filesystem does the same but is deprecated from Click 8.3.)"""
    base = tmp_path_factory.mktemp("privacy")
    cwd = base / "cwd"
    cwd.mkdir()
    env = {"COMPASSION_AUDIO_CACHE": str(base / "cache")}
    args = ["render", "compassionate-self", "-s", f"name={NAME}", "--length", "short"]
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        plain = run(*args, env=env)
        after_plain = sorted(p.name for p in (cwd / "output").iterdir())
        named = run(*args, "--name-in-file", env=env)
        after_named = sorted(p.name for p in (cwd / "output").iterdir())
    finally:
        os.chdir(previous)
    return {"plain": plain, "named": named, "cwd": cwd, "after_plain": after_plain,
            "after_named": after_named}


# ---------------------------------------------------------------- list, show

@pytest.fixture(scope="module")
def listing():
    result = run("list")
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_list_shows_every_builtin_with_lengths_and_group(listing):
    builtins = sorted(exercise_name for exercise_name in
                      (library.exercise_name(p) for p in library.builtin_dir().glob("*.j2")))
    assert builtins, "no built-in exercises found"
    by_name = {line.split()[0]: line for line in listing}
    assert sorted(by_name) == builtins
    for name in builtins:
        ex = library.find_exercise(name)
        line = by_name[name]
        assert ex.title in line
        shown = re.findall(r"\b(short|standard|long) ~(\d+)m\b", line)
        assert [length for length, _ in shown] == list(ex.lengths), line
        assert all(int(minutes) >= 1 for _, minutes in shown), line
        # Longer versions are never estimated shorter.
        assert [int(m) for _, m in shown] == sorted(int(m) for _, m in shown), line
        assert line.rstrip().endswith("group" if ex.group else "-"), line


def test_list_estimate_matches_show(listing):
    line = next(l for l in listing if l.startswith("soothing-rhythm-breathing "))
    minutes = int(dict(re.findall(r"\b(short|standard|long) ~(\d+)m\b", line))["standard"])
    show = run("show", "soothing-rhythm-breathing")
    assert show.exit_code == 0, show.output
    mm, ss = re.search(r"- about (\d\d):(\d\d)$", show.stdout.splitlines()[0]).groups()
    seconds = int(mm) * 60 + int(ss)
    assert abs(seconds / 60 - minutes) <= 0.5 + 1 / 60, (seconds, minutes)


def test_list_show_and_check_report_one_length(listing):
    """The three commands time a track with the one estimate (sound.estimate), as rendered."""
    name = "compassionate-self"
    seconds = estimate_timeline(templates.render_script(library.find_exercise(name), {})).seconds
    line = next(l for l in listing if l.startswith(f"{name} "))
    assert dict(re.findall(r"\b(short|standard|long) ~(\d+)m\b", line))["standard"] == f"{seconds / 60:.0f}"
    show = run("show", name)
    minutes, rest = divmod(int(round(seconds)), 60)
    assert show.stdout.splitlines()[0].endswith(f"- about {minutes:02d}:{rest:02d}")
    check = run("check", name)
    assert f"  standard  individual empty  profile  ~{seconds / 60:4.1f} min" in check.stdout.splitlines()


def test_list_marks_your_own_exercises(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my-arrival.txt.j2").write_text("Welcome.\n[pause 1m]\nGoodbye.\n", encoding="utf-8")
    result = run("list", "--exercises", mine)
    assert result.exit_code == 0, result.output
    line = next(l for l in result.stdout.splitlines() if l.startswith("my-arrival "))
    assert re.search(r"\bstandard ~1m\b", line), line     # a one-minute pause and two words
    assert line.rstrip().endswith("-  (yours)"), line       # no group variant, and marked as yours


def test_list_programmes():
    result = run("list", "--programmes")
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    files = sorted((REPO / "compassion_audio" / "script" / "programmes").glob("*.toml"))
    assert files
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert f"{path.stem}: {data['title']} - {data['summary']}" in out
        for number, week in enumerate(data["weeks"], 1):
            tracks = ", ".join(f"{t['exercise']} ({t['length']})" for t in week["tracks"])
            assert f"  week {number}: {week['title']}: {tracks}" in out


TIMELINE_LINE = re.compile(r"^(\d\d):(\d\d)  (.+)$")


def _show_lines(*args: str) -> tuple[str, list[tuple[int, str]]]:
    result = run("show", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    header, *rest = result.stdout.splitlines()
    rest = rest[:rest.index("")]   # the parameters block follows a blank line (tests/test_show_list.py)
    lines = []
    for line in rest:
        match = TIMELINE_LINE.match(line)
        assert match, f"not an 'mm:ss  text' line: {line!r}"
        lines.append((int(match.group(1)) * 60 + int(match.group(2)), match.group(3)))
    return header, lines


def test_show_individual_timeline_chapters_and_name():
    header, lines = _show_lines("compassionate-self", "-s", f"name={NAME}", "--length", "short")
    assert header.startswith("The compassionate self (short, individual) - about ")
    times = [t for t, _ in lines]
    # As rendered: a bell after the 1 s lead-in opens the track and another closes it.
    assert times == sorted(times) and lines[0] == (1, "[bell]") and lines[-1][1] == "[bell]"
    total = re.search(r"about (\d\d):(\d\d)$", header).groups()
    assert times[-1] <= int(total[0]) * 60 + int(total[1])
    texts = [text for _, text in lines]
    assert f"Welcome, {NAME}." in texts
    script = templates.render_script(library.find_exercise("compassionate-self"), {"name": NAME},
                                     length="short")
    chapters = [s.title for s in script.segments if type(s).__name__ == "Chapter"]
    assert chapters and [t[3:-3] for t in texts if t.startswith("== ")] == chapters
    assert any(re.fullmatch(r"\[pause \d+(\.\d+)?s\]", t) for t in texts)
    assert any(re.fullmatch(r"\[breathe \d+(\.\d+)?s\]", t) for t in texts)


def test_show_group_variant_has_no_name():
    header, lines = _show_lines("compassionate-self", "--length", "short", "--group")
    assert header.startswith("The compassionate self (short, group) - about ")
    assert "Welcome, everyone." in [text for _, text in lines]
    # A name typed for a group track is left out, and the user is told (tests/test_group_privacy.py).
    named = run("show", "compassionate-self", "-s", f"name={NAME}", "--length", "short", "--group")
    assert named.exit_code == 0, named.output
    assert named.stderr == "group variant: -s name is not used (individual tracks only)\n"
    assert NAME not in named.stdout and named.stdout.startswith(header)


def test_show_times_a_pause(tmp_path):
    script = tmp_path / "paced.txt"
    script.write_text("Hello there.\n[pause 30s]\nGoodbye now.\n", encoding="utf-8")
    _, lines = _show_lines(script)
    index = next(i for i, (_, text) in enumerate(lines) if text == "[pause 30s]")
    assert lines[index - 1][1] == "Hello there." and lines[index + 1][1] == "Goodbye now."
    assert abs(lines[index + 1][0] - lines[index][0] - 30) <= 1   # mm:ss rounds to the second


# ---------------------------------------------------------------- render (real engine)

def test_render_writes_the_file_and_says_so(tiny_render):
    result = tiny_render["first"]
    assert result.exit_code == 0, result.output
    match = WROTE.match(result.stdout.splitlines()[0])
    assert match, result.stdout
    path = Path(match["path"])
    assert path == tiny_render["path"] and path.is_file()
    assert (int(match["phrases"]), int(match["new"])) == (3, 3)    # three sentences, cold cache
    assert "Speaking and writing..." in result.stderr and "error" not in result.stderr
    with wave.open(str(path), "rb") as w:                           # the header, read without the product
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
    samples = decode(path)
    seconds = samples.size / SR
    assert abs(seconds - (int(match["m"]) * 60 + int(match["s"]))) <= 0.5   # printed m:ss is rounded
    runs = sounding_runs(samples, SR)
    # ... "Rest now." | [pause 2s] | "Goodbye now." | end bell (the start bell may merge with "Hello").
    assert len(runs) >= 4, runs
    gap = runs[-2][0] - runs[-3][1]
    assert abs(gap - 2.0) <= PAUSE_TOLERANCE, (gap, runs)
    level = ebur128(path)
    assert abs(level["integrated"] - -16.0) <= FILE_LOUDNESS_LU, level
    assert level["true_peak"] <= -1.0, level


def test_render_quiet_prints_only_the_path(tiny_render):
    result = tiny_render["quiet"]
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tiny_render['quiet_path']}\n"
    assert result.stderr == ""
    quiet = decode(tiny_render["quiet_path"])
    first = decode(tiny_render["path"])
    assert quiet.size == first.size    # same script, same voice: same length to the sample


def test_failed_render_leaves_nothing_half_written(work, tiny_render, tmp_path, monkeypatch):
    """A real failure inside the encoder (ffmpeg lacks the encoder) after synthesis."""
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "keep.mp3"
    keep.write_bytes(b"an earlier track")
    cache = ["--cache-dir", tiny_render["cache"]]
    # ffmpeg fails only after all the speech is made: an encoder it does not have.
    from compassion_audio.output import export

    monkeypatch.setitem(export._CODECS, "mp3", ["-c:a", "no_such_encoder", "-f", "mp3"])
    fresh = run("render", work["tiny"], "-o", out / "new.mp3", "-q", *cache)
    line = assert_one_error_line(fresh)
    assert line.startswith("error: ffmpeg could not write mp3: ")
    replaced = run("render", work["tiny"], "-o", keep, "--force", "-q", *cache)
    assert_one_error_line(replaced, line)
    assert snapshot(out) == {"keep.mp3": b"an earlier track"}
    assert partials(out) == []
    debug = run("--debug", "render", work["tiny"], "-o", out / "new.mp3", "-q", *cache)
    assert isinstance(debug.exception, AudioError)
    assert snapshot(out) == {"keep.mp3": b"an earlier track"}


def test_interrupted_render_leaves_nothing_half_written(work, tiny_render, tmp_path, monkeypatch):
    """Ctrl-C while the encoded temp file is being tagged: it is removed, the old file kept."""
    from compassion_audio.output import tags

    out = tmp_path / "out"
    out.mkdir()
    keep = out / "keep.wav"
    keep.write_bytes(b"an earlier track")
    seen = []

    def interrupt(path, *args, **kwargs):
        seen.append((Path(path), Path(path).stat().st_size))
        raise KeyboardInterrupt

    monkeypatch.setattr(tags, "write_tags", interrupt)
    result = run("render", work["tiny"], "-o", keep, "--force", "--cache-dir", tiny_render["cache"])
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines()[-1] == "stopped: nothing was left half-written"
    assert "Traceback" not in result.output
    (partial, size), = seen
    assert partial.parent == out and partial.name.startswith(".keep.") and ".partial" in partial.name
    assert size > 44 + SR * 2 * 5           # a complete WAV (over 5 s) was there when we stopped
    assert snapshot(out) == {"keep.wav": b"an earlier track"}
    assert partials(out) == []


# ---------------------------------------------------------------- user errors

def _errors(w: dict[str, Path]) -> list[tuple[str, list, str, type]]:
    """(id, arguments, the exact stderr line, the error class --debug lets through)."""
    afile, existing, tiny = w["afile"], w["existing"], w["tiny"]
    return [
        ("missing-param", ["show", w["params"]],
         "error: params: missing required parameter 'who' (pass it with -s who=...)", ParameterError),
        ("missing-param-render", ["render", w["params"], "-o", "x.wav"],
         "error: params: missing required parameter 'who' (pass it with -s who=...)", ParameterError),
        ("bad-marker", ["render", w["typo"], "-o", "x.wav"],
         f"error: {w['typo']}:5:12: unknown marker [pasue 3s] (did you mean [pause 3s]?)", MarkerError),
        ("bad-marker-check", ["check", w["typo"]],
         f"error: {w['typo']}:5:12: unknown marker [pasue 3s] (did you mean [pause 3s]?)", MarkerError),
        ("unknown-exercise", ["render", "soothing-rythm-breathing"],
         "error: no exercise named 'soothing-rythm-breathing' (did you mean soothing-rhythm-breathing?); "
         "'compassion-audio list' shows them all", ExerciseNotFound),
        ("unknown-set", ["show", w["params"], "-s", "who=Jo", "-s", "plcae.sight=sea"],
         "error: -s: unknown parameter 'plcae.sight' for params "
         "(did you mean place.sight? known parameters: who, place.sight)", ParameterError),
        ("set-without-equals", ["render", w["params"], "-s", "who"],
         "error: -s: 'who' is not key=value (write e.g. -s name=Jane)", ParameterError),
        ("unknown-length", ["render", tiny, "--length", "short", "-o", "x.wav"],
         "error: tiny: unknown length 'short' for tiny (lengths are standard)", ParameterError),
        ("no-group-variant", ["show", tiny, "--group"],
         "error: tiny: tiny has no group variant (leave out --group, or give the template "
         "group = true and a group variant)", ParameterError),
        ("output-under-a-file", ["render", tiny, "-o", afile / "x.wav"],
         f"error: cannot create the folder {afile}: File exists", OutputError),
        ("output-exists", ["render", tiny, "-o", existing],
         f"error: {existing} already exists: choose another -o or add --force to replace it", OutputError),
        ("profile-unknown-key", ["show", "compassionate-self", "--client", w["p_key"]],
         f"error: {w['p_key']}:2: unknown key 'nmae' (did you mean 'name'?)", ProfileError),
        ("profile-wrong-type", ["client", "check", w["p_type"]],
         f"error: {w['p_type']}:2: strengths must be a list of strings (e.g. [\"first\", \"second\"])",
         ProfileError),
        ("profile-rate-range", ["render", tiny, "--client", w["p_rate"], "-o", "x.wav"],
         f"error: {w['p_rate']}:4: breathing.breaths_per_min is 20; it must be between 3 and 12", ProfileError),
        ("profile-missing", ["client", "check", w["folder"] / "nobody.toml"],
         f"error: {w['folder'] / 'nobody.toml'}: file not found", ProfileError),
        ("ratio", ["render", tiny, "--ratio", "4-6", "-o", "x.wav"],
         "error: --ratio: '4-6' is not an in:out ratio (write two positive numbers separated by ':', e.g. 4:6)",
         ParameterError),
        ("pattern", ["render", tiny, "--pattern", "1,2", "-o", "x.wav"],
         "error: --pattern: '1,2' is not in,hold,out,hold seconds (write e.g. 4,1,6,1; holds may be 0)",
         ParameterError),
        ("unknown-background", ["render", tiny, "--background", "rian", "-o", "x.wav"],
         "error: background: unknown background 'rian' (choose one of pink, brown, rain, waves, "
         "or give the path of an audio file)", ParameterError),
        ("breathing-pattern-range", ["render", tiny, "--pattern", "0.1,0,0.2,0", "-o", "x.wav"],
         "error: breathing: breathing rate 200 breaths/min is out of range (use 3 to 12)", ParameterError),
        ("bitrate", ["render", tiny, "--bitrate", "banana", "-o", "x.mp3"],
         "error: --bitrate: 'banana' is not a bitrate (write 32k to 320k, e.g. 128k or 192k)", ParameterError),
        ("loudness", ["render", tiny, "--loudness", "loud", "-o", "x.wav"],
         "error: --loudness: 'loud' is not a loudness target "
         "(give LUFS between -40 and -5, e.g. -16, -19 or -23, or 'off')", ParameterError),
        ("unknown-voice", ["render", tiny, "--voice", "calm-mael", "-o", "x.wav"],
         "error: unknown voice 'calm-mael' (close matches: calm-male, calm-female)", VoiceError),
        ("new-under-a-file", ["new", "kindness", "-o", afile / "kindness.txt.j2"],
         f"error: cannot create the folder {afile}: File exists", OutputError),
        ("new-exists", ["new", "kindness", "-o", existing],
         f"error: {existing} already exists: choose another name or add --force", OutputError),
        ("client-new-under-a-file", ["client", "new", afile / "jane.toml"],
         f"error: cannot create the folder {afile}: File exists", OutputError),
    ]


ERROR_IDS = [case[0] for case in _errors({k: Path(k) for k in
                                           ("afile", "existing", "tiny", "params", "typo", "p_key",
                                            "p_type", "p_rate", "folder")})]


@pytest.mark.parametrize("case_id", ERROR_IDS)
def test_user_error_is_one_line_and_exit_1(case_id, work, monkeypatch):
    _, args, line, error_class = next(c for c in _errors(work) if c[0] == case_id)
    monkeypatch.chdir(work["folder"])          # anything written by mistake would land here
    before = snapshot(work["folder"])
    result = run(*args)
    assert_one_error_line(result, line)
    assert result.stdout == ""
    assert snapshot(work["folder"]) == before  # nothing written, nothing changed, no partial files

    debug = run("--debug", *args)
    assert debug.exit_code == 1
    assert type(debug.exception) is error_class, repr(debug.exception)
    assert str(debug.exception) == line.removeprefix("error: ")
    assert "error: " not in debug.stderr
    assert snapshot(work["folder"]) == before


# ---------------------------------------------------------------- help and README

def _command_paths(group, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(getattr(group, "commands", {}).items()):
        paths.append((*prefix, name))
        paths += _command_paths(command, (*prefix, name))
    return paths


COMMAND_PATHS = _command_paths(cli)


def test_command_tree_is_complete():
    top = {path[0] for path in COMMAND_PATHS}
    assert {"list", "show", "render", "check", "new", "client", "cache", "voices"} <= top
    assert {("client", "new"), ("client", "check"), ("cache", "info"), ("cache", "clear"),
            ("voices", "try")} <= set(COMMAND_PATHS)


@pytest.mark.parametrize("path", [()] + COMMAND_PATHS, ids=lambda p: " ".join(p) or "compassion-audio")
def test_every_command_has_help_with_an_example(path):
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    examples = _examples(result.stdout)
    assert examples, result.stdout
    shown = []
    for example in examples:
        words = shlex.split(example)
        assert words[0] == "compassion-audio", example
        # The command the example runs (a help may show a next step with another command)...
        named = max((p for p in COMMAND_PATHS if tuple(words[1:1 + len(p)]) == p), key=len, default=None)
        assert named is not None, example
        shown.append(named)
        # ...called with options that command has.
        command = _command_at(named)
        known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        used = {w.split("=", 1)[0] for w in words[1 + len(named):] if w.startswith("-")}
        assert used <= known | {"--help"}, (example, used - known)
    # At least one example shows the command itself (or one of its subcommands).
    assert any(named[:len(path)] == path for named in shown), examples


def _examples(help_text: str) -> list[str]:
    """The indented lines under the help's "Example:" or "Examples:" heading."""
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in ("Example:", "Examples:"):
            block = []
            for follow in lines[i + 1:]:
                if not follow.strip():
                    break
                block.append(follow.strip())
            return block
    return []


def _command_at(path: tuple[str, ...]):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def test_every_top_level_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in sorted({p[0] for p in COMMAND_PATHS})
               if not re.search(rf"compassion-audio {re.escape(name)}\b", readme)]
    assert missing == []


# ---------------------------------------------------------------- authoring, clients, cache, voices

def test_new_writes_a_template_check_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("new", "morning-kindness")
    assert result.exit_code == 0, result.output
    path = tmp_path / "morning-kindness.txt.j2"
    assert result.stdout == ("Wrote morning-kindness.txt.j2; check it with: "
                             "compassion-audio check morning-kindness.txt.j2\n")
    text = path.read_bytes()
    assert text.startswith(b"+++\n")
    check = run("check", "morning-kindness.txt.j2")
    assert check.exit_code == 0, check.output
    assert check.stderr == ""
    out = check.stdout.splitlines()
    assert out[-1] == "No problems found."
    ex = library.find_exercise(str(path))
    durations = [l for l in out if re.match(r"^  (short|standard|long) +(group|individual) +(empty|full) +profile  ~ *\d+\.\d min$", l)]
    assert len(durations) == len(ex.lengths) * (2 if ex.group else 1) * 2, out
    # Not replaced without --force; replaced with it.
    path.write_text("Edited by hand.\n", encoding="utf-8")
    again = run("new", "morning-kindness")
    assert_one_error_line(again, "error: morning-kindness.txt.j2 already exists: choose another name or add --force")
    assert path.read_text(encoding="utf-8") == "Edited by hand.\n"
    forced = run("new", "morning-kindness", "--force")
    assert forced.exit_code == 0 and path.read_bytes() == text
    assert partials(tmp_path) == []


def test_check_names_the_problems(tmp_path):
    bad = tmp_path / "bad.txt.j2"
    bad.write_text('+++\ntitle = "Bad"\n[params]\n'
                   'unused = { type = "str", default = "", help = "never used" }\n+++\n'
                   "Hello {{ nme }}.\n", encoding="utf-8")
    result = run("check", bad)
    assert result.exit_code == 1, result.output
    assert "No problems found." not in result.stdout
    problems = result.stderr.splitlines()
    assert problems and all(p.startswith(f"{bad}:") for p in problems), problems
    assert any(p.startswith(f"{bad}:6: error: ") and "'nme'" in p for p in problems), problems
    assert any(p.startswith(f"{bad}:4: warning: ") and "'unused'" in p for p in problems), problems
    assert "Traceback" not in result.output


def test_client_new_is_private_and_client_check_accepts_it(tmp_path):
    path = tmp_path / "clients" / "jane.toml"
    result = run("client", "new", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Wrote {path}: fill it in, then use --client {path}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check = run("client", "check", path)
    assert check.exit_code == 0, check.output
    assert check.stdout == f"{path}: valid; sets nothing\n"
    # Fill two values in by uncommenting them: the check names the keys, never the values.
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'^# name = ".*"$', 'name = "Philippa"', text, count=1, flags=re.M)
    text = re.sub(r"^# breaths_per_min = .*$", "breaths_per_min = 5", text, count=1, flags=re.M)
    path.write_text(text, encoding="utf-8")
    filled = run("client", "check", path)
    assert filled.exit_code == 0, filled.output
    assert filled.stdout == f"{path}: valid; sets breathing.breaths_per_min, name\n"
    assert "Philippa" not in filled.output


def test_cache_info_and_clear(tiny_render, tmp_path):
    import shutil

    assert tiny_render["first"].exit_code == 0
    cache = tmp_path / "cache"
    shutil.copytree(tiny_render["cache"], cache)
    (cache / "notes.txt").write_text("someone else's file\n", encoding="utf-8")
    ours = [p for p in cache.glob("??/*") if p.is_file()]  # one file a phrase (speech/cache.py)
    assert ours, "the render cached nothing"
    info = run("cache", "info", "--cache-dir", cache)
    assert info.exit_code == 0, info.output
    assert info.stdout.startswith(f"{cache}: {len(ours)} phrases, ")
    by_env = run("cache", "info", env={"COMPASSION_AUDIO_CACHE": str(cache)})
    assert by_env.stdout == info.stdout
    clear = run("cache", "clear", "--cache-dir", cache)
    assert clear.exit_code == 0, clear.output
    assert clear.stdout.startswith(f"Removed {len(ours)} phrases (")
    assert snapshot(cache)["notes.txt"] == b"someone else's file\n"   # only its own files go
    assert not list(cache.glob("??"))
    assert run("cache", "info", "--cache-dir", cache).stdout.startswith(f"{cache}: 0 phrases, 0 bytes\n")


def test_voices_lists_the_shipped_profiles():
    result = run("voices")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    shipped = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
    assert "heart" in shipped and "calm-female" in shipped and "calm-male" in shipped
    rows = {line[4:].split()[0]: line for line in lines if line[:4] in ("ok  ", "n/a ")}
    assert sorted(rows) == shipped
    assert rows["heart"].startswith("ok ") and rows["heart"].endswith("(default)")
    assert rows["calm-female"].startswith("ok ") and rows["calm-male"].startswith("ok ")
    assert [name for name, line in rows.items() if "(default)" in line] == ["heart"]
    assert re.fullmatch(r"\.\.\. and \d+ engine voices usable by id \(--all lists them\), e\.g\. --voice en-gb",
                        lines[-1]), lines[-1]


def test_voices_try_writes_a_sample(tmp_path):
    out = tmp_path / "samples" / "calm-male.wav"
    result = run("voices", "try", "calm-male", "Hello.", "-o", out)
    assert result.exit_code == 0, result.output
    name = tomllib.loads((PROFILES_DIR / "calm-male.toml").read_text(encoding="utf-8"))["name"]
    match = re.fullmatch(rf"Wrote (.+) \((\d+\.\d) s, {re.escape(name)}\)", result.stdout.strip())
    assert match and Path(match.group(1)) == out, result.stdout
    samples = decode(out)
    assert abs(samples.size / SR - float(match.group(2))) <= 0.05 + 0.05   # printed to 0.1 s
    runs = sounding_runs(samples, SR)
    assert len(runs) == 1, runs            # one word, no bells
    start, end = runs[0]
    assert 0.2 <= end - start <= 1.5, runs   # "Hello." is a short word
    assert abs(start - 0.3) <= PAUSE_TOLERANCE, runs   # the sample's 0.3 s lead-in
    assert partials(out.parent) == []


# ---------------------------------------------------------------- privacy

def _tag_text(path: Path) -> str:
    """Every text value in the file's tags, chapter titles included."""
    audio = mutagen.File(path)
    assert audio is not None and audio.tags is not None
    parts = []
    for frame in audio.tags.values():
        parts.append(str(frame))
        for sub in getattr(frame, "sub_frames", {}).values():
            parts.append(str(sub))
    return "\n".join(parts)


def _raw_contains(path: Path, text: str) -> bool:
    data = path.read_bytes()
    return any(text.encode(enc) in data for enc in ("utf-8", "utf-16-le", "utf-16-be"))


def test_default_output_name_and_tags_carry_no_client_name(privacy):
    result = privacy["plain"]
    assert result.exit_code == 0, result.output
    assert privacy["after_plain"] == ["compassionate-self-short.mp3"]
    match = WROTE.match(result.stdout.splitlines()[0])
    assert match and match["path"] == "output/compassionate-self-short.mp3", result.stdout
    path = privacy["cwd"] / "output" / "compassionate-self-short.mp3"
    assert NAME.lower() not in path.name.lower()
    tags = _tag_text(path)
    assert tags and NAME.lower() not in tags.lower()
    assert not _raw_contains(path, NAME)
    assert mutagen.File(path).tags["TIT2"].text == [library.find_exercise("compassionate-self").title]
    assert NAME not in result.output                  # nor in what the command printed
    # The client was really spoken to: the personalised script, one phrase each.
    script = templates.render_script(library.find_exercise("compassionate-self"), {"name": NAME},
                                     length="short")
    assert f"Welcome, {NAME}." in [s.text for s in script.speech]
    assert int(match["phrases"]) == len({s.text for s in script.speech})
    # The track itself: MP3 at 44.1 kHz, as long as printed, at -16 LUFS.
    audio = mutagen.File(path)
    assert audio.info.sample_rate == SR
    samples = decode(path)
    assert abs(samples.size / SR - (int(match["m"]) * 60 + int(match["s"]))) <= 0.5
    assert len(sounding_runs(samples, SR)) >= 10
    level = ebur128(path)
    assert abs(level["integrated"] - -16.0) <= FILE_LOUDNESS_LU, level
    assert level["true_peak"] <= -1.0, level


def test_name_in_file_puts_the_name_in_file_name_and_title(privacy):
    result = privacy["named"]
    assert result.exit_code == 0, result.output
    added = sorted(set(privacy["after_named"]) - set(privacy["after_plain"]))
    assert added == ["zebedee-compassionate-self-short.mp3"]
    match = WROTE.match(result.stdout.splitlines()[0])
    assert match and match["path"] == "output/zebedee-compassionate-self-short.mp3", result.stdout
    assert match["new"] == "0"                       # every phrase came from the shared cache
    path = privacy["cwd"] / "output" / added[0]
    title = mutagen.File(path).tags["TIT2"].text
    assert title == [f"{library.find_exercise('compassionate-self').title} - for {NAME}"]
    assert len(decode(path)) > 0
    assert partials(privacy["cwd"]) == []
