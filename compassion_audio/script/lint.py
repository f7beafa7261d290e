"""Template lint: render every version of an exercise and report what would sound wrong."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2
from jinja2 import meta

from compassion_audio.core.errors import CompassionAudioError, MarkerError, SourceError
from compassion_audio.core.segments import Chapter, Script, Speech
from compassion_audio.core.settings import BreathingSettings
from compassion_audio.script.pause_notes import ELLIPSIS, ellipsis_message, notes_in
from compassion_audio.script.personalise import breathing_settings
from compassion_audio.script.profile import ClientProfile, empty_profile, parse_profile
from compassion_audio.script.source_lines import template_lines
from compassion_audio.script.templates import VARIANTS, check_track_length, parse_rendered, render_text

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
class Version:
    """One rendering lint made: its script and the breathing settings its profile gives.

    Lint does not time it: how long a script plays is the planner's business
    (``sound.estimate``), which the script stage cannot import; the caller times it.
    """

    script: Script
    breathing: BreathingSettings


@dataclass(frozen=True)
class LintReport:
    """Everything lint found, and every version that rendered."""

    problems: list[Problem] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    """(length, variant, profile_kind) -> Version; variant individual/group, kind empty/full."""

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
    versions: dict = {}
    profiles = {"empty": empty_profile(), "full": sample_profile()}
    for length in exercise.lengths:
        for group in (False, True) if exercise.group else (False,):
            for kind, profile in profiles.items():
                where = f"{length}, {VARIANTS[group]}, {kind} profile"
                script = _check_version(exercise, profile, length, group, where, problems)
                if script is not None:
                    versions[(length, VARIANTS[group], kind)] = Version(script, breathing_settings(profile))
    return LintReport(problems=_unique(problems), versions=versions)


def _check_version(exercise, profile, length, group, where, problems) -> Script | None:
    values = template_values(exercise, profile)
    try:
        text = render_text(exercise, values, length=length, group=group)
    except SourceError as exc:
        if exc.source != str(exercise.path):  # a template it includes
            problems.append(Problem("error", f"{where}: {exc}"))
        else:
            problems.append(Problem("error", f"{where}: {exc.message}", exc.line))
        return None
    except CompassionAudioError as exc:
        problems.append(Problem("error", f"{where}: {exc}"))
        return None
    try:
        script = parse_rendered(exercise, text, length=length, group=group)
    except MarkerError as exc:
        # The line is in the rendered text, not the template: say so rather than point wrongly.
        problems.append(Problem("error", f"{where}: {exc.message} (line {exc.line} of the rendered text)"))
        return None
    try:
        check_track_length(exercise, script)
    except SourceError as exc:
        problems.append(Problem("error", f"{where}: {exc.message}"))
        return None
    name = profile.values.get("name") or None
    lines = template_lines(exercise, values, length=length, group=group, text=text)
    for number, message in _reading_findings(text, group=group, name=name):
        line = lines[number - 1] if lines and number and number <= len(lines) else None
        if number and line is None:
            message += f" (line {number} of the rendered text)"
        problems.append(Problem("warning", f"{where}: {message}", line))
    late = _chapter_after_speech(script)
    if late is not None:
        problems.append(Problem("warning", f"{where}: the first [chapter] comes after speech; players "
                                "start the first chapter at 0:00, so the words before it fall under "
                                "its title: put the marker first", late.line))
    return script


def _chapter_after_speech(script: Script) -> Chapter | None:
    """The first chapter, when words are spoken before it."""
    for segment in script.segments:
        if isinstance(segment, Chapter):
            return None
        if isinstance(segment, Speech):
            return next((s for s in script.segments if isinstance(s, Chapter)), None)
    return None


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
                                    exercise.key_line(key, table="params")))
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

    Returns one message per problem found (empty when the text reads well); a problem on
    a line starts "line N: " (N counts lines of ``text``).
    """
    return [f"line {number}: {message}" if number else message
            for number, message in _reading_findings(text, group=group, name=name)]


def _reading_findings(text: str, *, group: bool, name: str | None) -> list[tuple[int | None, str]]:
    """(line of ``text`` or None, message) for each problem reading_problems reports."""
    lines = text.split("\n")
    problems: list[tuple[int | None, str]] = []
    for number, line in enumerate(lines, 1):
        # Each stretch between markers is spoken on its own: "Think. [pause 15s] Alongside."
        # has no doubled space.
        for piece in (p.strip() for p in _MARKER.split(line)):
            for pattern, label in _CHECKS:
                found = pattern.search(piece)
                if found:
                    problems.append((number, f"{label}: {found.group(0)!r}"))
            problems += [(number, message) for message in notes_in(piece)]
    problems += [(number, ellipsis_message(ellipsis)) for number, ellipsis in _paragraph_ellipses(lines)]
    problems.sort(key=lambda p: p[0])
    if group and name and re.search(rf"\b{re.escape(name)}\b", text):
        problems.append((None, f"the client's name {name!r} appears in a group rendering"))
    spoken = " ".join(_MARKER.sub(" ", text).split())
    words = spoken.split()
    head = " ".join(words[:max(40, int(len(words) * WAY_OUT_SHARE))])
    tail = " ".join(words[-max(30, int(len(words) * RETURN_SHARE)):])
    if not (_WAY_OUT.search(head) and _GROUNDING.search(head)):
        problems.append((None, "no way out near the start (you can stop at any time; open your eyes, "
                               "notice the room, feel your feet)"))
    if not _RETURN.search(tail):
        problems.append((None, "no return to the room near the end (body weight, sounds, eyes open)"))
    return problems


_PAUSING = re.compile(r"\[(?:pause|breathe)\b|<break", re.IGNORECASE)


def _paragraph_ellipses(lines: list[str]) -> list[tuple[int, str]]:
    """(line, ellipsis) where a paragraph ends on "..." or "…" and no pause marker follows:
    the voice goes straight on to what comes next."""
    found: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    ended = False  # a blank line since the pending ellipsis
    for number, line in enumerate(lines, 1):
        if not line.strip():
            ended = pending is not None
            continue
        before = [None, *_MARKER.findall(line)]  # the marker before each piece
        for marker, piece in zip(before, _MARKER.split(line)):
            if marker is not None:
                if pending and not _PAUSING.match(marker):
                    found.append(pending)
                pending = None
            if piece.strip():
                if pending and ended:
                    found.append(pending)
                tail = ELLIPSIS.search(piece.rstrip())
                alone = ELLIPSIS.fullmatch(piece.strip())  # reported as a note already
                pending = (number, tail.group(0)) if tail and not alone else None
                ended = False
    if pending:
        found.append(pending)
    return found
