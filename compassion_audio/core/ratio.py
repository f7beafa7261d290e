"""The in:out breathing ratio ("4:6"): one grammar for the command line, markers and profiles."""
from __future__ import annotations

import math
import re

from compassion_audio.core.errors import ParameterError

RATIO_HINT = "write two positive numbers separated by ':', e.g. 4:6"
_NUMBER = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_RATIO = re.compile(rf"\s*{_NUMBER}\s*:\s*{_NUMBER}\s*")


def parse_ratio(text: object, *, source: str = "ratio") -> tuple[float, float]:
    """``"4:6"`` -> (4.0, 6.0).

    Grammar: two positive, finite decimal numbers (``4``, ``4.5``, ``.5``) separated
    by ``:``, spaces allowed around each. No sign, exponent, ``inf`` or ``nan``;
    zero is rejected. Anything else is a ParameterError from ``source``.
    """
    match = _RATIO.fullmatch(text) if isinstance(text, str) else None
    ratio = (float(match.group(1)), float(match.group(2))) if match else (0.0, 0.0)
    if not all(math.isfinite(part) and part > 0 for part in ratio):
        raise ParameterError(f"{str(text)!r} is not an in:out ratio", source=source, hint=RATIO_HINT)
    return ratio
