"""Combine a client profile, ``-s`` overrides and an exercise into template values and settings."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from compassion_audio.script import profile as profiles
from compassion_audio.script import templates
from compassion_audio.core.settings import BreathingSettings
from compassion_audio.script.profile import ClientProfile


def _is_profile_key(key: str) -> bool:
    return key in profiles.BY_KEY or key in profiles.SETTINGS_KEYS or key.startswith("breathing.")


def personalise(exercise: templates.Exercise, profile: ClientProfile,
                sets: Mapping[str, str]) -> tuple[dict[str, object], ClientProfile]:
    """Template values for ``exercise`` and the profile with overrides applied.

    ``-s`` keys that are client-profile keys (``name``, ``place.smell``,
    ``breathing.breaths_per_min``, ``length``...) are validated as profile
    values; any other key must be one of the exercise's own parameters.
    """
    profile_sets = {k: v for k, v in sets.items() if _is_profile_key(k.strip())}
    own_sets = {k: v for k, v in sets.items() if not _is_profile_key(k.strip())}
    if profile_sets:
        profile = profiles.apply_overrides(profile, profile_sets)
    values: dict[str, object] = {k: v for k, v in profile.values.items() if k in exercise.params}
    if own_sets or profile_sets:
        declared = {k: v for k, v in profile_sets.items() if k in exercise.params}
        values.update(templates.coerce_values(exercise, {**declared, **own_sets}))
    return values, profile


def breathing_settings(profile: ClientProfile, base: BreathingSettings = BreathingSettings(),
                       **overrides: object) -> BreathingSettings:
    """Track breathing settings: defaults, then the profile, then explicit (non-None) overrides."""
    merged = {**profile.breathing, **{k: v for k, v in overrides.items() if v is not None}}
    return replace(base, **merged)
