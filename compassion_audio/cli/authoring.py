"""Commands for writing your own material: check, new, client new, cache."""
from __future__ import annotations

import os
from pathlib import Path

import click

from compassion_audio.cli.options import CACHE_DIR_OPTION, EXERCISES_OPTION, Command, Group
from compassion_audio.core.errors import OutputError
from compassion_audio.script.library import find_exercise


def _write_new(path: Path, text: str, force: bool) -> None:
    """Write a new file atomically; an existing file is kept unless --force."""
    from compassion_audio.output.targets import check_writable
    from compassion_audio.core.files import write_text_atomic

    if path.exists() and not force:
        raise OutputError(f"{path} already exists: choose another name or add --force")
    check_writable(path, force=True)  # a folder that cannot be made or written is one error line
    write_text_atomic(path, text)


@click.command("check", cls=Command)
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
    from compassion_audio.sound.estimate import estimate_timeline

    ex = find_exercise(exercise, exercise_dirs)
    report = check_exercise(ex)
    click.echo(f"{ex.title} ({ex.path})")
    for (length, variant, kind), version in sorted(report.versions.items()):
        seconds = estimate_timeline(version.script, breathing=version.breathing).seconds
        click.echo(f"  {length:9} {variant:10} {kind:6} profile  ~{seconds / 60:4.1f} min")
    for problem in report.problems:
        where = f"{ex.path}:{problem.line}" if problem.line else str(ex.path)
        click.echo(f"{where}: {problem.severity}: {problem.message}", err=True)
    if report.problems:
        raise click.exceptions.Exit(1)
    click.echo("No problems found.")


@click.command("new", cls=Command)
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


@click.group("client", cls=Group)
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
    from compassion_audio.script.profile import load_profile, wording_warnings

    profile = load_profile(path)
    keys = sorted([*profile.values, *(f"breathing.{k}" for k in profile.breathing)]
                  + [k for k in ("length", "voice") if getattr(profile, k)])
    click.echo(f"{path}: valid; sets {', '.join(keys) if keys else 'nothing'}")
    for warning in wording_warnings(path):
        click.echo(warning, err=True)


@click.group("cache", cls=Group)
def cache_group() -> None:
    """The synthesised-phrase cache: safe to share between renders running at once.

    It holds each phrase's text beside its audio (so a client's name may be in it; a read
    checks the text against the phrase asked for). It never leaves this machine: files are
    readable only by you, named by hashes. Size cap: $COMPASSION_AUDIO_CACHE_MAX (default
    2G, 'off' for none); the least recently used phrases go first.

    \b
    Example:
      compassion-audio cache info
      compassion-audio cache prune --max-size 500M
      compassion-audio cache clear --client clients/jane.toml
    """


def _cache_root(cache_dir: Path | None) -> Path:
    from compassion_audio.speech.cache import default_cache_dir

    return cache_dir or default_cache_dir()


def _when(timestamp: float | None) -> str:
    import datetime

    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@cache_group.command("info")
@CACHE_DIR_OPTION
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is, how big, how many phrases, and when the oldest was last used.

    \b
    Example:
      compassion-audio cache info
    """
    from compassion_audio.speech.cache_upkeep import MAX_SIZE_ENV, cache_cap, cache_info as info_of, format_size

    root = _cache_root(cache_dir)
    info = info_of(root)
    cap = cache_cap()
    click.echo(f"{root}: {info.entries} phrases, {format_size(info.size_bytes)}")
    click.echo(f"  last used: oldest {_when(info.oldest)}, newest {_when(info.newest)}")
    click.echo(f"  size cap: {format_size(cap) if cap is not None else 'none'} (${MAX_SIZE_ENV})")
    if info.renders:
        click.echo(f"  in use by {info.renders} running render(s)")


@cache_group.command("prune")
@CACHE_DIR_OPTION
@click.option("--max-size", required=True, metavar="SIZE",
              help="Keep at most this much, e.g. 500M or 2G; the least recently used phrases go first.")
def cache_prune(cache_dir: Path | None, max_size: str) -> None:
    """Shrink the cache to a size, removing the phrases used longest ago first.

    \b
    Example:
      compassion-audio cache prune --max-size 500M
    """
    from compassion_audio.speech.cache_upkeep import format_size, parse_size, prune

    try:
        limit = parse_size(max_size)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-size") from None
    if limit is None:
        raise click.BadParameter("give a size to prune to, e.g. 500M", param_hint="--max-size")
    root = _cache_root(cache_dir)
    result = prune(root, limit)
    click.echo(f"Removed {result.removed} phrases ({format_size(result.freed_bytes)}) from {root}; "
               f"{format_size(result.remaining_bytes)} left{_kept(result.kept_in_use)}")


def _kept(kept: int) -> str:
    return f"; kept {kept} in use by a running render (run again when it has finished)" if kept else ""


@cache_group.command("clear")
@CACHE_DIR_OPTION
@click.option("--client", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Only the phrases that contain this client profile's details (name, phrases, places...).")
def cache_clear(cache_dir: Path | None, client: Path | None) -> None:
    """Delete every cached phrase, or one client's.

    A running render keeps what it is using (and still finishes).

    \b
    Example:
      compassion-audio cache clear
      compassion-audio cache clear --client clients/jane.toml
    """
    from compassion_audio.speech.cache_upkeep import clear, format_size, mentions

    matching = None
    if client is not None:
        from compassion_audio.script.profile import load_profile

        matching = mentions(_strings(load_profile(client).values))
    root = _cache_root(cache_dir)
    result = clear(root, matching=matching)
    whose = " of that client" if client is not None else ""
    click.echo(f"Removed {result.removed} phrases{whose} ({format_size(result.freed_bytes)}) from "
               f"{root}{_kept(result.kept_in_use)}")


def _strings(value) -> list[str]:
    """Every string in a profile's values, list items included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []
