"""What list and show tell about an exercise: estimated lengths, parameters, and the same as JSON."""
from __future__ import annotations

from compassion_audio.script.library import Exercise
from compassion_audio.script.lint import template_values
from compassion_audio.script.params import default_text, describe
from compassion_audio.script.personalise import Personalised
from compassion_audio.script.profile import empty_profile

SET_BY = {"profile": "set by profile", "-s": "set by -s"}


def estimated_seconds(exercise: Exercise) -> dict[str, float]:
    """Seconds per length as the exercise renders with its defaults (a stand-in for each
    required parameter), the default voice and breathing: the figures ``list`` prints."""
    from compassion_audio.script.templates import render_script
    from compassion_audio.sound.estimate import estimate_timeline  # numpy: only when estimating

    values = template_values(exercise, empty_profile())
    return {length: estimate_timeline(render_script(exercise, values, length=length)).seconds
            for length in exercise.lengths}


def exercise_json(exercise: Exercise, estimates: dict[str, float]) -> dict[str, object]:
    """The documented keys of one exercise in ``list --json`` and ``show --json``."""
    return {"name": exercise.name, "title": exercise.title, "summary": exercise.summary,
            "lengths": list(exercise.lengths), "group": exercise.group,
            "estimated_seconds": {length: round(seconds, 1) for length, seconds in estimates.items()},
            "builtin": exercise.builtin, "path": str(exercise.path),
            "params": [describe(param) for param in exercise.params.values()]}


def params_json(exercise: Exercise, used: Personalised) -> list[dict[str, object]]:
    """``params`` for ``show --json``: each with ``set_by`` ("profile", "-s" or null) and
    ``withheld`` (the profile has it and a group track leaves the profile's value out; -s may
    still set it). Never the values."""
    return [{**describe(param), "set_by": used.filled.get(name), "withheld": name in used.withheld}
            for name, param in exercise.params.items()]


def param_lines(exercise: Exercise, used: Personalised) -> list[str]:
    """The parameters block ``show`` prints under the timeline (values are health data: never shown)."""
    if not exercise.params:
        return ["Parameters: none"]
    lines = ["Parameters (-s NAME=VALUE, or a client profile):"]
    width = max(len(name) for name in exercise.params)
    for name, param in exercise.params.items():
        state = SET_BY.get(used.filled.get(name, ""), "default")
        if name in used.withheld and name not in used.filled:
            state = "in profile, not used in a group track"
        lines.append(f"  {name:{width}}  {param.type:5}  default {default_text(param):10}  {state:14}  "
                     f"{param.help}".rstrip())
    return lines
