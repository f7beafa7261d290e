"""The voices commands: list voices, try one, write a recording sheet, import a long take."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from compassion_audio.cli.options import EXERCISES_OPTION, VOICES_DIRS

SAMPLE = ("Welcome. You can stop at any time. Let your breathing find its own soothing rhythm, "
          "and when you are ready, open your eyes.")


@click.group("voices", invoke_without_command=True)
@VOICES_DIRS
@click.option("--all", "show_all", is_flag=True, help="Also list every engine voice (espeak-ng has ~140).")
@click.pass_context
def voices_group(ctx: click.Context, voice_dirs, show_all: bool) -> None:
    """List the voices on this machine: profiles first, then the engines' own voices.

    \b
    Examples:
      compassion-audio voices
      compassion-audio voices try calm-male
      compassion-audio voices script compassionate-self --client jane.toml -o packs/jane-self
    """
    if ctx.invoked_subcommand is not None:
        return
    from compassion_audio.speech.voices import DEFAULT_PROFILE, list_voices

    rows = list_voices(voice_dirs)
    profiles = [r for r in rows if r.kind == "profile"]
    engine_voices = [r for r in rows if r.kind != "profile"]
    for row in profiles:
        mark = "ok " if row.works_here else "n/a"
        default = " (default)" if row.name == DEFAULT_PROFILE else ""
        why = f"  - {row.why_not}" if row.why_not else ""
        click.echo(f"{mark} {row.name:16} {row.engine:8} {row.language:7}{default}{why}")
    if show_all:
        for row in engine_voices:
            click.echo(f"ok  {row.name:24} {row.engine:8} {row.language:8} {row.description}")
    else:
        click.echo(f"... and {len(engine_voices)} engine voices usable by id (--all lists them), "
                   "e.g. --voice en-gb")


@voices_group.command("try")
@click.argument("name")
@click.argument("text", required=False)
@VOICES_DIRS
@click.option("--rate", "rate_wpm", type=click.IntRange(60, 260), help="Speaking rate in words per minute.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the sample (default: output/voice-<name>.mp3).")
def voices_try(name: str, text: str | None, voice_dirs, rate_wpm, output) -> None:
    """Speak a short sample with a voice into output/.

    \b
    Example:
      compassion-audio voices try calm-male "You can stop at any time."
    """
    import re
    import tempfile

    from compassion_audio import render as rendering
    from compassion_audio.core.settings import MixSettings
    from compassion_audio.speech.voices import resolve_voice

    profile = resolve_voice(name, voice_dirs)
    if rate_wpm:
        profile = replace(profile, rate_wpm=rate_wpm)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", profile.key).strip("-") or "voice"
    path = output or rendering.OUTPUT_DIR / f"voice-{slug}.mp3"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sample.txt"
        script.write_text((text or SAMPLE).replace("[", "[[") + "\n", encoding="utf-8")
        result = rendering.render_track(rendering.TrackRequest(
            exercise=str(script), voice_profile=profile, output=path, force=True,
            mix=MixSettings(bells=False, lead_in_seconds=0.3, tail_seconds=0.5)))
    click.echo(f"Wrote {result.path} ({result.timeline.seconds:.1f} s, {profile.name})")


@voices_group.command("script")
@click.argument("exercises", nargs=-1, required=True)
@click.option("-o", "--output", "folder", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The pack folder: the sheet and phrases.json go here; record into it.")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter.")
@click.option("--client", type=click.Path(path_type=Path, dir_okay=False), help="A client profile.")
@click.option("--length", type=click.Choice(["short", "standard", "long"]), help="Which version.")
@click.option("--group", is_flag=True, help="The group variant.")
@EXERCISES_OPTION
def voices_script(exercises, folder: Path, sets, client, length, group, exercise_dirs) -> None:
    """Write a recording sheet (text and printable HTML) for a therapist to record a voice pack.

    Record one file per numbered phrase into the folder (001.wav, 002.m4a...),
    then render with --voice pack:FOLDER.

    \b
    Example:
      compassion-audio voices script compassionate-self soothing-rhythm-breathing -o packs/dr-lee
    """
    from compassion_audio.cli.tracks import _script
    from compassion_audio.speech.recording_sheet import phrases_for, write_sheet

    scripts = [_script(name, sets, client, length, group, exercise_dirs)[3] for name in exercises]
    title = ", ".join(s.title for s in scripts)
    written = write_sheet(phrases_for(scripts), folder, title)
    click.echo(f"Wrote {', '.join(str(p) for p in written)}")
    click.echo(f"Record the phrases into {folder}, then: compassion-audio render ... --voice pack:{folder}")


@voices_group.command("import-take")
@click.argument("take", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Replace recordings already in the pack.")
def voices_import_take(take: Path, folder: Path, force: bool) -> None:
    """Split one long recording of the whole sheet into numbered phrase files.

    \b
    Example:
      compassion-audio voices import-take session.m4a packs/dr-lee
    """
    from compassion_audio.speech.engines.pack_engine import import_take

    written = import_take(take, folder, overwrite=force)
    click.echo(f"Wrote {len(written)} phrase recordings into {folder}")
