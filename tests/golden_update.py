"""Golden renderings of the built-in exercises: one set of cases, one profile, one writer.

``tests/golden/{exercise}-{length}-{variant}-{profile}.txt`` holds every built-in exercise at
each length and variant it has (``individual``, and ``group`` where it has one), rendered with
an empty profile and with the lint's sample profile (every client key set). Tests only compare
(tests/test_golden.py); ``scripts/update-golden`` (``python -m tests.golden_update``) rewrites them -
then read the diff before committing it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from compassion_audio.script.library import find_exercise, list_exercises
from compassion_audio.script.lint import sample_profile, template_values
from compassion_audio.script.personalise import personalise
from compassion_audio.script.profile import empty_profile
from compassion_audio.script.templates import render_text

GOLDEN_DIR = Path(__file__).parent / "golden"
PROFILES = {"empty": empty_profile, "full": sample_profile}
"""The two profiles: nothing set (every default), and the lint's sample (every key set)."""


def cases() -> list[tuple[str, str, str, str]]:
    """(exercise, length, variant, profile) for every golden file there should be."""
    found = []
    for exercise in (e for e in list_exercises() if e.builtin):
        variants = ("individual", "group") if exercise.group else ("individual",)
        found += [(exercise.name, length, variant, profile) for length in exercise.lengths
                  for variant in variants for profile in PROFILES]
    return found


def case_id(case: tuple[str, str, str, str]) -> str:
    return "-".join(case)


def path_for(case: tuple[str, str, str, str]) -> Path:
    return GOLDEN_DIR / f"{case_id(case)}.txt"


def render(case: tuple[str, str, str, str]) -> str:
    """The narration text with markers, as the product renders it for ``case``."""
    name, length, variant, profile = case
    exercise = find_exercise(name)
    group = variant == "group"
    # As a render does: the profile through personalise (a group track leaves out every
    # personal detail), plus lint's stand-ins for required parameters nobody set.
    used = personalise(exercise, PROFILES[profile](), {}, group=group)
    values = {**template_values(exercise, empty_profile()), **used.values}
    return render_text(exercise, values, length=length, group=group)


def main() -> None:
    """Rewrite every golden file and remove the ones no case names; say what changed."""
    GOLDEN_DIR.mkdir(exist_ok=True)
    wanted = {path_for(case): case for case in cases()}
    changed = []
    for path, case in wanted.items():
        text = render(case)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path.name)
    stale = sorted(p for p in GOLDEN_DIR.glob("*.txt") if p not in wanted)
    for path in stale:
        path.unlink()
    for name in changed:
        print(f"wrote   {name}")
    for path in stale:
        print(f"removed {path.name}")
    print(f"{len(wanted)} golden files, {len(changed)} written, {len(stale)} removed: read the diff "
          f"(git diff tests/golden) before committing it", file=sys.stderr)


if __name__ == "__main__":
    main()
