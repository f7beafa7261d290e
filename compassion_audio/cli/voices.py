"""The voices commands: list them, try one, add a model you brought, write a recording sheet, import a take."""
from __future__ import annotations

from pathlib import Path

import click

from compassion_audio.cli.options import EXERCISES_OPTION, VOICES_DIRS, Group
from compassion_audio.core.settings import RATE_WPM_RANGE
from compassion_audio.script.templates import LENGTHS

SAMPLE = ("Welcome. You can stop at any time. Let your breathing find its own soothing rhythm, "
          "and when you are ready, open your eyes.")


@click.group("voices", cls=Group, invoke_without_command=True)
@VOICES_DIRS
@click.option("--all", "show_all", is_flag=True, help="Also list every engine voice (espeak-ng has ~140).")
@click.option("--licences", is_flag=True, help="Each voice's licence in full, and where the licence files are.")
@click.pass_context
def voices_group(ctx: click.Context, voice_dirs, show_all: bool, licences: bool) -> None:
    """List the voices on this machine: whether each works here (or why not), its engine,
    accent and licence, and the default; then the engines' own voices.

    \b
    Examples:
      compassion-audio voices
      compassion-audio voices try calm-male
      compassion-audio voices add bf_emma.int8.onnx
      compassion-audio voices script compassionate-self --client jane.toml -o packs/jane-self
    """
    if ctx.invoked_subcommand is not None:
        return
    from compassion_audio.speech.voices import list_voices

    rows = list_voices(voice_dirs)
    profiles = sorted((r for r in rows if r.kind == "profile"), key=lambda r: not r.default)
    engine_voices = [r for r in rows if r.kind != "profile"]
    if licences:
        _print_licences(profiles)
        return
    for row in profiles:
        mark = "ok " if row.works_here else "n/a"
        licence = row.licence.split(" (")[0] or "?"
        default = " (default)" if row.default else ""
        why = f"  - {row.why_not}" if row.why_not else ""
        click.echo(f"{mark} {row.name:14} {row.engine:8} {_accent(row.language):16} {licence:26}{default}{why}"
                   .rstrip())
    if show_all:
        for row in engine_voices:
            mark = "ok " if row.works_here else "n/a"
            click.echo(f"{mark} {row.name:24} {row.engine:8} {row.language:8} {row.description}"
                       + (f"  - {row.why_not}" if row.why_not else ""))
    else:
        click.echo(f"... and {len(engine_voices)} engine voices usable by id (--all lists them), "
                   "e.g. --voice en-gb")


def _accent(language: str) -> str:
    code = language.lower().replace("_", "-")
    return {"en-us": "US English", "en-gb": "British English"}.get(code, code or "?")


def _print_licences(profiles) -> None:
    from compassion_audio.speech.licences import licence_files

    for row in profiles:
        click.echo(f"{row.name}: {row.licence or 'not stated in its profile'}")
    click.echo("")
    click.echo("Licence files of the installed engines and voices:")
    for package, paths in licence_files().items():
        listed = ", ".join(str(p) for p in paths or ())
        missing = "not installed" if paths is None else "none shipped (see its project page)"
        click.echo(f"  {package}: {listed or missing}")


@voices_group.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Install into this folder (default: the first of $COMPASSION_AUDIO_VOICES, "
                   "else your user voices folder).")
@click.option("--language", type=click.Choice(["en-us", "en-gb"]),
              help="For a hibari voice of your own: US or British spelling-to-sound (default en-us).")
@click.option("--force", is_flag=True, help="Replace files already installed.")
def voices_add(files, folder, language, force) -> None:
    """Install voice model files you brought: a hibari voice (.onnx), or a Piper voice
    (.onnx with its .onnx.json). Each is checked to load and speak here first; a profile is
    written for it (hibari's own emma, fable and fenrir have shipped profiles).

    \b
    Examples:
      compassion-audio voices add ~/Downloads/bf_emma.int8.onnx
      compassion-audio voices add en_US-amy-medium.onnx en_US-amy-medium.onnx.json
    """
    from compassion_audio.speech.voice_install import add_voices

    for done in add_voices(files, folder, language=language, force=force):
        where = ", ".join(str(f) for f in done.files)
        profile = f"profile {done.profile}" if done.profile else "its profile ships with compassion-audio"
        click.echo(f"Installed {done.key} ({done.engine}, {done.rate_wpm} wpm): {where}; {profile}")
        click.echo(f"  try it: compassion-audio voices try {done.key}")


@voices_group.command("try")
@click.argument("name")
@click.argument("text", required=False)
@VOICES_DIRS
@click.option("--rate", "rate_wpm", type=click.IntRange(*RATE_WPM_RANGE),
              help="Speaking rate in words per minute.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the sample (default: output/voice-<name>.mp3, replaced each time).")
@click.option("--force", is_flag=True, help="Replace the -o file if it exists.")
def voices_try(name: str, text: str | None, voice_dirs, rate_wpm, output, force: bool) -> None:
    """Speak a short sample with a voice into output/ (the default sample file is replaced
    each time; a file you name with -o is never replaced without --force).

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
        profile = profile.with_settings(rate_wpm=rate_wpm)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", profile.key).strip("-") or "voice"
    path = output or rendering.OUTPUT_DIR / f"voice-{slug}.mp3"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sample.txt"
        script.write_text((text or SAMPLE).replace("[", "[[") + "\n", encoding="utf-8")
        result = rendering.render_track(rendering.TrackRequest(
            exercise=str(script), voice_profile=profile, output=path, force=force or output is None,
            mix=MixSettings(bells=False, lead_in_seconds=0.3, tail_seconds=0.5)))
    click.echo(f"Wrote {result.path} ({result.timeline.seconds:.1f} s, {profile.name})")


@voices_group.command("script")
@click.argument("exercises", nargs=-1, required=True)
@click.option("-o", "--output", "folder", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The pack folder: the sheet and phrases.json go here; record into it.")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter.")
@click.option("--client", type=click.Path(path_type=Path, dir_okay=False), help="A client profile.")
@click.option("--length", type=click.Choice(LENGTHS), help="Which version.")
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

    scripts = [_script(name, sets, client, length, group, exercise_dirs)[-1] for name in exercises]
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
