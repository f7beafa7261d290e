"""Turning command-line option values into settings objects (shared by render and voices try)."""
from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import click

from compassion_audio.core.errors import ParameterError
from compassion_audio.core.ratio import parse_ratio
from compassion_audio.core.settings import BITRATE_KBPS, LOUDNESS_LUFS, ExportSettings, MixSettings, is_bitrate
from compassion_audio.script.templates import LENGTHS

TAG_OPTIONS = ("title", "artist", "album", "track", "year", "comment", "genre")


class UsageLine(click.UsageError):
    """A command-line mistake (unknown option, a value out of range) as one line, exit 2."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _one_line(exc: click.UsageError) -> click.UsageError:
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return exc  # a bare group shows its help
    line = UsageLine(exc.format_message().rstrip(), ctx=exc.ctx)
    line.exit_code = exc.exit_code
    return line


class Command(click.Command):
    """A command whose usage errors are one line (``error: ...``), like every other error."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


class Group(click.Group):
    """A group of commands: its own and its commands' usage errors are one line."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None


Group.group_class = Group


class Finite(click.FloatRange):
    """A float option in a range that refuses NaN and infinity (click's FloatRange lets NaN through:
    every comparison with it is false)."""

    def convert(self, value, param, ctx):
        number = value if isinstance(value, float) else click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a number in the range {self._describe_range()}.", param, ctx)
        return super().convert(number, param, ctx)


EXERCISES_OPTION = click.option(
    "--exercises", "exercise_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
    help="A folder of your own exercise templates (repeatable; also $COMPASSION_AUDIO_EXERCISES).")


CACHE_DIR_OPTION = click.option(
    "--cache-dir", type=click.Path(path_type=Path, file_okay=False), envvar="COMPASSION_AUDIO_CACHE",
    help="Where synthesised phrases are kept (default: the user cache folder; also $COMPASSION_AUDIO_CACHE).")

SETS_OPTION = click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
                           help="Set a parameter or profile value (repeatable), e.g. -s place.smell=pine.")
CLIENT_OPTION = click.option("--client", type=click.Path(path_type=Path, dir_okay=False),
                             help="A client profile (TOML; 'compassion-audio client new' writes one).")
LENGTH_OPTION = click.option("--length", type=click.Choice(LENGTHS),
                             help="The version of the practice (default: the profile's, else standard).")
GROUP_OPTION = click.option("--group", is_flag=True,
                            help="The group variant: no names, inclusive wording.")

VOICES_DIRS = click.option("--voices", "voice_dirs", multiple=True,
                           type=click.Path(path_type=Path, file_okay=False),
                           help="A folder of your own voice profiles (also $COMPASSION_AUDIO_VOICES).")


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


def parse_pattern(text: str | None) -> dict[str, float]:
    """``4,1,6,1`` seconds (in, hold, out, hold) -> BreathingSettings fields."""
    if text is None:
        return {}
    parts = text.replace(":", ",").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) and v >= 0 for v in values) \
            or values[0] <= 0 or values[2] <= 0:
        raise ParameterError(f"{text!r} is not in,hold,out,hold seconds", source="--pattern",
                             hint="write e.g. 4,1,6,1; holds may be 0")
    breath_in, hold_in, breath_out, hold_out = values
    cycle = sum(values)
    return {"breaths_per_min": 60.0 / cycle, "ratio": (breath_in, breath_out),
            "hold_in_seconds": hold_in, "hold_out_seconds": hold_out}


def parse_loudness(text: str | None) -> float | None | str:
    """``-16`` -> -16.0; ``off`` -> None; no option -> the sentinel 'default'."""
    if text is None:
        return "default"
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    low, high = LOUDNESS_LUFS
    if value is None or not low <= value <= high:  # NaN fails the comparison too
        raise ParameterError(f"{text!r} is not a loudness target", source="--loudness",
                             hint=f"give LUFS between {low:g} and {high:g}, e.g. -16, -19 or -23, or 'off'")
    return value


def breathing_overrides(rate, ratio, pattern, no_tones, style, tones_in_pauses) -> dict:
    """BreathingSettings fields the command line sets (None where it says nothing)."""
    fields = parse_pattern(pattern)
    if rate is not None:
        fields["breaths_per_min"] = rate
    if ratio is not None:
        fields["ratio"] = parse_ratio(ratio, source="--ratio")
    if no_tones:
        fields["tones"] = False
    if style is not None:
        fields["style"] = style
    if tones_in_pauses is not None:
        fields["tones_in_pauses_seconds"] = tones_in_pauses
    return fields


def mix_settings(*, no_bells=False, bell_file=None, background=None, background_level=None,
                 loudness=None, channels=None, sample_rate=None) -> MixSettings:
    mix = MixSettings(bells=not no_bells, bell_file=Path(bell_file) if bell_file else None,
                      background=background)
    if background_level is not None:
        mix = replace(mix, background_level_db=background_level)
    target = parse_loudness(loudness)
    if target != "default":
        mix = replace(mix, loudness_lufs=target)
    if channels:
        mix = replace(mix, channels=channels)
    if sample_rate:
        mix = replace(mix, sample_rate=sample_rate)
    return mix


def export_settings(*, fmt=None, bitrate=None, captions=False, timeline=False, cover=None,
                    tags: dict | None = None) -> ExportSettings:
    export = ExportSettings(format=fmt, captions=captions, timeline_json=timeline,
                            cover=Path(cover) if cover else None,
                            tags={k: str(v) for k, v in (tags or {}).items() if v is not None})
    if bitrate:
        export = replace(export, bitrate=check_bitrate(bitrate, source="--bitrate"))
    if export.tags.get("track"):
        check_track(export.tags["track"])
    return export


MAX_TRACK_NUMBER = 999


def check_track(text: str) -> str:
    """``3`` or ``3/12``: a track number from 1 to MAX_TRACK_NUMBER, no more than the total."""
    match = re.fullmatch(r"([0-9]{1,3})(?:/([0-9]{1,3}))?", text.strip())
    number, total = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (0, 0)
    if not 1 <= number <= total:
        raise ParameterError(f"{text!r} is not a track number", source="--track",
                             hint=f"write n or n/total from 1 to {MAX_TRACK_NUMBER}, e.g. 3 or 3/12")
    return text


def check_bitrate(text: object, *, source: str) -> str:
    """``"128k"`` if it is a bitrate in BITRATE_KBPS, else a ParameterError from ``source``."""
    low, high = BITRATE_KBPS
    if not is_bitrate(text):
        raise ParameterError(f"{text!r} is not a bitrate", source=source,
                             hint=f"write {low}k to {high}k, e.g. 128k or 192k")
    return text

