"""Template lint: render every version of an exercise and report what would sound wrong."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2
from jinja2 import meta

from compassion_audio.core.settings import BreathingSettings
from compassion_audio.core.errors import CompassionAudioError, MarkerError, SourceError
from compassion_audio.script.markers import parse
from compassion_audio.script.profile import ClientProfile, empty_profile, parse_profile
from compassion_audio.core.segments import Breathe, Pause, Speech
from compassion_audio.core.text import word_count

WORDS_PER_MINUTE = 130.0
"""Narration pace used for duration estimates (the guide's 110-140 wpm)."""
CONTEXT_NAMES = frozenset({"length", "group", "pause", "breathe", "bell", "chapter", "pick",
                           "join_and"})
WAY_OUT_SHARE = 0.35
"""The way-out line must come within this share of the words from the start."""
RETURN_SHARE = 0.25
"""The return to the room must come within this share of the words before the end."""

SAMPLE_PROFILE = """\
name = "Robin"
pronouns = "she/her"
colour = "soft gold"
kind_phrases = ["May I be kind to myself", "I am doing the best I can"]
achievements = ["finishing your course", "learning to swim as an adult"]
strengths = ["patience", "a good sense of humour"]
friends = ["Jo", "a colleague at work"]
length = "standard"

[place]
description = "a quiet beach at dusk"
sight = "soft light on the water"
sounds = "small waves on the sand"
touch = "warm sand under your feet"
smell = "salt in the air"
anchor_word = "shore"

[figure]
form = "an old oak tree"
qualities = ["wise", "strong", "patient"]
voice = "deep and unhurried"
pronouns = "it/its"

[breathing]
breaths_per_min = 5.5
ratio = "4:6"
"""
"""A full profile, every key set: lint renders each exercise with it and with an empty one."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template."""

    severity: str
    """error (the track cannot be made) or warning (it would read badly)."""
    message: str
    line: int | None = None
    """Line in the template file, when known."""


@dataclass(frozen=True)
class LintReport:
    """Everything lint found, and the estimated length of every version."""

    problems: list[Problem] = field(default_factory=list)
    durations: dict = field(default_factory=dict)
    """(length, variant, profile_kind) -> estimated seconds; variant is solo/group, kind empty/full."""

    @property
    def ok(self) -> bool:
        return not self.problems


@lru_cache(maxsize=1)
def sample_profile() -> ClientProfile:
    """The built-in full sample profile."""
    return parse_profile(SAMPLE_PROFILE, source="<sample profile>")


def check_exercise(exercise) -> LintReport:
    """Render ``exercise`` at every length x variant x {empty, full} profile and report problems."""
    problems = _source_problems(exercise)
    durations: dict = {}
    variants = ("solo", "group") if exercise.group else ("solo",)
    profiles = {"empty": empty_profile(), "full": sample_profile()}
    for length in exercise.lengths:
        for variant in variants:
            for kind, profile in profiles.items():
                where = f"{length}, {variant}, {kind} profile"
                seconds = _check_version(exercise, profile, length, variant == "group", where, problems)
                if seconds is not None:
                    durations[(length, variant, kind)] = seconds
    return LintReport(problems=_unique(problems), durations=durations)


def _check_version(exercise, profile, length, group, where, problems) -> float | None:
    from compassion_audio.script.templates import render_text

    values = template_values(exercise, profile)
    try:
        text = render_text(exercise, values, length=length, group=group)
    except SourceError as exc:
        problems.append(Problem("error", f"{where}: {exc.message}", exc.line))
        return None
    except CompassionAudioError as exc:
        problems.append(Problem("error", f"{where}: {exc}"))
        return None
    try:
        segments = parse(text, source=str(exercise.path))
    except MarkerError as exc:
        # The line is in the rendered text, not the template: say so rather than point wrongly.
        problems.append(Problem("error", f"{where}: {exc.message} (line {exc.line} of the rendered text)"))
        return None
    name = profile.values.get("name") or None
    for message in reading_problems(text, group=group, name=name):
        problems.append(Problem("warning", f"{where}: {message}"))
    return estimate_seconds(segments)


def template_values(exercise, profile: ClientProfile) -> dict:
    """The profile's values an exercise declares, plus a stand-in for each required one missing."""
    values = {k: v for k, v in profile.values.items() if k in exercise.params}
    for key, param in exercise.params.items():
        if param.required and key not in values:
            values[key] = _stand_in(param)
    return values


def _stand_in(param):
    if param.type == "list":
        return ["something"]
    if param.type in ("int", "float"):
        low = param.min if param.min is not None else 1
        return int(low) if param.type == "int" else float(low)
    return False if param.type == "bool" else "something"


def estimate_seconds(segments, *, breathing: BreathingSettings | None = None) -> float:
    """Words at 130 wpm, plus every pause and breathing stretch (gaps not counted)."""
    rate = (breathing or BreathingSettings()).breaths_per_min
    total = 0.0
    for seg in segments:
        if isinstance(seg, Speech):
            total += word_count(seg.text) * 60.0 / WORDS_PER_MINUTE
        elif isinstance(seg, Pause):
            total += seg.seconds
        elif isinstance(seg, Breathe):
            total += seg.seconds if seg.seconds is not None else \
                seg.breaths * 60.0 / (seg.breaths_per_min or rate)
    return total


def _source_problems(exercise) -> list[Problem]:
    """Syntax errors, names used but not declared, params declared but never used."""
    body = exercise.body
    try:
        tree = jinja2.Environment().parse(body)
    except jinja2.TemplateSyntaxError as exc:
        return [Problem("error", f"template syntax: {exc.message}", exc.lineno)]
    problems = []
    roots = {key.split(".")[0] for key in exercise.params}
    for undeclared in sorted(meta.find_undeclared_variables(tree) - CONTEXT_NAMES - roots):
        problems.append(Problem("error", f"{undeclared!r} is used but not declared in [params]",
                                _line_of_word(body, undeclared)))
    for key in exercise.params:
        if not re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", body):
            problems.append(Problem("warning", f"param {key!r} is declared but never used",
                                    _line_of_word(exercise.path.read_text(encoding="utf-8"), key.split(".")[-1])))
    return problems


def _line_of_word(text: str, word: str) -> int | None:
    match = re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _unique(problems: list[Problem]) -> list[Problem]:
    """One report per message: the same slip often shows in every version."""
    seen, kept = set(), []
    for problem in problems:
        key = (problem.severity, problem.message.split(": ", 1)[-1], problem.line)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


_MARKER = re.compile(r"\[(?:pause|breathe|bell|chapter)\b[^\]]*\]|<break[^>]*>", re.IGNORECASE)
_CHECKS = (
    (re.compile(r"\bNone\b"), "the word None (a missing value printed)"),
    (re.compile(r"\S[ \t]{2,}\S"), "a doubled space"),
    (re.compile(r"[,;:]\s*[,;:.!?]|[.!?]\s*[,;:]|(?<![.?!])\.\.(?!\.)|[!?]\s*[.!?]"),
     "doubled punctuation"),
    (re.compile(r"[ \t][,.;:!?]"), "a space before punctuation"),
    (re.compile(r"\"\s*\"|'\s*'|“\s*”|‘\s*’|\(\s*\)"), "empty quotes or brackets"),
    (re.compile(r"\b(?:and|or|but)\s*[,.;:!?]", re.IGNORECASE), "a dangling 'and'/'or' before punctuation"),
    (re.compile(r"\{\{|\}\}|\{%|%\}|\{#"), "template code left in the text"),
    (re.compile(r"\b(\w+) \1\b", re.IGNORECASE), "a doubled word"),
)
_WAY_OUT = re.compile(r"\bstop\b|\bpause (?:it|this|the (?:audio|recording))\b", re.IGNORECASE)
_GROUNDING = re.compile(r"open your eyes|look around|notice the room|feel your feet|feet on the floor",
                        re.IGNORECASE)
_RETURN = re.compile(r"\bthe room\b|open your eyes|eyes open|look around", re.IGNORECASE)


def reading_problems(text: str, *, group: bool, name: str | None) -> list[str]:
    """Heuristic checks on rendered text: what a listener would hear as a slip.

    Returns one message per problem found (empty when the text reads well).
    """
    spoken_lines = [_MARKER.sub("", line).strip() for line in text.split("\n")]
    problems = []
    for number, line in enumerate(spoken_lines, 1):
        for pattern, label in _CHECKS:
            found = pattern.search(line)
            if found:
                problems.append(f"line {number}: {label}: {found.group(0)!r}")
    if group and name and re.search(rf"\b{re.escape(name)}\b", text):
        problems.append(f"the client's name {name!r} appears in a group rendering")
    spoken = " ".join(line for line in spoken_lines if line)
    words = spoken.split()
    head = " ".join(words[:max(40, int(len(words) * WAY_OUT_SHARE))])
    tail = " ".join(words[-max(30, int(len(words) * RETURN_SHARE)):])
    if not (_WAY_OUT.search(head) and _GROUNDING.search(head)):
        problems.append("no way out near the start (you can stop at any time; open your eyes, "
                        "notice the room, feel your feet)")
    if not _RETURN.search(tail):
        problems.append("no return to the room near the end (body weight, sounds, eyes open)")
    return problems
