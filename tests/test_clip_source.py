"""ClipSource.ahead(), the path render.py takes: thread hand-off, errors and early stops."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from compassion_audio.core.audio import Audio
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.settings import MixSettings
from compassion_audio.render import TrackRequest, render_track
from compassion_audio.speech import voices
from compassion_audio.speech.cache import ClipCache
from compassion_audio.speech.clip_source import ClipSource

from .conftest import FakeEngine

SR = 44100
SENTENCES = [f"Phrase number {i} is here." for i in range(12)]


class SlowEngine(FakeEngine):
    """The fake engine, 20 ms a phrase, noting the thread that speaks and when; fails on
    request (``fail_at``: the phrase whose synthesis raises; ``silent_at``: one spoken as
    silence, which clip processing refuses)."""

    def __init__(self, *, fail_at: str | None = None, silent_at: str | None = None) -> None:
        super().__init__()
        self.fail_at, self.silent_at = fail_at, silent_at
        self.threads: set[str] = set()
        self.spoken_at: list[float] = []

    def synthesize(self, text: str) -> Audio:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.02)
        if text == self.fail_at:
            raise SpeechError(f"could not synthesise '{text}': the engine failed")
        audio = super().synthesize(text)
        self.spoken_at.append(time.monotonic())
        if text == self.silent_at:
            return Audio(np.zeros_like(audio.samples), audio.sample_rate)
        return audio


def helper_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


def settled(before: set[threading.Thread], seconds: float = 5.0) -> set[threading.Thread]:
    """The threads started since ``before`` still alive after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while (extra := helper_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    return extra


def consume(iterator, results: list, *, limit_seconds: float = 20.0) -> BaseException | None:
    """Run ``iterator`` to its end on a thread; fail instead of hanging the suite."""
    outcome: list[BaseException | None] = [None]

    def run() -> None:
        try:
            for item in iterator:
                results.append(item)
        except BaseException as exc:  # handed to the test
            outcome[0] = exc

    runner = threading.Thread(target=run, name="test-consumer")
    runner.start()
    runner.join(limit_seconds)
    assert not runner.is_alive(), f"the clip stream hung (got {len(results)} clips)"
    return outcome[0]


def test_clips_come_in_script_order_from_helper_threads(tmp_path):
    engine = SlowEngine()
    cache = ClipCache(tmp_path / "cache")
    wanted = SENTENCES + SENTENCES[:3]  # repeats are spoken once, handed back at their first place
    source = ClipSource(wanted, engine, cache, sample_rate=SR)
    got: list = []
    assert consume(source.ahead(), got) is None
    assert [s for s, _ in got] == SENTENCES
    assert all(clip.text == s for s, clip in got)
    assert engine.calls == SENTENCES
    assert engine.threads == {"compassion-audio-speech"}  # never the consumer's thread


def test_speech_runs_ahead_while_the_consumer_waits(tmp_path):
    """The consumer takes the first clip, then mixes for 0.5 s: the helper threads keep
    speaking meanwhile, so the rest is ready when it asks again."""
    before = helper_threads()
    engine = SlowEngine()
    source = ClipSource(SENTENCES, engine, ClipCache(tmp_path / "cache"), sample_rate=SR)
    stream = source.ahead()
    first = next(stream)
    took_first = time.monotonic()
    time.sleep(0.5)
    spoken_at = list(engine.spoken_at)
    start = time.monotonic()
    rest = list(stream)
    assert len(spoken_at) == len(SENTENCES)  # all spoken during the wait...
    assert any(t > took_first for t in spoken_at)  # ...some of it after the first clip was taken
    assert time.monotonic() - start < 0.1  # so nothing was left to wait for
    assert [first[0]] + [s for s, _ in rest] == SENTENCES
    assert settled(before) == set()


@pytest.mark.parametrize("fault", ["engine", "processing"])
def test_an_error_on_a_helper_thread_reaches_the_consumer(fault, tmp_path):
    """Raised on the speech thread (the engine) or the processing thread (a silent clip):
    the consumer gets the named SpeechError - no hang - and speech stops soon after; the
    clips finished before the fault are in the cache, so a second try does not re-speak them."""
    before = helper_threads()
    sentences = [f"Phrase number {i} is here." for i in range(40)]
    bad = sentences[5]
    engine = SlowEngine(fail_at=bad) if fault == "engine" else SlowEngine(silent_at=bad)
    cache = ClipCache(tmp_path / "cache")
    got: list = []
    error = consume(ClipSource(sentences, engine, cache, sample_rate=SR).ahead(), got)
    assert isinstance(error, SpeechError) and "phrase 6 of 40" in str(error), repr(error)
    assert [s for s, _ in got] == sentences[:len(got)] and len(got) <= 5
    # The speech thread runs at most 4 phrases ahead of processing, which runs 4 ahead of the consumer.
    assert len(engine.calls) <= 6 + 2 * 4, len(engine.calls)
    assert settled(before) == set()
    again = ClipSource(sentences, SlowEngine(), cache, sample_rate=SR)
    assert set(sentences[:5]) <= set(again.ready) and bad not in again.ready


def test_a_consumer_that_stops_early_leaves_no_thread(tmp_path):
    before = helper_threads()
    engine = SlowEngine()
    source = ClipSource(SENTENCES, engine, ClipCache(tmp_path / "cache"), sample_rate=SR)
    stream = source.ahead()
    assert [next(stream)[0] for _ in range(2)] == SENTENCES[:2]
    stream.close()
    assert helper_threads() - before == set()  # close() joined them
    assert len(engine.calls) < len(SENTENCES)


def alive(pid: int) -> bool:
    """Is there still a process (not a reaped zombie) with this id?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


@pytest.mark.engine
def test_an_interrupted_render_leaves_no_thread_and_no_worker(tmp_path, monkeypatch, started_workers):
    """Ctrl-C while the track is being written (KeyboardInterrupt in the main thread, here
    from the progress callback): no helper thread and no speech worker outlive the render."""
    started = started_workers
    script = tmp_path / "long.txt"
    script.write_text("\n".join(f"Sentence {i}: let the breath settle, slowly and kindly."
                                for i in range(60)) + "\n", encoding="utf-8")
    calls = []

    def interrupt(stage, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    before = helper_threads()
    request = TrackRequest(exercise=str(script), output=tmp_path / "out.wav", cache_dir=tmp_path / "cache",
                           mix=MixSettings(bells=False), voice_profile=voices.resolve_voice("calm-female"))
    with pytest.raises(KeyboardInterrupt):
        render_track(request, progress=interrupt)
    assert started, "the render started no speech worker"
    assert len(list((tmp_path / "cache").rglob("*.npy"))) < 60  # stopped mid-speech
    assert settled(before) == set()
    deadline = time.monotonic() + 5.0
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in started if alive(pid)] == []
    assert not (tmp_path / "out.wav").exists()
