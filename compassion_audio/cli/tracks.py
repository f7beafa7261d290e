"""The list, show and render commands."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from compassion_audio.cli.options import (CACHE_DIR_OPTION, CLIENT_OPTION, EXERCISES_OPTION, GROUP_OPTION,
                                          LENGTH_OPTION, SETS_OPTION, TAG_OPTIONS, Command, Finite,
                                          breathing_overrides, export_settings, mix_settings, parse_sets)
from compassion_audio.core.limits import MAX_PAUSE_SECONDS
from compassion_audio.core.settings import FORMATS, RATE_WPM_RANGE
from compassion_audio.script.library import exercise_files, find_exercise
from compassion_audio.script.personalise import breathing_settings, personalise
from compassion_audio.script.profile import client_file_id, empty_profile, load_profile
from compassion_audio.script.templates import render_script

# The renderer and the estimator (numpy, scipy) are imported inside the commands that use
# them, so `--help` and the other commands start at once.

JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON for scripts and clinic tooling (keys in the README).")


def _mmss(frames: int, sample_rate: int) -> str:
    seconds = int(round(frames / sample_rate))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _script(exercise, sets, client, length, group, exercise_dirs):
    """The exercise, what the profile and -s give it (a group track: no personal detail), and
    its rendered script; what a group track leaves out is said on stderr."""
    ex = find_exercise(exercise, exercise_dirs)
    profile = load_profile(client) if client else empty_profile()
    used = personalise(ex, profile, parse_sets(sets), group=group)
    for notice in used.notices:
        click.echo(notice, err=True)
    script = render_script(ex, used.values, length=length or used.profile.length, group=group)
    return ex, used, script


@click.command("list", cls=Command)
@click.option("--programmes", is_flag=True, help="List the built-in programmes (courses) instead.")
@JSON_OPTION
@EXERCISES_OPTION
def list_command(programmes: bool, as_json: bool, exercise_dirs: tuple[Path, ...]) -> None:
    """List the exercises: name, title, lengths (estimated minutes) and group variant.

    \b
    Examples:
      compassion-audio list
      compassion-audio list --exercises ~/my-scripts
      compassion-audio list --programmes
      compassion-audio list --json
    """
    if programmes:
        from compassion_audio.script.programmes import list_programmes

        if as_json:
            _echo_json({"programmes": [_programme_json(prog) for prog in list_programmes()]})
            return
        for prog in list_programmes():
            click.echo(f"{prog.name}: {prog.title} - {prog.summary}")
            for week in prog.weeks:
                tracks = ", ".join(f"{t.exercise} ({t.length})" for t in week.tracks)
                click.echo(f"  week {week.number}: {week.title}: {tracks}")
            click.echo(f"  as an album: compassion-audio album --programme {prog.name} --week N "
                       "--client FILE.toml (album new FILE.toml --programme ... writes it to edit)")
        return
    from compassion_audio.cli.listing import summaries
    from compassion_audio.speech.cache import default_cache_dir

    found = summaries(list(exercise_files(exercise_dirs).values()), default_cache_dir())
    if as_json:
        _echo_json({"exercises": [entry for entry, _ in found]})
        return
    for entry, estimates in found:
        lengths = [f"{length} ~{seconds / 60:.0f}m" for length, seconds in estimates.items()]
        group = "group" if entry["group"] else "-"
        origin = "" if entry["builtin"] else "  (yours)"
        click.echo(f"{entry['name']:30} {entry['title']:34} {', '.join(lengths):36} {group}{origin}")


@click.command("show", cls=Command)
@click.argument("exercise")
@SETS_OPTION
@CLIENT_OPTION
@LENGTH_OPTION
@GROUP_OPTION
@click.option("--rate", "rate_wpm", type=click.IntRange(*RATE_WPM_RANGE),
              help="Speaking rate in words per minute, for the time estimates (default: the voice's).")
@JSON_OPTION
@EXERCISES_OPTION
def show_command(exercise, sets, client, length, group, rate_wpm, as_json, exercise_dirs) -> None:
    """Print the rendered script with its timeline (mm:ss per line; speech time estimated),
    then the exercise's parameters and which of them the profile or -s sets.

    \b
    Examples:
      compassion-audio show compassionate-self -s name=Jane --length short
      compassion-audio show compassionate-place --client clients/jane.toml --json
    """
    from compassion_audio.cli.exercise_info import estimated_seconds, exercise_json, param_lines, params_json
    from compassion_audio.sound.estimate import estimate_timeline

    from compassion_audio.speech.voices import resolve_voice

    ex, used, script = _script(exercise, sets, client, length, group, exercise_dirs)
    voice = resolve_voice(used.profile.voice)
    if rate_wpm:
        voice = voice.with_settings(rate_wpm=rate_wpm)
    timeline = estimate_timeline(script, voice=voice.settings, breathing=breathing_settings(used.profile))
    if as_json:
        _echo_json({**exercise_json(ex, estimated_seconds(ex)), "params": params_json(ex, used),
                    "script": {"length": script.meta["length"], "variant": script.meta["variant"],
                               **timeline.to_json()}})
        return
    sr = timeline.sample_rate
    click.echo(f"{script.title} ({script.meta['length']}, {script.meta['variant']}) - about "
               f"{_mmss(timeline.frames, sr)}")
    marks = sorted((c.start, c.title) for c in timeline.chapters)
    for event in timeline.events:
        while marks and marks[0][0] <= event.start:
            start, title = marks.pop(0)
            click.echo(f"{_mmss(start, sr)}  == {title} ==")
        seconds = (event.end - event.start) / sr
        label = {"speech": event.text, "pause": f"[pause {seconds:g}s]",
                 "breathe": f"[breathe {seconds:g}s]"}.get(event.kind, f"[{event.kind}]")
        click.echo(f"{_mmss(event.start, sr)}  {label}")
    click.echo("")
    for line in param_lines(ex, used):
        click.echo(line)


def _echo_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _programme_json(prog) -> dict:
    return {"name": prog.name, "title": prog.title, "summary": prog.summary,
            "weeks": [{"number": week.number, "title": week.title, "note": week.note,
                       "tracks": [{"exercise": t.exercise, "length": t.length} for t in week.tracks]}
                      for week in prog.weeks]}


@click.command("render", cls=Command)
@click.argument("exercise")
@SETS_OPTION
@CLIENT_OPTION
@LENGTH_OPTION
@GROUP_OPTION
@EXERCISES_OPTION
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Output file (default: output/<exercise>-<length>[-group].<format>; with --client, "
                   "output/client-<id>-<exercise>-<length>.<format>).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Audio format (default: from -o, else mp3).")
@click.option("--bitrate", help="Constant bitrate, e.g. 128k or 192k (default: MP3 VBR ~100-130k, Opus 96k, AAC 160k).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option("--name-in-file", is_flag=True,
              help="Put the client's name in the default file name and the title tag (off: privacy).")
@click.option("--voice", help="Voice profile, engine voice id, or pack:DIR ('compassion-audio voices').")
@click.option("--voices", "voice_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="A folder of your own voice profiles (also $COMPASSION_AUDIO_VOICES).")
@click.option("--fallback-voice", help="For a voice pack: speak phrases nobody recorded with this voice.")
@click.option("--rate", "rate_wpm", type=click.IntRange(*RATE_WPM_RANGE), help="Speaking rate in words per minute.")
@click.option("--breathing", "breaths_per_min", type=Finite(3, 12),
              help="Breathing pace in breaths per minute (3-12; default 6 or the profile's).")
@click.option("--ratio", help="In:out proportion of each breath, e.g. 4:6.")
@click.option("--pattern", help="Breath in seconds: in,hold,out,hold, e.g. 4,1,6,1.")
@click.option("--no-tones", is_flag=True, help="Silence instead of breathing-pace tones.")
@click.option("--tone-style", type=click.Choice(["glide", "chime", "quiet"]), help="How the pace sounds.")
@click.option("--tones-in-pauses", type=Finite(1, int(MAX_PAUSE_SECONDS)), metavar="SECONDS",
              help="Also pace pauses at least this long (1 s to 3 hours).")
@click.option("--no-bells", is_flag=True, help="No bell at the start and end.")
@click.option("--silent-timer", is_flag=True,
              help="Allow a script with no speech: a timer track of pauses, breathing and bells.")
@click.option("--bell-file", type=click.Path(exists=True, dir_okay=False), help="Your own bell sound.")
@click.option("--background", help="Ambient bed: pink, brown, rain, waves, or an audio file.")
@click.option("--background-level", type=Finite(-60, 0), metavar="DB",
              help="Bed level relative to the voice (default -22).")
@click.option("--loudness", metavar="LUFS", help="Loudness target: -16 (default), -19, -23, or off.")
@click.option("--channels", type=click.Choice(["1", "2"]), help="Mono (default) or stereo.")
@click.option("--sample-rate", type=click.Choice(["44100", "48000"]), help="Sample rate (default 44100).")
@click.option("--captions", is_flag=True, help="Write .vtt, .srt and a .txt transcript beside the audio.")
@click.option("--timeline", is_flag=True, help="Write <name>.timeline.json beside the audio.")
@click.option("--page", is_flag=True,
              help="Write <name>.html beside the audio: an offline session player with large captions.")
@click.option("--cover", type=click.Path(exists=True, dir_okay=False), help="Cover image (JPEG or PNG).")
@click.option("--title", help="Title tag (default: the exercise title).")
@click.option("--artist", help="Artist tag (default: the voice's name).")
@click.option("--album", help="Album tag.")
@click.option("--track", help="Track number tag, e.g. 3 or 3/12.")
@click.option("--year", help="Year tag.")
@click.option("--comment", help="Comment tag.")
@click.option("--no-cache", is_flag=True, help="Synthesise everything afresh; keep nothing on disk.")
@CACHE_DIR_OPTION
@click.option("-q", "--quiet", is_flag=True, help="Print only the output path.")
def render_command(exercise, sets, client, length, group, exercise_dirs, output, fmt, bitrate, force,
                   name_in_file, voice, voice_dirs, fallback_voice, rate_wpm, breaths_per_min, ratio,
                   pattern, no_tones, tone_style, tones_in_pauses, no_bells, silent_timer, bell_file, background,
                   background_level, loudness, channels, sample_rate, captions, timeline, page, cover,
                   title, artist, album, track, year, comment, no_cache, cache_dir, quiet) -> None:
    """Render an exercise (built-in name or a .j2 path) to an audio file.

    \b
    Examples:
      compassion-audio render compassionate-self -s name=Jane -o output/jane.mp3
      compassion-audio render compassionate-place --client jane.toml --captions
      compassion-audio render soothing-rhythm-breathing --length short --group --background rain
      compassion-audio render my-own-script.txt.j2 -o output/mine.ogg
    """
    from compassion_audio import render as rendering

    from compassion_audio.speech.voices import resolve_voice

    ex, used, script = _script(exercise, sets, client, length, group, exercise_dirs)
    profile, values = used.profile, used.values
    voice_profile = resolve_voice(voice or profile.voice, voice_dirs)
    if rate_wpm:
        voice_profile = voice_profile.with_settings(rate_wpm=rate_wpm)
    fallback = resolve_voice(fallback_voice, voice_dirs) if fallback_voice else None
    breathing = breathing_settings(profile, **breathing_overrides(
        breaths_per_min, ratio, pattern, no_tones, tone_style, tones_in_pauses))
    tags = dict(zip(TAG_OPTIONS, (title, artist, album, track, year, comment, None)))
    personal_name = str(values.get("name") or "") if name_in_file and not group else ""
    if personal_name and not title:
        tags["title"] = f"{script.title} - for {personal_name}"
    request = rendering.TrackRequest(
        exercise=ex.name if ex.builtin else str(ex.path), values=values,
        length=length or profile.length, group=group, voice_profile=voice_profile,
        fallback_profile=fallback, breathing=breathing,
        mix=mix_settings(no_bells=no_bells, bell_file=bell_file, background=background,
                         background_level=background_level, loudness=loudness,
                         channels=int(channels) if channels else None,
                         sample_rate=int(sample_rate) if sample_rate else None),
        export=export_settings(fmt=fmt, bitrate=bitrate, captions=captions, timeline=timeline,
                               cover=cover, tags=tags),
        output=output, name_prefix=_name_prefix(personal_name, client, group), force=force,
        use_cache=not no_cache, cache_dir=cache_dir, allow_silent=silent_timer,
        exercise_dirs=tuple(exercise_dirs), personal=True if client and not group else None)
    from compassion_audio.album.keys import keyed, resolve, up_to_date

    prepared = rendering.check_request(request)  # a bad file or path fails before the voice is asked
    decided = resolve(request, prepared)  # the render key: a file that carries it is this very render
    if not force and not page and up_to_date(decided):
        click.echo(str(decided.path) if quiet else f"up to date: {decided.path}")
        return
    request = keyed(request, decided.key)
    progress = None if quiet else _Progress()
    try:
        result = rendering.render_track(request, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    pages = ()
    if page:
        from compassion_audio.page import write_track_page

        pages = (write_track_page(result),)
    if quiet:
        click.echo(str(result.path))
        return
    minutes, seconds = divmod(int(round(result.timeline.seconds)), 60)
    click.echo(f"Wrote {result.path} ({minutes}:{seconds:02d}; {result.phrases} phrases, "
               f"{result.synthesised} newly spoken)")
    for side in (*result.sidecars, *pages):
        click.echo(f"  and {side}")


def _name_prefix(personal_name: str, client: Path | None, group: bool) -> str:
    """The default file name's prefix: the name with --name-in-file; else, for one client's
    individual track, the profile's file id (never a profile value); a group track has none."""
    if personal_name:
        return re.sub(r"[^A-Za-z0-9]+", "-", personal_name).strip("-").lower() or "client"
    return client_file_id(client) if client and not group else ""


class _Progress:
    """The library's progress callback as one bar per stage on a terminal, else one line per stage."""

    LABELS = {"render": "Speaking and writing", "correct": "Correcting loudness"}

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None
        self.shown = 0
        self.tty = sys.stderr.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            label = self.LABELS.get(stage, stage)
            if self.tty:
                self.bar = click.progressbar(length=max(total, 1), label=f"{label:20}", file=sys.stderr)
                self.bar.__enter__()
                self.shown = 0
            else:
                click.echo(f"{label}...", err=True)
        if self.bar is not None:
            self.bar.length = max(total, 1)  # an estimate until every phrase is spoken
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
