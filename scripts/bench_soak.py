"""Soak: many consecutive renders in one process, watching for anything that grows. Not a test.

Run it as ``./scripts/bench --soak`` (or ``.venv/bin/python scripts/bench_soak.py --renders 200``).
Each render is a library call (``render_track``) of a short personalised template with espeak-ng
(calm-female), a new client name each time, so every render speaks one new phrase and takes the
others from the cache - as a clinic rendering for one client after another does. After each render
it samples this process: resident memory (VmRSS), open file descriptors, child processes, threads,
the phrase cache (entries, other files, bytes) and its temp folder (entries left). It prints the
first, last and largest of each and a verdict; growth beyond noise is a failure (exit 1):

- memory: the median of the last quarter of renders over the median of the second quarter by more
  than --rss-slack-mb (the first quarter is warm-up: imports, the encoder's and the engine's first use);
- descriptors, child processes, threads, temp folder entries: more after a render than after the
  warm-up renders (a leak of one per render shows at once); any child process or temp entry left
  after the last render;
- cache: an entry more than one per new phrase, or any file that is not an entry piling up.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = """\
+++
title = "Soak"
lengths = ["short"]

[params]
name = { type = "str", default = "" }
+++
[chapter Arriving]
Hello {{ name }}. [pause 1s]
Let the breath be easy. [pause 1s]
Thank you.
"""
SYLLABLES = ("ka", "lo", "mi", "ren", "sa", "to", "vi", "da", "nel", "ori", "pa", "quin", "zu", "bel")
WARM_UP = 3
"""Renders before the baseline of descriptors, processes and threads is taken."""


def client_name(i: int) -> str:
    """A distinct made-up first name for render ``i`` (so its greeting is a new phrase)."""
    a, b, c = SYLLABLES[i % 14], SYLLABLES[(i // 14) % 14], SYLLABLES[(i // 196) % 14]
    return (a + b + c).capitalize()


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _children() -> int:
    return sum(len(p.read_text().split()) for p in Path("/proc/self/task").glob("*/children"))


def _cache(folder: Path) -> tuple[int, int, int]:
    """(entries, other files, bytes) of the phrase cache."""
    entries = other = size = 0
    for path in folder.rglob("*"):
        if path.is_file():
            size += path.stat().st_size
            if path.suffix == ".npy" and len(path.stem) == 64:
                entries += 1
            else:
                other += 1
    return entries, other, size


def sample(cache: Path, temp: Path) -> dict:
    entries, other, size = _cache(cache)
    return {"rss_mb": _status("VmRSS") / 1024, "fds": len(os.listdir("/proc/self/fd")), "children": _children(),
            "threads": _status("Threads"), "entries": entries, "other_files": other, "cache_mb": size / 2**20,
            "temp_entries": len(os.listdir(temp))}


def soak(renders: int, work: Path, voice_name: str) -> list[dict]:
    from compassion_audio.render import TrackRequest, render_track
    from compassion_audio.speech.voices import resolve_voice

    template = work / "soak.txt.j2"
    template.write_text(TEMPLATE, encoding="utf-8")
    cache, out = work / "cache", work / "out"
    out.mkdir()
    voice = resolve_voice(voice_name)
    samples = []
    for i in range(renders):
        started = time.perf_counter()
        result = render_track(TrackRequest(exercise=str(template), values={"name": client_name(i)},
                                           voice_profile=voice, output=out / "soak.mp3", force=True, cache_dir=cache))
        row = sample(cache, Path(tempfile.gettempdir()))
        row.update(seconds=time.perf_counter() - started, spoken=result.synthesised)
        samples.append(row)
        if (i + 1) % 25 == 0 or i == 0:
            print(f"  {i + 1:4d}/{renders}  rss {row['rss_mb']:6.1f} MB  fds {row['fds']}  children {row['children']}  "
                  f"threads {row['threads']}  cache {row['entries']} entries {row['cache_mb']:.2f} MB  "
                  f"{row['seconds']:.2f} s", flush=True)
    return samples


def verdict(samples: list[dict], rss_slack_mb: float) -> list[str]:
    """What grew beyond noise (empty: nothing)."""
    problems = []
    n = len(samples)
    base = samples[min(WARM_UP, n - 1)]
    for key in ("fds", "children", "threads", "temp_entries"):
        worst = max(s[key] for s in samples[WARM_UP:])
        if worst > base[key]:
            problems.append(f"{key}: {base[key]} after render {WARM_UP + 1}, up to {worst} later")
        elif key in ("children", "temp_entries") and samples[-1][key]:
            problems.append(f"{key}: {samples[-1][key]} left after the last render")
    quarter = max(1, n // 4)
    early = statistics.median(s["rss_mb"] for s in samples[quarter:2 * quarter])
    late = statistics.median(s["rss_mb"] for s in samples[-quarter:])
    if late - early > rss_slack_mb:
        problems.append(f"memory: median {early:.1f} MB in the second quarter, {late:.1f} MB in the last "
                        f"(+{late - early:.1f} MB > {rss_slack_mb:g} MB)")
    new_phrases = sum(s["spoken"] for s in samples)
    if samples[-1]["entries"] != new_phrases:
        problems.append(f"cache: {samples[-1]['entries']} entries for {new_phrases} phrases spoken")
    if samples[-1]["other_files"] > samples[0]["other_files"]:
        problems.append(f"cache: files that are not entries grew from {samples[0]['other_files']} "
                        f"to {samples[-1]['other_files']}")
    return problems


def report(samples: list[dict]) -> None:
    print(f"{'':14s}{'first':>10s}{'last':>10s}{'max':>10s}")
    for key, fmt in (("rss_mb", "{:10.1f}"), ("fds", "{:10d}"), ("children", "{:10d}"), ("threads", "{:10d}"),
                     ("temp_entries", "{:10d}"), ("entries", "{:10d}"), ("other_files", "{:10d}"),
                     ("cache_mb", "{:10.2f}"), ("seconds", "{:10.2f}")):
        values = [s[key] for s in samples]
        print(f"{key:14s}" + "".join(fmt.format(v) for v in (values[0], values[-1], max(values))))
    growth = (samples[-1]["cache_mb"] - samples[0]["cache_mb"]) / max(1, len(samples) - 1)
    print(f"cache growth {growth * 1024:.1f} KB per render (one new phrase each); "
          f"phrases spoken {sum(s['spoken'] for s in samples)} in {len(samples)} renders; "
          f"median render {statistics.median(s['seconds'] for s in samples):.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--voice", default="calm-female")
    parser.add_argument("--rss-slack-mb", type=float, default=15.0,
                        help="memory growth taken as noise (allocator, caches filling up)")
    args = parser.parse_args(argv)
    if args.renders < 2 * WARM_UP:
        parser.error(f"--renders must be at least {2 * WARM_UP}")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory(prefix="compassion-audio-soak-") as tmp:
        work = Path(tmp)
        temp = work / "tmp"
        temp.mkdir()
        os.environ["TMPDIR"] = str(temp)  # the renders' temp folder: anything left there is counted
        tempfile.tempdir = str(temp)
        print(f"soak: {args.renders} renders in one process ({args.voice}), a new client name each")
        started = time.perf_counter()
        samples = soak(args.renders, work, args.voice)
        tempfile.tempdir = None
    report(samples)
    problems = verdict(samples, args.rss_slack_mb)
    print(f"wall {time.perf_counter() - started:.1f} s")
    if problems:
        print("verdict: FAIL - " + "; ".join(problems))
        return 1
    print("verdict: ok - no growth beyond noise in memory, descriptors, processes, threads, temp files or cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
