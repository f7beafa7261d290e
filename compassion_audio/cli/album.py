"""The album command: build clinic albums from a manifest (or a programme week), and `album new`."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from compassion_audio.album.progress import AlbumProgress
from compassion_audio.cli.options import CACHE_DIR_OPTION, EXERCISES_OPTION, VOICES_DIRS, Group, UsageLine
from compassion_audio.core.settings import FORMATS


class _AlbumGroup(Group):
    """`album FILE.toml ...` builds; `album new FILE.toml` writes an example (a first word that is not
    a subcommand is the manifest)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["build", *args]
        return super().parse_args(ctx, args)


@click.group("album", cls=_AlbumGroup)
def album_group() -> None:
    """Practice albums for a clinic: numbered, tagged tracks with a playlist and a track list.

    `album FILE.toml [OPTIONS]` is short for `album build FILE.toml [OPTIONS]`.

    \b
    Examples:
      compassion-audio album new clinic-week3.toml
      compassion-audio album clinic-week3.toml
      compassion-audio album build clinic-week3.toml --clients clients/ --jobs 2
      compassion-audio album build --programme cmt-8-week --week 3 --client clients/jane.toml
    """


@album_group.command("build")
@click.argument("manifest", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False),
              help="The album folder (default: output/<album title>); with --clients, the folder of their albums.")
@click.option("--clients", type=click.Path(path_type=Path, file_okay=False),
              help="A folder of client profiles (*.toml): one personalised album each, in a folder named by the "
                   "profile's id (client-<8 hex>).")
@click.option("--client", type=click.Path(path_type=Path, dir_okay=False),
              help="One client profile (instead of the manifest's).")
@click.option("--programme", help="Build a built-in programme's week instead of a manifest ('list --programmes').")
@click.option("--week", type=click.IntRange(min=1), help="The programme week, with --programme.")
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Tracks rendered at once (default: the CPU count; with --scheduler, twice the cluster's threads).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Render the tracks on a Dask cluster (tls://HOST:8786 or tcp://HOST:8786; needs "
                   "compassion-audio[distributed]); each worker uses its own phrase cache.")
@click.option("--single-file", is_flag=True, help="Also write the whole album as one file with a chapter per track "
                                                   "(M4B; MP3 when the album is MP3).")
@click.option("--prune", is_flag=True, help="Remove files of tracks no longer in the manifest.")
@click.option("--force", is_flag=True, help="Render every track again, even those up to date.")
@click.option("--name-in-file", is_flag=True,
              help="Put the client's name in the folder name and the album tag (off: privacy).")
@click.option("--voice", help="The voice for every track (beats the manifest's).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="The audio format of every track.")
@click.option("--captions", is_flag=True, default=None, help="Captions beside every track.")
@click.option("--timeline", is_flag=True, default=None, help="A timeline .json beside every track.")
@EXERCISES_OPTION
@VOICES_DIRS
@click.option("--no-cache", is_flag=True, help="Synthesise everything afresh; keep nothing on disk.")
@CACHE_DIR_OPTION
@click.option("-q", "--quiet", is_flag=True, help="No progress; only the summary.")
def build_command(manifest, output, clients, client, programme, week, jobs, single_file, prune, force, name_in_file,
                  voice, fmt, captions, timeline, exercise_dirs, voice_dirs, no_cache, cache_dir, quiet,
                  scheduler) -> None:
    """Build the album(s) of MANIFEST: only tracks whose script, values or settings changed are rendered.

    \b
    Examples:
      compassion-audio album clinic-week3.toml
      compassion-audio album build clinic-week3.toml --clients clients/ -o albums/
      compassion-audio album build clinic-week3.toml --single-file --prune
      compassion-audio album build --programme cmt-8-week --week 3 --client clients/jane.toml
      compassion-audio album build clinic-week3.toml --clients clients/ --scheduler tls://dask.clinic.lan:8786
    """
    from compassion_audio.album import (BuildOptions, build_albums, default_jobs, load_manifest, local_executor,
                                        plan_albums, programme_manifest)

    if programme:
        if manifest is not None or week is None:
            raise UsageLine("--programme takes --week N and no manifest")
        chosen = programme_manifest(programme, week)
    elif manifest is None:
        raise UsageLine("give a manifest (compassion-audio album new FILE.toml writes one) or --programme")
    else:
        chosen = load_manifest(manifest)
    overrides = {key: value for key, value in (("voice", voice), ("format", fmt), ("captions", captions),
                                               ("timeline", timeline)) if value is not None}
    options = BuildOptions(output=output, clients=clients, client=client, name_in_file=name_in_file,
                           overrides=overrides, exercise_dirs=tuple(exercise_dirs), voice_dirs=tuple(voice_dirs),
                           cache_dir=cache_dir, use_cache=not no_cache, single_file=single_file)
    plans = plan_albums(chosen, options)
    for plan in plans:
        for notice in plan.notices:
            click.echo(f"note: {notice}", err=True)
    if scheduler:
        from compassion_audio.album.cluster import connect, plain_text_notice

        notice = plain_text_notice(scheduler)
        if notice:
            click.echo(f"note: {notice}", err=True)
        executor = connect(scheduler)
        count = jobs or executor.window()
    else:
        count = jobs or default_jobs()
        executor = local_executor(count)
    # A local pool that broke is made again; a cluster reschedules a dead worker's track itself.
    restart = (lambda: local_executor(count)) if count > 1 and not scheduler else None
    display = None if quiet else _Display()
    try:
        report = build_albums(plans, executor, max_in_flight=count, progress=display, prune=prune, force=force,
                              restart=restart, local=not scheduler)
    finally:
        if display is not None:
            display.close()
        executor.shutdown(wait=True, cancel_futures=True)
    _summary(report, prune)
    if report.failed:
        raise click.exceptions.Exit(1)


def _summary(report, prune: bool) -> None:
    phrases = synthesised = 0
    for album in report.albums:
        click.echo(f"{album.plan.folder}: {album.count('built')} built, {album.count('unchanged')} unchanged, "
                   f"{album.count('failed')} failed")
        for outcome in album.outcomes:
            phrases += outcome.phrases
            synthesised += outcome.synthesised
            if outcome.status == "failed":
                click.echo(f"  failed: {outcome.track.stem}: {outcome.reason}")
        for name in album.stale:
            click.echo(f"  {'removed' if prune else 'stale'}: {name}"
                       + ("" if prune else " (not in the manifest; --prune removes it)"))
        if album.single_file:
            click.echo(f"  single file: {album.single_file} ({album.single_status})")
    if len(report.albums) > 1 or phrases:
        click.echo(f"total: {report.count('built')} built, {report.count('unchanged')} unchanged, "
                   f"{report.count('failed')} failed; {synthesised} of {phrases} phrases newly spoken")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


class _Display:
    """One progress display for the whole build: a bar with the ETA and the tracks in flight on a
    terminal, else one plain line per finished track."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.bar = None
        self.shown = 0
        self.latest: AlbumProgress | None = None

    def __call__(self, update: AlbumProgress) -> None:
        self.latest = update
        if not self.tty:
            if update.event in ("built", "unchanged", "failed", "retrying"):
                detail = f" ({update.detail})" if update.detail else ""
                eta = f"; about {_clock(update.eta_seconds)} left" if update.eta_seconds is not None else ""
                click.echo(f"[{update.done}/{update.total}] {update.event} {update.label}{detail}{eta}")
            return
        if self.bar is None and update.total:
            self.bar = click.progressbar(length=update.total, label="Tracks", show_eta=False, show_pos=True,
                                         item_show_func=self._in_flight, file=sys.stdout)
            self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(update.done - self.shown, update)
            self.shown = update.done
        if update.event == "failed":
            click.echo(f"\nfailed: {update.label}: {update.detail}", err=True)

    def _in_flight(self, update: AlbumProgress | None) -> str:
        if update is None:
            return ""
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 50)
        names = ", ".join(update.in_flight)
        if len(names) > width:
            names = names[: width - 1] + "…"
        eta = f"ETA {_clock(update.eta_seconds)}"
        return f"{eta}  now: {names}" if names else eta

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@album_group.command("new")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--programme", help="Write a built-in programme's week as the manifest.")
@click.option("--week", type=click.IntRange(min=1), help="The programme week, with --programme.")
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
def new_command(file: Path, programme: str | None, week: int | None, force: bool) -> None:
    """Write a commented example manifest to FILE (or a programme week's) to edit.

    \b
    Examples:
      compassion-audio album new clinic-week3.toml
      compassion-audio album new week3.toml --programme cmt-8-week --week 3
    """
    from compassion_audio.album.example import EXAMPLE, programme_text
    from compassion_audio.album.manifest import programme_manifest
    from compassion_audio.core.errors import OutputError
    from compassion_audio.core.files import write_text_atomic

    if file.exists() and not force:
        raise OutputError(f"{file} already exists: choose another name or add --force to replace it")
    if programme:
        if week is None:
            raise UsageLine("--programme takes --week N")
        text = programme_text(programme_manifest(programme, week), programme, week)
    else:
        text = EXAMPLE
    if str(file.parent):
        file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(file, text, private=False)
    click.echo(f"Wrote {file}: edit it, then run compassion-audio album {file}")
