"""One speaking-rate range (settings.RATE_WPM_RANGE): the CLI, voice profiles and the engine agree."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from compassion_audio.cli import cli
from compassion_audio.core.errors import ProfileError, VoiceError
from compassion_audio.core.settings import RATE_WPM_RANGE, VoiceSettings
from compassion_audio.speech import voices
from compassion_audio.speech.engines.pyttsx3_engine import (ESPEAK_RATE_TABLE, Pyttsx3Engine,
                                                            _check_ranges, espeak_rate_for)

from .test_voices import PARAGRAPH, heard_wpm

LOW, HIGH = RATE_WPM_RANGE


@pytest.mark.parametrize("command", [["show", "compassionate-self"],
                                     ["render", "compassionate-self", "-o", "x.wav"],
                                     ["voices", "try", "calm-male"]], ids=["show", "render", "try"])
@pytest.mark.parametrize("rate", [LOW - 1, HIGH + 1])
def test_the_cli_refuses_a_rate_just_outside_the_range(command, rate, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [*command, "--rate", str(rate)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: Invalid value for '--rate': {rate} is not in the range {LOW}<=x<={HIGH}.\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rate", [LOW, HIGH])
def test_the_cli_takes_the_ends_of_the_range(rate):
    result = CliRunner().invoke(cli, ["show", "compassionate-self", "--rate", str(rate)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("rate, line", [(LOW - 1, 3), (HIGH + 1, 3)])
def test_a_profile_outside_the_range_names_its_file_and_line(tmp_path, rate, line):
    path = tmp_path / "mine.toml"
    path.write_text(f'name = "Mine"\nengine = "pyttsx3"\nrate_wpm = {rate}\n', encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        voices.load_voice_profile(path)
    assert str(err.value) == f"{path}:{line}: rate_wpm = {rate} is out of range (use {LOW} to {HIGH})"


@pytest.mark.parametrize("rate", [LOW, HIGH])
def test_a_profile_at_the_ends_of_the_range_loads(tmp_path, rate):
    path = tmp_path / "mine.toml"
    path.write_text(f'name = "Mine"\nrate_wpm = {rate}\n', encoding="utf-8")
    assert voices.load_voice_profile(path).settings.rate_wpm == rate


def test_espeak_can_follow_every_rate_in_the_range():
    """Every rate passes the engine's check and maps to its own espeak setting, all above
    80 - the slowest setting, below which espeak sounds no slower - and inside the table."""
    rates = range(LOW, HIGH + 1)
    for rate in rates:
        _check_ranges(VoiceSettings(rate_wpm=rate))
    settings = [espeak_rate_for(rate) for rate in rates]
    assert settings == sorted(settings)
    assert ESPEAK_RATE_TABLE[0][0] < settings[0] and settings[-1] < ESPEAK_RATE_TABLE[-1][0]


@pytest.mark.parametrize("rate", [LOW - 1, HIGH + 1])
def test_the_engine_refuses_a_rate_just_outside_the_range(rate):
    with pytest.raises(VoiceError, match=f"^rate_wpm {rate} is outside {LOW}-{HIGH} wpm"):
        Pyttsx3Engine(VoiceSettings(rate_wpm=rate))


@pytest.mark.engine
@pytest.mark.parametrize("rate", [LOW, 130, 175, HIGH])
def test_the_engine_speaks_at_the_rate_asked_across_the_range(rate):
    with Pyttsx3Engine(VoiceSettings(rate_wpm=rate)) as engine:
        audio = engine.synthesize(PARAGRAPH)
    assert heard_wpm(audio, PARAGRAPH) == pytest.approx(rate, rel=0.10)
