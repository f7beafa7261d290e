"""Programmes: the built-in course is complete and every track it names exists."""
from __future__ import annotations

import pytest

from compassion_audio.core.errors import ProgrammeError
from compassion_audio.script.programmes import list_programmes, load_programme
from compassion_audio.script.library import find_exercise


def test_cmt_8_week_structure():
    programme = load_programme("cmt-8-week")
    assert len(programme.weeks) == 8
    assert [w.number for w in programme.weeks] == list(range(1, 9))
    for week in programme.weeks:
        assert week.title and week.note and week.tracks
        # Soothing breathing is repeated every week.
        assert any(t.exercise == "soothing-rhythm-breathing" for t in week.tracks)
    names = [t.exercise for w in programme.weeks for t in w.tracks]
    order = ["three-systems", "compassionate-place", "compassionate-other", "compassionate-self",
             "self-critic-refocus", "compassionate-letter"]
    firsts = [names.index(n) for n in order]
    assert firsts == sorted(firsts)


def test_every_track_exists_at_its_length():
    programmes = list_programmes()
    assert [p.name for p in programmes] == ["cmt-8-week"]
    for programme in programmes:
        for week in programme.weeks:
            for track in week.tracks:
                assert track.length in find_exercise(track.exercise).lengths


def test_bad_programmes(tmp_path):
    missing = tmp_path / "bad.toml"
    missing.write_text('[[weeks]]\ntitle = "One"\ntracks = [{ exercise = "no-such-thing" }]\n')
    with pytest.raises(ProgrammeError, match="week 1: no exercise called 'no-such-thing'"):
        load_programme(str(missing))
    length = tmp_path / "len.toml"
    length.write_text('[[weeks]]\ntracks = [{ exercise = "three-systems", length = "huge" }]\n')
    with pytest.raises(ProgrammeError, match="has no length 'huge'"):
        load_programme(str(length))
    with pytest.raises(ProgrammeError, match="no programme called 'nope'"):
        load_programme("nope")
