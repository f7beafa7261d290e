"""The one place that decides what of a client profile and ``-s`` values a track uses (group: no personal detail)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from compassion_audio.core.settings import BreathingSettings
from compassion_audio.script import profile as profiles
from compassion_audio.script.library import Exercise
from compassion_audio.script.params import coerce_values
from compassion_audio.script.profile import ABOUT, ClientProfile
from compassion_audio.script.wording import to_second_person

FROM_PROFILE, FROM_SETS = "profile", "-s"


@dataclass(frozen=True)
class Personalised:
    """What one render uses: template values, the profile's settings, and where each came from."""

    values: dict[str, object]
    profile: ClientProfile
    """The profile with ``-s`` overrides applied; for a group track, without its personal values."""
    filled: dict[str, str] = field(default_factory=dict)
    """Exercise parameter -> FROM_PROFILE or FROM_SETS, for each one given a value."""
    withheld: tuple[str, ...] = ()
    """Personal profile keys a group track leaves out (empty for an individual track)."""
    ignored: tuple[str, ...] = ()
    """``-s`` keys a group track never uses (a name, the client's own words), left out."""
    source: str = ""
    """The profile's file, for the notices."""

    @property
    def notices(self) -> list[str]:
        """One line each for what a group track leaves out: the profile's personal details,
        and ``-s`` values no group track uses."""
        lines = []
        if self.withheld:
            lines.append(f"group variant: personal details from {Path(self.source).name} are not used")
        if self.ignored:
            verb = "is" if len(self.ignored) == 1 else "are"
            lines.append(f"group variant: -s {', '.join(self.ignored)} {verb} not used (individual tracks only)")
        return lines


def _is_profile_key(key: str) -> bool:
    return key in profiles.BY_KEY or key in profiles.SETTINGS_KEYS or key.startswith("breathing.")


def personalise(exercise: Exercise, profile: ClientProfile, sets: Mapping[str, str], *,
                group: bool = False) -> Personalised:
    """Template values for ``exercise`` from the profile and the ``-s`` overrides.

    ``-s`` keys that are client-profile keys (``name``, ``place.smell``,
    ``breathing.breaths_per_min``, ``length``...) are validated as profile values; any
    other key must be one of the exercise's own parameters. [said to them] entries are
    spoken in the second person ("my sister" -> "your sister").

    For a group track the profile's personal values are left out (``withheld``); ``-s``
    values typed for this render are the facilitator's own and are used (a shared place,
    say), except the keys no group track ever speaks (a name, kind phrases, the critic's
    thought, the daily act), which are left out too (``ignored``). ``notices`` says so.
    """
    sets = {key.strip(): value for key, value in sets.items()}
    ignored: tuple[str, ...] = ()
    if group:
        ignored = tuple(k for k, v in sets.items() if _individual_only(k) and v.strip())
        sets = {k: v for k, v in sets.items() if not _individual_only(k)}
    profile_sets = {k: v for k, v in sets.items() if _is_profile_key(k)}
    own_sets = {k: v for k, v in sets.items() if not _is_profile_key(k)}
    withheld: tuple[str, ...] = ()
    if group:
        withheld = tuple(sorted(k for k in profile.values if profiles.BY_KEY[k].personal))
        profile = replace(profile, values={k: v for k, v in profile.values.items() if k not in withheld})
    if profile_sets:
        profile = profiles.apply_overrides(profile, profile_sets)
    values: dict[str, object] = {k: v for k, v in profile.values.items() if k in exercise.params}
    filled = {k: FROM_PROFILE for k in values}
    if own_sets or profile_sets:
        declared = {k: v for k, v in profile_sets.items() if k in exercise.params}
        typed = coerce_values(exercise, {**declared, **own_sets})
        values.update(typed)
        filled.update({k: FROM_SETS for k in typed})
    values = {k: _spoken(k, v) for k, v in values.items()}
    return Personalised(values, profile, filled, withheld, ignored, profile.source)


def _individual_only(key: str) -> bool:
    spec = profiles.BY_KEY.get(key)
    return spec is not None and spec.individual_only


def _spoken(key: str, value: object) -> object:
    """A [said to them] profile value as the track says it: first-person words in the second person."""
    spec = profiles.BY_KEY.get(key)
    if spec is None or spec.wording != ABOUT:
        return value
    if isinstance(value, str):
        return to_second_person(value)
    if isinstance(value, list):
        return [to_second_person(item) if isinstance(item, str) else item for item in value]
    return value


def breathing_settings(profile: ClientProfile, base: BreathingSettings = BreathingSettings(),
                       **overrides: object) -> BreathingSettings:
    """Track breathing settings: defaults, then the profile, then explicit (non-None) overrides."""
    merged = {**profile.breathing, **{k: v for k, v in overrides.items() if v is not None}}
    return replace(base, **merged)
