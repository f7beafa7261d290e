"""The one length estimate (sound.estimate): exact arithmetic, and every built-in exercise against its real render.

Measured when this file was written (standard length, the default voice calm-female through
pyttsx3 + espeak-ng, bells on, decoded WAV length), estimate minus render:
breathing-pacer +1.3 %, compassion-flows +2.1 %, compassionate-colour +1.2 %,
compassionate-letter +2.1 %, compassionate-other +2.2 %, compassionate-place +4.6 %,
compassionate-self +0.7 %, criticism-kindness-contrast +3.1 %, daily-compassionate-act +0.9 %,
self-critic-refocus +2.0 %, soothing-rhythm-breathing +2.7 %, three-systems +1.8 %.
The estimate runs long because espeak speaks a sentence a little faster (~137 wpm of audible
speech) than the voice's 125 wpm; the timeline around the speech is exact.
"""
from __future__ import annotations

import pytest

from compassion_audio.core.audio import seconds_to_frames
from compassion_audio.core.segments import Script
from compassion_audio.core.settings import MixSettings, VoiceSettings
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.script.library import list_exercises
from compassion_audio.script.markers import parse
from compassion_audio.script.templates import render_script
from compassion_audio.sound import bells
from compassion_audio.sound.estimate import estimate_timeline
from compassion_audio.speech.voices import resolve_voice

from .conftest import decode

SR = 44100
TOLERANCE = 0.06
"""Estimate within ±6 % of the rendered length: the measured spread is +0.7 to +4.6 %."""
TEXT = "Hello there.\n[pause 30s]\nOne two three four.\n\nFive six.\n[breathe 6 breaths]\nEnd.\n"
VOICE = VoiceSettings(rate_wpm=120, sentence_gap_seconds=0.7, paragraph_gap_seconds=1.4)
"""Half a second per word."""


def script() -> Script:
    return Script(title="T", segments=parse(TEXT, source="t"))


def test_estimate_is_the_planner_with_speech_timed_from_words():
    f = lambda seconds: seconds_to_frames(seconds, SR)  # noqa: E731 - one rounding rule
    # Lead-in; 2 words; 30 s pause (no gap); 4 words; paragraph gap and 2 words; 6 breaths at
    # 6/min; 1 word right after the breathing (no gap); tail.
    content = f(1.0) + f(1.0) + f(30) + f(2.0) + f(1.4) + f(1.0) + f(60) + f(0.5)
    plain = estimate_timeline(script(), voice=VOICE, mix=MixSettings(bells=False))
    assert plain.frames == content + f(2.0)
    assert [e.kind for e in plain.events] == ["speech", "pause", "speech", "speech", "breathe", "speech"]

    bowl = bells.singing_bowl(SR)
    ring = bells.ring_frames(bowl, SR)
    # The opening bell rings, then a paragraph gap; after the last word a gap and the whole bell.
    belled = estimate_timeline(script(), voice=VOICE)
    assert belled.frames == content + ring + f(1.4) + f(1.4) + bowl.shape[0] + f(2.0)
    assert [e.kind for e in belled.events][::len(belled.events) - 1] == ["bell", "bell"]


def test_no_voice_means_the_default_voice_profile():
    default = resolve_voice(None).settings
    assert estimate_timeline(script()).frames == estimate_timeline(script(), voice=default).frames
    assert estimate_timeline(script()).frames != estimate_timeline(script(), voice=VOICE).frames


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every built-in exercise at standard length, rendered with the defaults to WAV (one cache)."""
    folder = tmp_path_factory.mktemp("estimate")
    out = {}
    for exercise in (ex for ex in list_exercises() if ex.builtin):
        result = render_track(TrackRequest(exercise=exercise.name, length="standard",
                                           output=folder / f"{exercise.name}.wav", cache_dir=folder / "cache"))
        out[exercise.name] = (exercise, decode(result.path).size / SR)
    return out


@pytest.mark.engine
def test_estimate_is_within_tolerance_of_the_rendered_length(rendered):
    """For every built-in exercise (standard, real espeak-ng engine, default settings), the
    estimate `list`, `show` and `check` print is within ±6 % of the decoded WAV's length."""
    errors = {}
    for name, (exercise, seconds) in rendered.items():
        estimate = estimate_timeline(render_script(exercise, {}, length="standard")).seconds
        errors[name] = (estimate - seconds) / seconds
    report = ", ".join(f"{name} {error:+.1%}" for name, error in errors.items())
    assert len(errors) >= 12, report
    assert all(abs(error) <= TOLERANCE for error in errors.values()), report
