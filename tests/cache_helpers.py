"""Helpers for the phrase-cache tests: real `compassion-audio render` processes with the
espeak voice pinned, and a look inside cache entries independent of the product's reader."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

CLI = str(Path(sys.executable).parent / "compassion-audio")
VOICE = "calm-female"
"""Pinned: the default voice is changing; this one is espeak-ng through pyttsx3."""
WROTE = re.compile(r"^Wrote (?P<path>.+) \((?P<m>\d+):(?P<s>\d\d); (?P<phrases>\d+) phrases, "
                   r"(?P<new>\d+) newly spoken\)$", re.M)

SCRIPT = """+++
title = "Cache probe"
[params]
name = { type = "str", default = "friend" }
+++
Welcome, {{ name }}. Settle into your seat.
[pause 1s]
Notice the breath moving in and out.
[pause 1s]
Let the shoulders soften a little.
[pause 1s]
{{ name }}, you are doing well.
[pause 1s]
Rest here for a moment.
"""


def write_script(folder: Path, text: str = SCRIPT, name: str = "probe.txt.j2") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def render_args(script: Path, out: Path, *, name: str, cache: Path | None, debug: bool = False,
                extra: tuple[str, ...] = ()) -> list[str]:
    args = [CLI] + (["--debug"] if debug else []) + [
        "render", str(script), "-s", f"name={name}", "--voice", VOICE, "--no-bells",
        "--loudness", "off", "-o", str(out), "--force", *extra]
    args += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    return args


def render(script: Path, out: Path, *, name: str, cache: Path | None, debug: bool = False,
           env: dict | None = None, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(render_args(script, out, name=name, cache=cache, debug=debug, extra=extra),
                          capture_output=True, text=True, timeout=180, env=env)


def newly_spoken(proc: subprocess.CompletedProcess) -> int:
    found = WROTE.search(proc.stdout)
    assert found, proc.stdout + proc.stderr
    return int(found.group("new"))


def entry_parts(path: Path) -> tuple[int, int, dict, int]:
    """(data start, frame count, trailer, trailer start) of an entry, read by hand: a .npy
    v1 header (magic, version, little-endian header length), float32 samples, a JSON
    trailer, its length as a little-endian u64, then 8 bytes of magic."""
    raw = path.read_bytes()
    assert raw[:6] == b"\x93NUMPY" and raw[-8:] == b"CAclip\r\n"
    header_len = struct.unpack_from("<H", raw, 8)[0]
    start = 10 + header_len
    trailer_len = struct.unpack_from("<Q", raw, len(raw) - 16)[0]
    trailer_start = len(raw) - 16 - trailer_len
    trailer = json.loads(raw[trailer_start:len(raw) - 16])
    assert (trailer_start - start) % 4 == 0
    return start, (trailer_start - start) // 4, trailer, trailer_start


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/*.npy") if not p.name.startswith("."))


def entry_for(cache: Path, words: str) -> Path:
    """The one entry whose stored text contains ``words``."""
    found = [p for p in entries(cache) if words in entry_parts(p)[2]["material"]["text"]]
    assert len(found) == 1, found
    return found[0]


def files_containing(folder: Path, needle: str) -> list[Path]:
    """Every file under ``folder`` whose bytes hold ``needle`` (UTF-8 or UTF-16), or whose name does."""
    forms = [needle.encode("utf-8"), needle.encode("utf-16-le"), needle.lower().encode("utf-8")]
    hits = []
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            path = Path(root) / name
            if needle.lower() in name.lower():
                hits.append(path)
            elif name in files and path.is_file():
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                if any(f in data for f in forms):
                    hits.append(path)
    return hits


def decoded(path: Path) -> np.ndarray:
    from .conftest import decode

    return decode(path)
