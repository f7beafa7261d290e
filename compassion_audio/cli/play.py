"""The play command: open a track's or an album's session page in the default browser."""
from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from compassion_audio.cli.options import Command
from compassion_audio.page.locate import find_page


@click.command("play", cls=Command)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--print-path", is_flag=True, help="Only print the page's path; open nothing.")
def play_command(path: Path, print_path: bool) -> None:
    """Open the session page for a track (rendered with --page) or an album folder.

    \b
    Examples:
      compassion-audio play output/compassionate-self-standard-group.mp3
      compassion-audio play output/week-3/
      compassion-audio play output/week-3/ --print-path
    """
    page = find_page(path).resolve()
    if print_path:
        click.echo(str(page))
        return
    if not webbrowser.open(page.as_uri()):
        raise click.ClickException(f"no browser could be opened here: open {page} yourself")
    click.echo(f"Opened {page}")
