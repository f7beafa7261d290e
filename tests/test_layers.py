"""The package's layering: a stage imports only `core` and the stages before it; nothing imports `cli`.

Read from the source with `ast` (every `import` and `from ... import`, also those inside
functions), so a lazy import cannot slip past the rule.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "compassion_audio"

# What each unit may import (besides itself). Stages in pipeline order; `render` runs
# the pipeline; the CLI sits on top of everything; nothing sits on the CLI.
STAGES = ["core", "script", "speech", "sound", "output"]
ALLOWED: dict[str, set[str]] = {stage: set(STAGES[:i]) for i, stage in enumerate(STAGES)}
ALLOWED["render"] = set(STAGES)
ALLOWED["__init__"] = {"core", "render"}
ALLOWED["page"] = set(STAGES) | {"render"}
"""The session page is built from a rendered track, so it sits on render; only the CLI uses it."""
ALLOWED["album"] = set(STAGES) | {"render", "page"}
"""Albums run render_track for each track and write each folder's session page; only the CLI uses them."""
ALLOWED["cli"] = set(STAGES) | {"render", "page", "album", "__init__"}
ALLOWED["__main__"] = {"cli"}


def unit_of(path: Path) -> str:
    """'core' for compassion_audio/core/x.py, 'render' for compassion_audio/render.py."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(path: Path, package: Path = PACKAGE) -> set[tuple[str, int]]:
    """(unit, line) for every import of compassion_audio's own code in the file."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = list(path.relative_to(package).parent.parts)
                base = base[: len(base) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "compassion_audio":
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add((parts[0], node.lineno))
            else:  # from compassion_audio import a, b
                found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "compassion_audio" and len(parts) > 1:
                    found.add((parts[1], node.lineno))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_unit():
    unknown = sorted({unit_of(p) for p in MODULES} - set(ALLOWED))
    assert not unknown, f"new package(s) {unknown}: add them to ALLOWED in {Path(__file__).name}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_pipeline(path):
    unit = unit_of(path)
    wrong = sorted(f"line {line}: imports {target}" for target, line in imported_units(path)
                   if target != unit and target != "__version__" and target not in ALLOWED[unit])
    assert not wrong, f"{path.relative_to(PACKAGE)} ({unit}) may import only {sorted(ALLOWED[unit])}: {wrong}"


def test_the_rule_catches_a_violation(tmp_path):
    # The checker itself: a core module importing the CLI or a later stage is found, lazily or not.
    package = tmp_path / "compassion_audio"
    probe = package / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("import numpy\nfrom compassion_audio.core import audio\n"
                     "def f():\n    from compassion_audio.cli.app import cli\n    from ..sound import mix\n"
                     "    from compassion_audio import render\n", encoding="utf-8")
    assert imported_units(probe, package) == {("core", 2), ("cli", 4), ("sound", 5), ("render", 6)}
