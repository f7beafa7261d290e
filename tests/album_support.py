"""Shared pieces of the album tests: a small real album (templates, cover, manifest) and ways to read one back."""
from __future__ import annotations

import shutil
from pathlib import Path

import mutagen

from compassion_audio.album import BuildOptions, build_albums, load_manifest, local_executor, plan_albums

from .conftest import decode
from .test_tags import png_bytes

ARRIVING = """\
+++
title = "Arriving"
lengths = ["short", "standard"]

[params]
name = { type = "str", default = "", help = "first name" }
place = { type = "str", default = "the room", help = "where they are" }
+++
[chapter Arriving]
{% if name %}Welcome, {{ name }}.{% else %}Welcome.{% endif %} Let yourself settle in {{ place }}.
[pause 1s]
[chapter Breath]
Notice the breath, without changing it.
[pause {{ pick(short=1, standard=2) }}s]
When you are ready, open your eyes.
"""

CLOSING = """\
+++
title = "Closing"
lengths = ["short", "standard"]
+++
[chapter Closing]
Thank you for practising today.
[pause 1s]
Take this kindness with you.
"""

MANIFEST = """\
[album]
title = "Test practices"
artist = "Test Clinic"
year = 2026
cover = "cover.png"
voice = "calm-female"
length = "short"
captions = true
bells = false

[[track]]
template = "arriving.txt.j2"
set = { name = "Jane" }

[[track]]
template = "arriving.txt.j2"
title = "Arriving, longer"
length = "standard"
set = { place = "the garden" }

[[track]]
template = "closing.txt.j2"

[[track]]
exercise = "daily-compassionate-act"
bells = true
"""

AUDIO_SUFFIXES = (".mp3", ".m4a", ".m4b", ".ogg", ".flac", ".wav")


def write_project(folder: Path, manifest: str = MANIFEST) -> Path:
    """The templates, the cover and the manifest in ``folder``; returns the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arriving.txt.j2").write_text(ARRIVING, encoding="utf-8")
    (folder / "closing.txt.j2").write_text(CLOSING, encoding="utf-8")
    (folder / "cover.png").write_bytes(png_bytes())
    path = folder / "album.toml"
    path.write_text(manifest, encoding="utf-8")
    return path


def build(manifest: Path, out: Path, cache: Path, *, jobs: int = 1, prune: bool = False, **options):
    """Build an album in this process (``jobs`` > 1: a local process pool); returns the report."""
    plans = plan_albums(load_manifest(manifest), BuildOptions(output=out, cache_dir=cache, **options))
    executor = local_executor(jobs)
    try:
        return build_albums(plans, executor, max_in_flight=jobs, prune=prune)
    finally:
        executor.shutdown()


def files_of(folder: Path) -> dict[str, bytes]:
    """Every visible file of an album folder (and its client folders) by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def tags_of(path: Path) -> dict[str, str]:
    """Every tag frame of a file as text, read by mutagen directly."""
    tags = mutagen.File(path).tags
    return {str(key): str(value) for key, value in tags.items()}


def same_album(built: Path, reference: Path) -> None:
    """The two folders hold the same files: equal samples, equal tags, equal bytes."""
    mine, theirs = files_of(built), files_of(reference)
    assert sorted(mine) == sorted(theirs)
    for name in mine:
        if name.endswith(AUDIO_SUFFIXES):
            assert (decode(built / name) == decode(reference / name)).all(), name
            assert tags_of(built / name) == tags_of(reference / name), name
        assert mine[name] == theirs[name], name


def copy_album(source: Path, target: Path) -> Path:
    """A copy with the files' times kept (copy2), as a user's earlier build would be."""
    shutil.copytree(source, target, copy_function=shutil.copy2)
    return target
