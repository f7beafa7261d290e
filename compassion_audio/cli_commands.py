"""The list, show and render commands."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from . import render as rendering
from . import templates
from .assemble import estimate_clips, plan_timeline
from .cli import EXERCISES_OPTION, cli, parse_sets
from .config import FORMATS, BreathingSettings, ExportSettings, MixSettings, VoiceSettings
from .errors import ParameterError


def _mmss(frames: int, sample_rate: int) -> str:
    seconds = int(round(frames / sample_rate))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def preview_timeline(script, voice: VoiceSettings = VoiceSettings(),
                     breathing: BreathingSettings = BreathingSettings(),
                     mix: MixSettings = MixSettings()):
    """Timeline with speech timed from word counts: instant, nothing spoken."""
    clips = estimate_clips([s.text for s in script.speech], voice, mix.sample_rate)
    return plan_timeline(script, clips, voice=voice, breathing=breathing, mix=replace(mix, bells=False))


@cli.command("list")
@EXERCISES_OPTION
def list_command(exercise_dirs: tuple[Path, ...]) -> None:
    """List the exercises: name, title, lengths (estimated minutes) and group variant.

    \b
    Example:
      compassion-audio list
      compassion-audio list --exercises ~/my-scripts
    """
    for ex in templates.list_exercises(exercise_dirs):
        lengths = []
        for length in ex.lengths:
            script = templates.render_script(ex, {}, length=length)
            minutes = preview_timeline(script).seconds / 60
            lengths.append(f"{length} ~{minutes:.0f}m")
        group = "group" if ex.group else "-"
        origin = "" if ex.builtin else "  (yours)"
        click.echo(f"{ex.name:30} {ex.title:38} {', '.join(lengths):34} {group}{origin}")


@cli.command("show")
@click.argument("exercise")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeatable).")
@click.option("--length", help="short, standard or long (as the exercise offers).")
@click.option("--group", is_flag=True, help="The group variant: no names, inclusive wording.")
@click.option("--rate", "rate_wpm", type=int, default=VoiceSettings.rate_wpm, show_default=True,
              help="Speaking rate in words per minute, for the time estimates.")
@EXERCISES_OPTION
def show_command(exercise: str, sets, length, group, rate_wpm, exercise_dirs) -> None:
    """Print the rendered script with its timeline (mm:ss per line, speech estimated).

    \b
    Example:
      compassion-audio show compassionate-self -s name=Jane --length short
    """
    ex = templates.find_exercise(exercise, exercise_dirs)
    values = templates.coerce_values(ex, parse_sets(sets))
    script = templates.render_script(ex, values, length=length, group=group)
    voice = VoiceSettings(rate_wpm=rate_wpm)
    timeline = preview_timeline(script, voice)
    sr = timeline.sample_rate
    variant = "group" if group else "individual"
    click.echo(f"{script.title} ({script.meta.get('length')}, {variant}) - about "
               f"{_mmss(timeline.frames, sr)}")
    marks = {c.start: c.title for c in timeline.chapters}
    for event in timeline.events:
        for start in sorted(k for k in list(marks) if k <= event.start):
            click.echo(f"{_mmss(start, sr)}  == {marks.pop(start)} ==")
        seconds = (event.end - event.start) / sr
        if event.kind == "speech":
            line = event.text
        elif event.kind == "pause":
            line = f"[pause {seconds:g}s]"
        elif event.kind == "breathe":
            line = f"[breathe {seconds:g}s]"
        else:
            line = f"[{event.kind}]"
        click.echo(f"{_mmss(event.start, sr)}  {line}")


def _ratio(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    a, sep, b = text.partition(":")
    try:
        value = (float(a), float(b))
    except ValueError:
        value = None
    if not sep or value is None or min(value) <= 0:
        raise ParameterError(f"{text!r} is not an in:out ratio", source="--ratio", hint="write e.g. 4:6")
    return value


@cli.command("render")
@click.argument("exercise")
@click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a parameter (repeatable).")
@click.option("--length", help="short, standard or long (as the exercise offers).")
@click.option("--group", is_flag=True, help="The group variant: no names, inclusive wording.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: output/<exercise>-<length>.mp3, no client details in the name).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Audio format (default: from -o, else mp3).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option("--rate", "rate_wpm", type=click.IntRange(60, 260), help="Speaking rate in words per minute.")
@click.option("--voice", help="Engine voice id (e.g. en-gb).")
@click.option("--no-bells", is_flag=True, help="No bell at the start and end.")
@click.option("--no-cache", is_flag=True, help="Synthesise everything afresh; keep nothing on disk.")
@click.option("--cache-dir", type=click.Path(path_type=Path, file_okay=False), envvar="COMPASSION_AUDIO_CACHE",
              help="Where synthesised phrases are kept (default: the user cache folder).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the output path.")
@EXERCISES_OPTION
def render_command(exercise, sets, length, group, output, fmt, force, rate_wpm, voice, no_bells,
                   no_cache, cache_dir, quiet, exercise_dirs) -> None:
    """Render an exercise (built-in name or a .j2 path) to an audio file.

    \b
    Examples:
      compassion-audio render compassionate-self -s name=Jane -o output/jane.mp3
      compassion-audio render soothing-rhythm-breathing --length short --group
      compassion-audio render my-own-script.txt.j2 -o output/mine.ogg
    """
    ex = templates.find_exercise(exercise, exercise_dirs)
    values = templates.coerce_values(ex, parse_sets(sets))
    voice_settings = VoiceSettings()
    if rate_wpm:
        voice_settings = replace(voice_settings, rate_wpm=rate_wpm)
    if voice:
        voice_settings = replace(voice_settings, voice=voice)
    request = rendering.TrackRequest(
        exercise=str(ex.path) if not ex.builtin else ex.name, values=values, length=length,
        group=group, voice=voice_settings, mix=MixSettings(bells=not no_bells),
        export=ExportSettings(format=fmt), output=output, force=force, use_cache=not no_cache,
        cache_dir=cache_dir, exercise_dirs=tuple(exercise_dirs))
    result = rendering.render_track(request, progress=None if quiet else _progress())
    if quiet:
        click.echo(str(result.path))
        return
    minutes, seconds = divmod(int(round(result.timeline.seconds)), 60)
    click.echo(f"Wrote {result.path} ({minutes}:{seconds:02d}; {result.phrases} phrases, "
               f"{result.synthesised} newly spoken)", err=False)
    for side in result.sidecars:
        click.echo(f"  and {side}")


def _progress():
    state = {"stage": None}

    def report(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            state["stage"] = stage
            label = {"speech": "Speaking phrases", "encode": "Writing audio"}.get(stage, stage)
            click.echo(f"{label}...", err=True)

    return report
