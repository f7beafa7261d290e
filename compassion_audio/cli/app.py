"""The command line: a thin click layer over the library (parse, build settings, call, report)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from compassion_audio import __version__
from compassion_audio.core.errors import CompassionAudioError


class _Group(click.Group):
    """Turns library errors into one line on stderr and a non-zero exit (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CompassionAudioError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("stopped: nothing was left half-written", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="compassion-audio")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Compassion-focused therapy practice tracks, made offline.

    \b
    Example:
      compassion-audio list
      compassion-audio render compassionate-self -s name=Jane
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    cli(prog_name="compassion-audio")


def _register() -> None:
    # Command modules define plain click commands and never import this module (no cycle).
    from compassion_audio.cli import authoring, tracks, voices

    for command in (tracks.list_command, tracks.show_command, tracks.render_command,
                    authoring.check_command, authoring.new_command, authoring.client_group,
                    authoring.cache_group, voices.voices_group):
        cli.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
