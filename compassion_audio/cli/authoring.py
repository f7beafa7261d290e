"""Commands for writing your own material: check, new, client new, cache."""
from __future__ import annotations

import os
from pathlib import Path

import click

from compassion_audio.script import templates
from compassion_audio.cli.options import CACHE_DIR_OPTION, EXERCISES_OPTION
from compassion_audio.core.errors import OutputError


def _write_new(path: Path, text: str, force: bool) -> None:
    """Write a new file atomically; an existing file is kept unless --force."""
    from compassion_audio.output.export import check_writable
    from compassion_audio.core.files import write_text_atomic

    if path.exists() and not force:
        raise OutputError(f"{path} already exists: choose another name or add --force")
    check_writable(path, force=True)  # a folder that cannot be made or written is one error line
    write_text_atomic(path, text)


@click.command("check")
@click.argument("exercise")
@EXERCISES_OPTION
def check_command(exercise: str, exercise_dirs) -> None:
    """Lint a template: render every length and variant with an empty and a full profile.

    Reports marker and render errors, parameters declared but unused (or used
    but undeclared), text that reads badly with defaults, and the estimated
    length of every version. Exits 1 when there are problems.

    \b
    Example:
      compassion-audio check my-own-script.txt.j2
    """
    from compassion_audio.script.lint import check_exercise

    ex = templates.find_exercise(exercise, exercise_dirs)
    report = check_exercise(ex)
    click.echo(f"{ex.title} ({ex.path})")
    for (length, variant, kind), seconds in sorted(report.durations.items()):
        click.echo(f"  {length:9} {variant:6} {kind:6} profile  ~{seconds / 60:4.1f} min")
    for problem in report.problems:
        where = f"{ex.path}:{problem.line}" if problem.line else str(ex.path)
        click.echo(f"{where}: {problem.severity}: {problem.message}", err=True)
    if report.problems:
        raise click.exceptions.Exit(1)
    click.echo("No problems found.")


@click.command("new")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write it (default: ./NAME.txt.j2).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def new_command(name: str, output: Path | None, force: bool) -> None:
    """Write a commented template showing front matter, parameters and every marker.

    \b
    Example:
      compassion-audio new morning-kindness
      compassion-audio check morning-kindness.txt.j2
    """
    from compassion_audio.script.scaffold import new_template

    path = output or Path(f"{name}.txt.j2")
    _write_new(path, new_template(name), force)
    click.echo(f"Wrote {path}; check it with: compassion-audio check {path}")


@click.group("client")
def client_group() -> None:
    """Client profiles: a client's details once, for every track.

    \b
    Example:
      compassion-audio client new clients/jane.toml
      compassion-audio client check clients/jane.toml
    """


@client_group.command("new")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing file.")
def client_new(path: Path, force: bool) -> None:
    """Write a commented client profile to fill in (readable only by you).

    \b
    Example:
      compassion-audio client new clients/jane.toml
      compassion-audio render compassionate-place --client clients/jane.toml
    """
    from compassion_audio.script.profile import profile_template

    _write_new(path, profile_template(), force)
    if os.name == "posix":
        path.chmod(0o600)
    click.echo(f"Wrote {path}: fill it in, then use --client {path}")


@client_group.command("check")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def client_check(path: Path) -> None:
    """Validate a client profile and list what it sets (values are not printed).

    \b
    Example:
      compassion-audio client check clients/jane.toml
    """
    from compassion_audio.script.profile import load_profile

    profile = load_profile(path)
    keys = sorted([*profile.values, *(f"breathing.{k}" for k in profile.breathing)]
                  + [k for k in ("length", "voice") if getattr(profile, k)])
    click.echo(f"{path}: valid; sets {', '.join(keys) if keys else 'nothing'}")


@click.group("cache")
def cache_group() -> None:
    """The synthesised-phrase cache (it may hold spoken client names; it never leaves this machine).

    \b
    Example:
      compassion-audio cache info
      compassion-audio cache clear
    """


def _clip_cache(cache_dir: Path | None):
    from compassion_audio.speech.cache import ClipCache, default_cache_dir

    return ClipCache(cache_dir or default_cache_dir())


@cache_group.command("info")
@CACHE_DIR_OPTION
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is and how big.

    \b
    Example:
      compassion-audio cache info
    """
    cache = _clip_cache(cache_dir)
    click.echo(f"{cache.root}: {cache.size_bytes() / 1e6:.1f} MB")


@cache_group.command("clear")
@CACHE_DIR_OPTION
def cache_clear(cache_dir: Path | None) -> None:
    """Delete every cached phrase.

    \b
    Example:
      compassion-audio cache clear
    """
    cache = _clip_cache(cache_dir)
    click.echo(f"Removed {cache.clear()} files from {cache.root}")
