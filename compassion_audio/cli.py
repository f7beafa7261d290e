"""The command line: a thin click layer over the library (parse, build settings, call, report)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import CompassionAudioError, ParameterError

EXERCISES_OPTION = click.option(
    "--exercises", "exercise_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
    help="A folder of your own exercise templates (repeatable; also $COMPASSION_AUDIO_EXERCISES).")


CACHE_DIR_OPTION = click.option(
    "--cache-dir", type=click.Path(path_type=Path, file_okay=False), envvar="COMPASSION_AUDIO_CACHE",
    help="Where synthesised phrases are kept (default: the user cache folder; also $COMPASSION_AUDIO_CACHE).")


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


def parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-s key=value`` pairs to a dict; a pair without '=' is an error naming it."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{pair!r} is not key=value", source="-s",
                                 hint="write e.g. -s name=Jane")
        values[key.strip()] = value
    return values


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
    # The command modules attach their commands to ``cli`` when imported.
    from . import cli_authoring, cli_commands, cli_voices  # noqa: F401


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
