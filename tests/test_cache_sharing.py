"""One phrase cache shared by renders running at once, cleared under them, on a full disk,
bounded, and private with --no-cache: real `compassion-audio` processes with espeak-ng."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.speech import cache_upkeep as upkeep
from compassion_audio.speech.cache import ClipCache, PhraseKey

from .cache_helpers import (CLI, decoded, entries, entry_parts, files_containing, newly_spoken, render,
                            render_args, write_script)
from .conftest import FakeEngine, sounding_runs, spoken_clips

SHARED = [f"This is shared sentence number {n}, spoken slowly and kindly." for n in range(1, 25)]
LONG_SCRIPT = "+++\ntitle = \"Shared\"\n[params]\nname = { type = \"str\", default = \"friend\" }\n+++\n" + \
    "Welcome, {{ name }}.\n[pause 0.5s]\n" + "\n[pause 0.5s]\n".join(SHARED) + \
    "\n[pause 0.5s]\nThank you, {{ name }}, for practising today.\n"
NAMES = ["Quintessa", "Bartholomew", "Ottoline"]


def spoken_phrases(out: Path) -> int:
    return len(sounding_runs(decoded(out), 44100, min_gap_seconds=0.42))  # commas: 0.26-0.35 s


def test_six_concurrent_renders_share_one_cache_and_speak_each_phrase_once(tmp_path):
    script = write_script(tmp_path, LONG_SCRIPT)
    cache = tmp_path / "cache"
    names = NAMES * 2
    started = time.monotonic()
    procs = [subprocess.Popen(render_args(script, tmp_path / f"out{i}.wav", name=name, cache=cache, debug=True),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, name in enumerate(names)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    elapsed = time.monotonic() - started
    for proc, out, err in results:
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "error" not in err.lower().replace("debug:", "")
    spoken = [newly_spoken(subprocess.CompletedProcess([], 0, out, err)) for _, out, err in results]
    distinct = len(SHARED) + 2 * len(NAMES)
    # Every phrase spoken once across the six renders, and stored once.
    assert sum(spoken) == distinct, spoken
    assert len(entries(cache)) == distinct
    waits = sum(err.count("waited") for _, _, err in results)
    print(f"\n6 renders in {elapsed:.1f} s; spoken per render {spoken}; {waits} waits for another render")
    # The same request gives the same file, whichever render spoke which phrase.
    for i, name in enumerate(NAMES):
        first, second = tmp_path / f"out{i}.wav", tmp_path / f"out{i + 3}.wav"
        assert first.read_bytes() == second.read_bytes()
        assert np.array_equal(decoded(first), decoded(second))
    assert spoken_phrases(tmp_path / "out0.wav") == 2 + len(SHARED)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from pathlib import Path
    from compassion_audio.speech.cache import ClipCache, PhraseKey
    root, frames, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with ClipCache(root) as cache:
        for i in range(count):
            key = PhraseKey({"engine": "race"}, f"phrase {i}", 44100)
            clip = cache.put(key, np.full(frames, frames / 1e5, np.float32), 0, 0)
            print(i, clip.frames, flush=True)
""")


def test_the_first_complete_entry_wins_between_processes(tmp_path):
    """Two renders speak the same phrases with different lengths (espeak can): both go on
    with the take that was stored first, never a mix."""
    count = 60
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "c"), str(frames), str(count)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for frames in (27998, 27996)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    got = [dict(line.split() for line in out.splitlines()) for out, _ in outs]
    assert got[0] == got[1]  # each phrase: both processes had the same take
    with ClipCache(tmp_path / "c") as cache:
        for i in range(count):
            clip = cache.get(PhraseKey({"engine": "race"}, f"phrase {i}", 44100))
            samples = np.load(clip.path, mmap_mode="r")
            assert samples.shape == (clip.frames,) == (int(got[0][str(i)]),)
            assert np.all(samples == np.float32(clip.frames / 1e5))
    print(f"\nfirst writer's take per phrase: {sorted(set(got[0].values()))}")


class SlowEngine(FakeEngine):
    """The fake engine, 30 ms a phrase: long enough for renders on threads to overlap."""

    def synthesize(self, text):
        time.sleep(0.03)
        return super().synthesize(text)


def test_renders_on_threads_of_one_process_share_the_cache_too(tmp_path):
    """An album's workers may be threads: the phrase locks are per open file, so they hold
    between threads as between processes."""
    sentences = [f"Phrase number {n} is here." for n in range(30)]
    engines = [SlowEngine() for _ in range(4)]
    results = [None] * 4

    def one(i):
        with ClipCache(tmp_path / "c") as cache:
            clips = spoken_clips(sentences, engines[i], cache, sample_rate=44100)
            results[i] = {s: np.load(c.path).tobytes() for s, c in clips.items()}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(e.calls) for e in engines) == len(sentences)
    assert sorted(c for e in engines for c in e.calls) == sorted(sentences)
    assert results[0] == results[1] == results[2] == results[3]
    print(f"\nphrases spoken per thread: {[len(e.calls) for e in engines]}")


READER = textwrap.dedent("""
    import sys, time, numpy as np
    from pathlib import Path
    from compassion_audio.speech.cache import ClipCache, PhraseKey
    root, seconds = Path(sys.argv[1]), float(sys.argv[2])
    key = PhraseKey({"engine": "race"}, "the raced phrase", 44100)
    hits = misses = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with ClipCache(root) as cache:
            clip = cache.get(key)
            if clip is None:
                misses += 1
                continue
            x = np.load(clip.path, mmap_mode="r")
            assert x.shape == (clip.frames,), (x.shape, clip.frames)
            assert np.all(x == np.float32(clip.frames / 1e5)), "mixed takes"
            hits += 1
    print(hits, misses)
""")


def test_readers_racing_a_writer_on_one_key_never_see_a_partial_entry(tmp_path):
    """A writer (a thread and a process) clears the cache and stores a take of another length,
    over and over; readers (threads and a process) read the key meanwhile. A reader either
    misses or reads a whole take - the one its entry says - that stays while it uses it."""
    root = tmp_path / "c"
    key = PhraseKey({"engine": "race"}, "the raced phrase", 44100)
    seconds = 4.0
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = {"hits": 0, "misses": 0, "writes": 0}

    def writer(lengths):
        while not stop.is_set():
            for frames in lengths:
                with ClipCache(root) as cache:
                    cache.put(key, np.full(frames, frames / 1e5, np.float32), 0, 0)
                upkeep.clear(root)
                counts["writes"] += 1

    def reader():
        try:
            while not stop.is_set():
                with ClipCache(root) as cache:
                    clip = cache.get(key)
                    if clip is None:
                        counts["misses"] += 1
                        continue
                    time.sleep(0.001)  # a render plans with the clip, then reads it
                    x = np.load(clip.path, mmap_mode="r")
                    assert x.shape == (clip.frames,)
                    assert np.all(x == np.float32(clip.frames / 1e5))
                    counts["hits"] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer_process = subprocess.Popen([sys.executable, "-c", _WRITE_AND_CLEAR, str(root), str(seconds)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader_process = subprocess.Popen([sys.executable, "-c", READER, str(root), str(seconds)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=writer, args=([27998, 27996, 30000],))] + \
        [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    out, err = reader_process.communicate(timeout=60)
    assert reader_process.returncode == 0, err
    w_out, w_err = writer_process.communicate(timeout=60)
    assert writer_process.returncode == 0, w_err
    assert not errors, errors
    process_hits, process_misses = map(int, out.split())
    print(f"\nthreads: {counts}; reader process: {process_hits} hits, {process_misses} misses; "
          f"writer process: {w_out.strip()} rounds")
    # The race really happened on each side (counts fall on a loaded machine; a few suffice).
    assert min(counts["hits"], counts["misses"], process_hits, process_misses) >= 3


_WRITE_AND_CLEAR = textwrap.dedent("""
    import sys, time, numpy as np
    from pathlib import Path
    from compassion_audio.speech import cache_upkeep as upkeep
    from compassion_audio.speech.cache import ClipCache, PhraseKey
    root, seconds = Path(sys.argv[1]), float(sys.argv[2])
    key = PhraseKey({"engine": "race"}, "the raced phrase", 44100)
    rounds = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for frames in (12000, 44100):
            with ClipCache(root) as cache:
                cache.put(key, np.full(frames, frames / 1e5, np.float32), 0, 0)
            upkeep.clear(root)
            rounds += 1
    print(rounds)
""")


def test_cache_clear_during_a_render_does_not_disturb_it(tmp_path, reference):
    script, reference_wav = reference
    cache = tmp_path / "cache"
    proc = subprocess.Popen(render_args(script, tmp_path / "out.wav", name="Quintessa", cache=cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    commands, removals = [], []

    def clear_with_the_command():
        while proc.poll() is None:
            commands.append(subprocess.run([CLI, "cache", "clear", "--cache-dir", str(cache)],
                                           capture_output=True, text=True, timeout=60))

    beside = threading.Thread(target=clear_with_the_command)
    beside.start()
    while proc.poll() is None:  # and as often as the library can
        removals.append(upkeep.clear(cache))
        time.sleep(0.02)
    beside.join()
    out, err = proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert commands and all(c.returncode == 0 and "Traceback" not in c.stderr for c in commands)
    # Clears ran while the render held entries: those were kept for it, the others removed.
    kept = [r for r in removals if r.kept_in_use]
    print(f"\n{len(removals) + len(commands)} clears during the render; {len(kept)} kept entries it "
          f"used; {sum(r.removed for r in removals)} entries removed under it")
    assert kept and sum(r.removed for r in removals) > 0
    samples, ref = decoded(tmp_path / "out.wav"), decoded(reference_wav)
    # The same track (espeak may speak a fresh worker's phrases a few frames differently).
    assert abs(samples.size - ref.size) < 0.001 * ref.size
    assert spoken_phrases(tmp_path / "out.wav") == spoken_phrases(reference_wav) == 2 + len(SHARED)
    assert np.isfinite(samples).all() and np.abs(samples).max() < 1.0


def test_a_vanished_cache_folder_is_made_again(tmp_path):
    root = tmp_path / "c"
    with ClipCache(root) as cache:
        first = cache.put(PhraseKey({"e": 1}, "one", 44100), np.full(100, 0.1, np.float32), 0, 0)
        shutil.rmtree(root)
        second = cache.put(PhraseKey({"e": 1}, "two", 44100), np.full(100, 0.2, np.float32), 0, 0)
        assert cache.get(PhraseKey({"e": 1}, "one", 44100)) is None  # a vanished entry is a miss
        assert np.all(np.load(second.path) == np.float32(0.2)) and not first.path.exists()


def test_a_killed_render_leaves_no_lock_behind(tmp_path, reference):
    """kill -9 while phrases are being spoken: its locks die with it (a waiting render goes
    on at once), and the next render removes the files they were in."""
    script, _ = reference
    cache = tmp_path / "cache"
    proc = subprocess.Popen(render_args(script, tmp_path / "out.wav", name="Quintessa", cache=cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(entries(cache)) < 3:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.kill()
    proc.communicate()
    left = sorted(p.name for p in [*cache.glob(".inuse/*.keys"), *cache.glob(".locks/*.lock")])
    started = time.monotonic()
    after = render(script, tmp_path / "after.wav", name="Quintessa", cache=cache, debug=True)
    assert after.returncode == 0, after.stderr
    assert "waited" not in after.stderr  # nothing was held by the dead render
    assert list(cache.glob(".inuse/*.keys")) == [] and list(cache.glob(".locks/*.lock")) == []
    assert not list(cache.glob("*/.*.partial.npy"))
    print(f"\nleft by the killed render: {left}; next render {time.monotonic() - started:.1f} s")
    assert spoken_phrases(tmp_path / "after.wav") == 2 + len(SHARED)


def _spool_dirs(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("compassion-audio-clips-*"))


def _wait_for_spooled_clips(tmpdir: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not any(list(d.glob("*/*.npy")) for d in _spool_dirs(tmpdir)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)


@pytest.fixture
def private_tmp(tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    return tmpdir, env


CLIENT = "Zebulonia"


def test_no_cache_leaves_no_client_text_under_tmpdir(tmp_path, private_tmp):
    tmpdir, env = private_tmp
    script = write_script(tmp_path, LONG_SCRIPT)
    proc = render(script, tmp_path / "out.wav", name=CLIENT, cache=None, env=env)
    assert proc.returncode == 0, proc.stderr
    assert files_containing(tmpdir, CLIENT) == []
    assert _spool_dirs(tmpdir) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_no_cache_render_leaves_no_client_text_and_the_next_run_sweeps(tmp_path, private_tmp, sig):
    tmpdir, env = private_tmp
    script = write_script(tmp_path, LONG_SCRIPT)
    proc = subprocess.Popen(render_args(script, tmp_path / "out.wav", name=CLIENT, cache=None),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_spooled_clips(tmpdir, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert files_containing(tmpdir, CLIENT) == []
    if sig == signal.SIGTERM:  # ends as for Ctrl-C: its temp folder removed at once
        assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
        assert _spool_dirs(tmpdir) == []
    else:
        assert proc.returncode == -signal.SIGKILL and len(_spool_dirs(tmpdir)) == 1
    assert not (tmp_path / "out.wav").exists()
    after = render(write_script(tmp_path / "next"), tmp_path / "next.wav", name="Sam", cache=tmp_path / "c", env=env)
    assert after.returncode == 0, after.stderr
    assert _spool_dirs(tmpdir) == [] and files_containing(tmpdir, CLIENT) == []


@pytest.fixture(params=["full", "read-only", "not-a-folder"])
def unwritable(request, tmp_path):
    """A cache folder on a full 64 KiB tmpfs, or on a read-only one (both as root); else, and
    also, one that cannot be made (a file stands where its parent folder should be)."""
    mount = tmp_path / "small"
    mount.mkdir()
    options = {"full": "size=64k", "read-only": "ro,size=64k"}.get(request.param)
    mounted = options is not None and os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True).returncode == 0
    if options is not None and not mounted:
        pytest.skip("mounting a tmpfs needs root")
    try:
        if request.param == "full":
            with open(mount / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
            yield mount / "cache", "No space left on device"
        elif request.param == "read-only":
            yield mount / "cache", "Read-only file system"
        else:
            (tmp_path / "a-file").write_text("not a folder")
            yield tmp_path / "a-file" / "cache", "Not a directory"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """LONG_SCRIPT for Quintessa, rendered once with a cache of its own."""
    folder = tmp_path_factory.mktemp("reference")
    script = write_script(folder, LONG_SCRIPT)
    proc = render(script, folder / "reference.wav", name="Quintessa", cache=folder / "cache")
    assert proc.returncode == 0, proc.stderr
    return script, folder / "reference.wav"


def test_a_cache_that_cannot_be_written_gives_one_warning_and_a_good_track(tmp_path, unwritable, reference):
    cache, reason = unwritable
    script, reference_wav = reference
    proc = render(script, tmp_path / "out.wav", name="Quintessa", cache=cache)
    assert proc.returncode == 0, proc.stderr
    warning = f"warning: the phrase cache at {cache} cannot be written ({reason}); rendering without it"
    assert proc.stderr.splitlines().count(warning) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
    assert newly_spoken(proc) == 2 + len(SHARED)
    samples, ref = decoded(tmp_path / "out.wav"), decoded(reference_wav)
    if samples.shape != ref.shape or not np.array_equal(samples, ref):
        # espeak may speak a fresh worker's phrases a few frames differently (see test_cache_integrity)
        assert abs(samples.size - ref.size) < 0.001 * ref.size
    assert spoken_phrases(tmp_path / "out.wav") == 2 + len(SHARED)
    assert np.isfinite(samples).all() and np.abs(samples).max() < 1.0


def _fill(root: Path, count: int, frames: int = 25000) -> list[PhraseKey]:
    keys = [PhraseKey({"e": 1}, f"phrase {i}", 44100) for i in range(count)]
    with ClipCache(root, max_bytes=None) as cache:
        for i, key in enumerate(keys):
            clip = cache.put(key, np.full(frames, 0.1, np.float32), 0, 0)
            os.utime(clip.path, (1_000_000 + i, 1_000_000 + i))  # phrase i last used at second i
    return keys


def test_prune_takes_the_least_recently_used_first_and_respects_the_cap(tmp_path):
    root = tmp_path / "c"
    keys = _fill(root, 10)
    size = entries(root)[0].stat().st_size
    with ClipCache(root, max_bytes=None) as cache:
        assert cache.get(keys[0]) is not None and cache.get(keys[1]) is not None  # used just now
    result = upkeep.prune(root, 4 * size + size // 2)
    assert (result.removed, result.remaining_bytes) == (6, 4 * size)
    with ClipCache(root, max_bytes=None) as cache:
        kept = [i for i, key in enumerate(keys) if cache.get(key) is not None]
    assert kept == [0, 1, 8, 9]


def test_prune_keeps_what_a_running_render_uses(tmp_path):
    root = tmp_path / "c"
    keys = _fill(root, 4)
    with ClipCache(root, max_bytes=None) as running:
        clip = running.get(keys[0])  # the oldest, but in use
        result = upkeep.prune(root, 0)
        assert (result.removed, result.kept_in_use) == (3, 1)
        assert np.load(clip.path, mmap_mode="r").shape == (clip.frames,)
    assert upkeep.prune(root, 0).removed == 1


def test_the_size_cap_applies_after_a_render(tmp_path):
    """$COMPASSION_AUDIO_CACHE_MAX: a render that adds entries prunes to 90 % of the cap."""
    script = write_script(tmp_path)
    cache = tmp_path / "cache"
    env = dict(os.environ, COMPASSION_AUDIO_CACHE_MAX="3M")
    for name in NAMES:
        proc = render(script, tmp_path / f"{name}.wav", name=name, cache=cache, env=env)
        assert proc.returncode == 0, proc.stderr
        assert upkeep.cache_info(cache).size_bytes <= 3 * 1024 ** 2
    texts = [entry_parts(p)[2]["material"]["text"] for p in entries(cache)]
    assert any(NAMES[-1] in t for t in texts)  # the latest render's phrases were kept
    assert not any(NAMES[0] in t for t in texts)  # the least recently used went


def test_cache_info_and_clear_one_client(tmp_path):
    script = write_script(tmp_path)
    cache = tmp_path / "cache"
    for name in ("Quintessa", "Bartholomew"):
        assert render(script, tmp_path / f"{name}.wav", name=name, cache=cache).returncode == 0
    info = subprocess.run([CLI, "cache", "info", "--cache-dir", str(cache)], capture_output=True, text=True)
    lines = info.stdout.splitlines()
    assert lines[0].startswith(f"{cache}: 8 phrases, ") and lines[0].endswith("MiB")
    assert lines[1].startswith("  last used: oldest 20") and lines[2].startswith("  size cap: 2.0 GiB")
    profile = tmp_path / "q.toml"
    profile.write_text('name = "Quintessa"\nstrengths = ["patience", "Quintessa-like calm"]\n')
    cleared = subprocess.run([CLI, "cache", "clear", "--client", str(profile), "--cache-dir", str(cache)],
                             capture_output=True, text=True)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("Removed 2 phrases of that client (")
    assert files_containing(cache, "Quintessa") == []
    assert len(files_containing(cache, "Bartholomew")) == 2 and len(entries(cache)) == 6
    # The phrase cache's own folders and files (not what other parts keep beside it).
    ours = [cache, *cache.glob("??"), *cache.glob("??/*"), *cache.glob(".inuse*"), *cache.glob(".inuse/*"),
            *cache.glob(".locks*")]
    assert len(ours) > 6
    for path in ours:
        assert oct(path.stat().st_mode & 0o777) == ("0o700" if path.is_dir() else "0o600"), path
