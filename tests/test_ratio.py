"""One in:out ratio grammar, pinned through its three entry points: --ratio, [breathe ratio=] and profiles."""
from __future__ import annotations

import pytest

from compassion_audio.cli.options import breathing_overrides
from compassion_audio.core.errors import MarkerError, ParameterError, ProfileError
from compassion_audio.core.ratio import parse_ratio
from compassion_audio.script.markers import parse
from compassion_audio.script.profile import parse_profile

PROBLEM = "is not an in:out ratio (write two positive numbers separated by ':', e.g. 4:6)"


def from_option(text: str):
    try:
        return breathing_overrides(None, text, None, False, None, None)["ratio"]
    except ParameterError as exc:
        assert str(exc).startswith("--ratio: ")
        return str(exc).removeprefix("--ratio: ")


def from_marker(text: str):
    try:
        (breathe,) = parse(f"[breathe 1m ratio={text}]", source="t.j2")
        return breathe.ratio
    except MarkerError as exc:
        assert str(exc).startswith("t.j2:1:1: ")
        return str(exc).removeprefix("t.j2:1:1: ")


def from_profile(text: str):
    try:
        return parse_profile(f'[breathing]\nratio = "{text}"\n', source="p.toml").breathing["ratio"]
    except ProfileError as exc:
        assert str(exc).startswith("p.toml:2: breathing.ratio: ")
        return str(exc).removeprefix("p.toml:2: breathing.ratio: ")


ENTRY_POINTS = (from_option, from_marker, from_profile)


@pytest.mark.parametrize("text, ratio", [
    ("4:6", (4.0, 6.0)), ("4.5:5.5", (4.5, 5.5)), (".5:1", (0.5, 1.0)), ("4.:6", (4.0, 6.0)),
    ("1:1", (1.0, 1.0)), ("007:3", (7.0, 3.0)),
])
def test_good_ratios_read_alike_everywhere(text, ratio):
    assert parse_ratio(text) == ratio
    assert [read(text) for read in ENTRY_POINTS] == [ratio] * 3


@pytest.mark.parametrize("text", [
    "4-6", "4", "4:", ":6", "4:6:8", "4:6x", "", "4:0", "0:6", "0:0", "0.0:1", "-4:6", "4:-6", "+4:6",
    "nan:6", "4:nan", "inf:6", "4:inf", "1e3:2", "4_0:6", "9" * 400 + ":1",
])
def test_bad_ratios_give_one_message_everywhere(text):
    """Zero, negative, NaN, infinite (also by overflow), signed, exponent and malformed ratios."""
    message = f"{text!r} {PROBLEM}"
    with pytest.raises(ParameterError) as caught:
        parse_ratio(text)
    assert str(caught.value) == f"ratio: {message}"
    assert [read(text) for read in ENTRY_POINTS] == [message] * 3


def test_spaces_around_the_numbers_are_allowed_where_they_can_be_written():
    # A marker option ends at the first space, so only the option and a profile can hold them.
    assert from_option(" 4 : 6 ") == from_profile(" 4 : 6 ") == (4.0, 6.0)
