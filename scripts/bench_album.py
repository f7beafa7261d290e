"""The album section of scripts/bench.py (alone: ./scripts/bench --only-album).

Measures with espeak-ng (calm-female), each build from a cold phrase cache unless said:
an 8-track album of standard-length practices built with --jobs 2 against --jobs 1; a warm
rebuild after one track's value changed against rendering that one track alone; a clinic batch
of 10 client profiles x 4 practices (phrases synthesised against phrases in the batch, and the
time against 40 separate `render` calls); the peak memory of the album process and of its
workers with --jobs 2; and `render`'s "up to date" check on a 30-minute track.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

EIGHT = ("soothing-rhythm-breathing", "three-systems", "compassionate-place", "compassionate-colour",
         "compassion-flows", "criticism-kindness-contrast", "daily-compassionate-act", "breathing-pacer")
CLINIC = ("compassionate-place", "compassionate-self", "soothing-rhythm-breathing", "daily-compassionate-act")
NAMES = ("Ana", "Ben", "Chloe", "Dev", "Ema", "Farid", "Gita", "Hugo", "Ines", "Jon")
PLACES = ("a quiet beach", "a pine forest", "a mountain lake", "a walled garden", "a warm kitchen",
          "a river bank", "a meadow at dawn", "a library", "a small boat", "a hillside")

# Runs the CLI in a child and reports its wall time and peak memory: its own (the album process)
# and its largest descendant's (a worker, or an engine or ffmpeg process).
CLI_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    t = time.perf_counter()
    from compassion_audio.cli.app import cli
    try:
        cli.main(args=sys.argv[1:], prog_name="compassion-audio", standalone_mode=False)
    except SystemExit:
        pass
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps({"wall": time.perf_counter() - t, "own_mb": me.ru_maxrss / 1024,
                      "child_mb": kids.ru_maxrss / 1024, "cpu": cpu}))
""")

# The clinic batch through the library, to count phrases per track and across the batch.
BATCH_CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    t = time.perf_counter()
    from compassion_audio.album import BuildOptions, build_albums, load_manifest, local_executor, plan_albums
    manifest, clients, out, cache, jobs = sys.argv[1:6]
    plans = plan_albums(load_manifest(Path(manifest)), BuildOptions(output=Path(out), clients=Path(clients),
                                                                    cache_dir=Path(cache)))
    executor = local_executor(int(jobs))
    try:
        report = build_albums(plans, executor, max_in_flight=int(jobs))
    finally:
        executor.shutdown()
    wall = time.perf_counter() - t
    outcomes = [o for a in report.albums for o in a.outcomes]
    per_album = [set(s.text for t in p.tracks for s in t.resolved.script.speech) for p in plans]
    every = set().union(*per_album)
    own = set.union(*[a - set().union(*(b for b in per_album if b is not a)) for a in per_album])
    print(json.dumps({"wall": wall, "failed": report.count("failed"), "tracks": len(outcomes),
                      "uses": sum(o.phrases for o in outcomes), "spoken": sum(o.synthesised for o in outcomes),
                      "distinct": len(every), "client_only": len(own)}))
""")


def _cli(args: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CLI_CHILD, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "output": "\n".join(lines[:-1])}


def _manifest(folder: Path, exercises, *, title: str, length: str, extra: dict | None = None) -> Path:
    lines = ["[album]", f'title = "{title}"', 'voice = "calm-female"', f'length = "{length}"', ""]
    for exercise in exercises:
        lines += ["[[track]]", f'exercise = "{exercise}"']
        lines += [f"set = {{ {extra[exercise]} }}"] if extra and exercise in extra else []
        lines.append("")
    path = folder / f"{title.replace(' ', '-').lower()}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def album_section(work: Path, runs: int = 3) -> dict:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    eight = _manifest(work, EIGHT, title="Eight practices", length="standard")
    ones, twos = [], []
    for run in range(runs):  # alternately, each from a cold cache into an empty folder; medians
        for jobs, runs_of in (("1", ones), ("2", twos)):
            runs_of.append(_cli(["album", str(eight), "-o", str(work / f"a{jobs}-{run}"), "--jobs", jobs,
                                 "--cache-dir", str(work / f"c{jobs}-{run}"), "-q"], env))
    one, two = (sorted(r, key=lambda x: x["wall"])[len(r) // 2] for r in (ones, twos))
    # The rebuilds below start from the first --jobs 1 album.
    os.rename(work / "a1-0", work / "a1")
    os.rename(work / "c1-0", work / "c1")
    # One track changed: a value of compassionate-place. The album again (warm cache but for the
    # new phrase) against that track rendered alone with another new value (one new phrase too).
    edited = _manifest(work, EIGHT, title="Eight practices", length="standard",
                       extra={"compassionate-place": '"place.smell" = "pine needles"'})
    rebuild = _cli(["album", str(edited), "-o", str(work / "a1"), "--jobs", "1", "--cache-dir", str(work / "c1"), "-q"],
                   env)
    alone = _cli(["render", "compassionate-place", "--voice", "calm-female", "-s", "place.smell=cedar wood",
                  "-o", str(work / "alone.mp3"), "--cache-dir", str(work / "c1"), "-q"], env)
    return {"one": one, "two": two, "runs": runs, "load": os.getloadavg()[0], "rebuild": rebuild, "alone": alone,
            "clinic": clinic_batch(work, env), "up_to_date": up_to_date_check(work, env),
            "cluster": cluster_vs_jobs(work / "dask", env, runs)}


def cluster_vs_jobs(work: Path, env: dict, runs: int = 3) -> dict:
    """The same 8-track album (short lengths) built with `--scheduler` on a LocalCluster of 2 single-thread
    worker processes and with `--jobs 2`, alternately, each from a cold phrase cache; medians, and whether
    the two albums are byte-identical. The cluster is started (and its workers warmed) before timing:
    a cluster outlives one album. Needs distributed."""
    from distributed import Client, LocalCluster

    work.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(work, EIGHT, title="Eight short", length="short")
    pools, clusters = [], []
    for run in range(runs):
        pools.append(_cli(["album", str(manifest), "-o", str(work / f"jobs-{run}"), "--jobs", "2",
                           "--cache-dir", str(work / f"cj-{run}"), "-q"], env))
        # Each run's workers get a cold cache of their own, as --jobs 2 does.
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, env={"COMPASSION_AUDIO_CACHE": str(work / f"cd-{run}")}) as cluster:
            with Client(cluster, set_as_default=False) as client:
                # A long-lived worker has imported the renderer after its first album.
                client.run(importlib.import_module, "compassion_audio.album.jobs")
            clusters.append(_cli(["album", str(manifest), "-o", str(work / f"dask-{run}"), "-q",
                                  "--scheduler", cluster.scheduler_address], env))
    pool, dask = (sorted(r, key=lambda x: x["wall"])[len(r) // 2] for r in (pools, clusters))
    # espeak's takes differ by a few samples between engine runs (two cold --jobs 2 builds differ
    # too), so identity is checked with the same takes: workers on the first --jobs 2 build's cache.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"COMPASSION_AUDIO_CACHE": str(work / "cj-0")}) as cluster:
        _cli(["album", str(manifest), "-o", str(work / "dask-same"), "-q", "--scheduler", cluster.scheduler_address],
             env)
    differing = _differing(work / "jobs-0", work / "dask-same")
    return {"jobs2": pool, "dask": dask, "runs": runs, "differing": differing, "load": os.getloadavg()[0]}


def _differing(one: Path, other: Path) -> list[str]:
    """Visible files that are not byte-identical between two album folders (or are in only one)."""
    def files(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    mine, theirs = files(one), files(other)
    return sorted(name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name))


def print_cluster(c: dict) -> None:
    j, d = c["jobs2"]["wall"], c["dask"]["wall"]
    same = "byte-identical" if not c["differing"] else f"{len(c['differing'])} files differ: {', '.join(c['differing'])}"
    print(f"album 8 x short on LocalCluster (2 workers x 1 thread) {d:7.2f} s   --jobs 2 {j:.2f} s   "
          f"ratio {d / j:.2f} x (target within 15 %; medians of {c['runs']})   {same}   "
          f"load average {c['load']:.1f} (2 cores, shared)")


def clinic_batch(work: Path, env: dict) -> dict:
    clients = work / "clients"
    clients.mkdir()
    for i, (name, place) in enumerate(zip(NAMES, PLACES)):
        (clients / f"client{i:02d}.toml").write_text(
            f'name = "{name}"\ndaily_act = "a short walk after lunch"\n[place]\ndescription = "{place}"\n',
            encoding="utf-8")
    manifest = _manifest(work, CLINIC, title="Clinic week", length="short")
    proc = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(manifest), str(clients), str(work / "clinic"),
                           str(work / "c3"), "2"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"clinic batch failed:\n{proc.stderr[-2000:]}")
    batch = json.loads(proc.stdout.strip().splitlines()[-1])
    started, spoken = time.perf_counter(), 0
    for i in range(len(NAMES)):
        for exercise in CLINIC:
            run = _cli(["render", exercise, "--client", str(clients / f"client{i:02d}.toml"), "--length", "short",
                        "--voice", "calm-female", "-o", str(work / "loop" / f"{i}-{exercise}.mp3"),
                        "--cache-dir", str(work / "c4")], env)
            spoken += int(run["output"].split(" newly spoken")[0].rsplit(" ", 1)[-1])
    return {**batch, "loop_wall": time.perf_counter() - started, "loop_spoken": spoken}


def up_to_date_check(work: Path, env: dict) -> dict:
    """`render` of a ~30-minute script, then the same command again: its whole wall time, and
    the check itself (key + tags) in a warm process."""
    from bench import make_script  # scripts/ is on the path when bench.py runs

    script = work / "thirty.txt"
    script.write_text(make_script(30.0), encoding="utf-8")
    out = work / "thirty.mp3"
    args = ["render", str(script), "--voice", "calm-female", "-o", str(out), "--cache-dir", str(work / "c5"), "-q"]
    _cli(args, env)
    again = _cli(args, env)
    check = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from compassion_audio.album.keys import resolve, up_to_date
        from compassion_audio.render import TrackRequest
        from compassion_audio.speech.voices import resolve_voice
        request = TrackRequest(exercise={str(script)!r}, voice_profile=resolve_voice("calm-female"),
                               output=Path({str(out)!r}), cache_dir=Path({str(work / 'c5')!r}))
        times = []
        for _ in range(5):
            t = time.perf_counter()
            assert up_to_date(resolve(request))
            times.append(time.perf_counter() - t)
        print(sorted(times)[2])
    """)], capture_output=True, text=True, env=env, check=True)
    imports = _cli(["--version"], env)
    return {"command": again["wall"], "said": again["output"], "check": float(check.stdout.strip()),
            "imports": imports["wall"]}


def print_album(r: dict) -> None:
    one, two = r["one"], r["two"]
    print(f"album 8 x standard --jobs 1 {one['wall']:7.2f} s   --jobs 2 {two['wall']:.2f} s   "
          f"speed-up {one['wall'] / two['wall']:.2f} x (target >= 1.7 x; medians of {r['runs']})   CPU "
          f"{one['cpu']:.1f} s / {two['cpu']:.1f} s   load average {r['load']:.1f} (2 cores, shared)")
    print(f"album peak RSS --jobs 2: album process {two['own_mb']:.0f} MB, largest worker/child {two['child_mb']:.0f} MB "
          f"(--jobs 1: {one['own_mb']:.0f} MB)")
    print(f"album warm rebuild, one track changed {r['rebuild']['wall']:7.2f} s   that track alone (render) "
          f"{r['alone']['wall']:.2f} s   ratio {r['rebuild']['wall'] / r['alone']['wall']:.2f} x (target <= 1.2 x)")
    c = r["clinic"]
    print(f"clinic batch 10 clients x 4 short: {c['wall']:.2f} s (--jobs 2, {c['failed']} failed)   "
          f"40 separate renders {c['loop_wall']:.2f} s   ratio {c['loop_wall'] / c['wall']:.2f} x")
    print(f"clinic phrases: {c['spoken']} synthesised of {c['uses']} in the batch ({c['distinct']} distinct, "
          f"{c['client_only']} only one client's; target: synthesised = distinct)   40 renders synthesised "
          f"{c['loop_spoken']}")
    u = r["up_to_date"]
    print(f"render up to date (30-min track): check {u['check']:.3f} s in a warm process (target < 0.5 s)   "
          f"whole command {u['command']:.2f} s, of which CLI start-up {u['imports']:.2f} s")
    print_cluster(r["cluster"])
