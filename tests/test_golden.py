"""Every built-in exercise's rendering against its golden file (tests/golden.py writes them)."""
from __future__ import annotations

import pytest

from . import golden_update as golden

CASES = golden.cases()


@pytest.mark.parametrize("case", CASES, ids=golden.case_id)
def test_rendering_matches_its_golden_file(case):
    path = golden.path_for(case)
    assert path.exists(), f"no golden {path.name}: run scripts/update-golden, then read the diff"
    assert golden.render(case) == path.read_text(encoding="utf-8"), \
        f"{path.name} differs: if the change is meant, run scripts/update-golden and read the diff"


def test_every_golden_file_belongs_to_a_case():
    wanted = {golden.path_for(case).name for case in CASES}
    stale = sorted(p.name for p in golden.GOLDEN_DIR.glob("*.txt") if p.name not in wanted)
    assert stale == [], "stale golden files: scripts/update-golden removes them"


def test_the_cases_cover_each_exercise_length_variant_and_profile():
    by_name = {}
    for name, length, variant, profile in CASES:
        by_name.setdefault(name, set()).add((length, variant, profile))
    assert {"compassionate-self", "soothing-rhythm-breathing", "compassionate-place"} <= set(by_name)
    assert ("short", "group", "full") in by_name["compassionate-self"]
    assert all(len(combos) % 2 == 0 for combos in by_name.values())  # empty and full, always
