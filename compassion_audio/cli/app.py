"""The command line: a thin click layer over the library (parse, build settings, call, report)."""
from __future__ import annotations

import logging
import signal
import sys
import warnings
from collections.abc import Callable

import click

from compassion_audio import __version__
from compassion_audio.cli.options import Group
from compassion_audio.core.errors import CompassionAudioError, Notice
from compassion_audio.core.signals import Terminated, stop_on_sigterm


class _Group(Group):
    """Turns library errors into one line on stderr and a non-zero exit (tracebacks with --debug);
    usage mistakes (an unknown command or option) are one line too (``cli.options.Group``)."""

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                # A voice replaced by its fallback, a cache that cannot be written: one line, every time.
                warnings.simplefilter("always", Notice)
                warnings.showwarning = _one_line(warnings.showwarning)
                return super().invoke(ctx)
        except CompassionAudioError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (KeyboardInterrupt, Terminated) as exc:
            # Ctrl-C, or SIGTERM (stop_on_sigterm in main): the finally blocks have run.
            click.echo("stopped: nothing was left half-written", err=True)
            ctx.exit(exc.code if isinstance(exc, Terminated) else 128 + signal.SIGINT)


def _one_line(show):
    """warnings.showwarning that prints a Notice as one line on stderr, others as ``show`` does."""

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, Notice):
            click.echo(f"warning: {message}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


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
    if debug:
        ctx.call_on_close(_show_debug_log())


def _show_debug_log() -> Callable[[], None]:
    """--debug: the library's decisions (tools found, cache hits, mastering gain) on stderr.

    The debug lines name files, tools and phrase hashes, never a phrase's text or a
    profile value; tracebacks shown with --debug may still contain them.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    root = logging.getLogger("compassion_audio")
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    return restore


def main() -> None:
    """The command, with SIGTERM stopping it as cleanly as Ctrl-C (exit 143; Ctrl-C 130)."""
    with stop_on_sigterm():
        cli(prog_name="compassion-audio")


def _register() -> None:
    # Command modules define plain click commands and never import this module (no cycle).
    from compassion_audio.cli import authoring, play, tracks, voices

    for command in (tracks.list_command, tracks.show_command, tracks.render_command,
                    authoring.check_command, authoring.new_command, authoring.client_group,
                    authoring.cache_group, voices.voices_group, play.play_command):
        cli.add_command(command)
    from compassion_audio.cli.album import album_group
    cli.add_command(album_group)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
