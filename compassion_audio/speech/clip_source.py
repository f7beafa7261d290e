"""Speak every distinct sentence once, via the clip cache; each new clip is processed
(clip_processing.py) on a second thread while the next is spoken."""
from __future__ import annotations

import queue
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Mapping, Sequence

from compassion_audio.core.audio import Audio
from compassion_audio.speech.cache import ClipCache
from compassion_audio.speech.clip_processing import process_clip
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import SpeechError
from compassion_audio.core.text import quote_phrase
from compassion_audio.core.timeline import Clip


def apply_lexicon(text: str, lexicon: Mapping[str, str] | None) -> str:
    """Replace whole words, ignoring case (e.g. "CFT" -> "C F T"); longest entries win."""
    if not lexicon:
        return text
    table = {k.lower(): v for k, v in lexicon.items() if k}
    words = sorted(table, key=len, reverse=True)
    # Lookarounds instead of \b so entries that end in punctuation ("e.g.") still match.
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda m: table[m.group(0).lower()], text)


def synthesize_clips(sentences: Sequence[str], engine: SpeechEngine, cache: ClipCache, *,
                     sample_rate: int, lexicon: Mapping[str, str] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Clip]:
    """A processed clip for every distinct sentence, keyed by the sentence as written.

    ``progress(done, total)`` is called after each distinct sentence.
    """
    source = ClipSource(sentences, engine, cache, sample_rate=sample_rate, lexicon=lexicon)
    clips = dict(source.ready)
    clips.update(source.synthesise(progress))
    return {s: clips[s] for s in source.distinct}


class ClipSource:
    """The clips of a script's sentences: cache hits at once (``ready``), the rest spoken
    and processed in script order by ``synthesise()``, which yields each as it is done.

    The lexicon rewrites what is spoken; the cache key is the spoken text plus
    the engine's identity and the rate, so unchanged phrases are never re-spoken.
    Cache misses are spoken on a helper thread while a processing thread trims and
    level-matches the previous phrases (the engine runs in its own process, or
    releases the GIL), so synthesis and processing overlap - and the caller can
    mix and encode the clips already done meanwhile.
    """

    def __init__(self, sentences: Sequence[str], engine: SpeechEngine, cache: ClipCache, *,
                 sample_rate: int, lexicon: Mapping[str, str] | None = None) -> None:
        self.engine = engine
        self.cache = cache
        self.sample_rate = sample_rate
        self.distinct = list(dict.fromkeys(sentences))
        # An engine whose sound differs per phrase (a recorded pack: one file per phrase)
        # keys each phrase on its own identity, so re-recording one re-renders only that one.
        identity_for = getattr(engine, "identity_for", None)
        shared_identity = None if identity_for else engine.identity()
        found: dict[str, Clip] = {}
        self._wanted: dict[str, tuple[str, str]] = {}  # spoken -> (cache key, first sentence)
        self._sentences_of: dict[str, list[str]] = {}  # spoken -> the sentences that say it
        for sentence in self.distinct:
            spoken = apply_lexicon(sentence, lexicon)
            if not spoken.strip():
                raise SpeechError(f"nothing to say in {quote_phrase(sentence)}")
            self._sentences_of.setdefault(spoken, []).append(sentence)
            if spoken in found or spoken in self._wanted:
                continue
            identity = identity_for(spoken) if identity_for else shared_identity
            key = cache.key(identity, spoken, sample_rate)
            clip = cache.get(key)
            if clip is not None:
                found[spoken] = clip
            else:
                self._wanted[spoken] = (key, sentence)
        self.ready: dict[str, Clip] = {
            s: replace(clip, text=s) for spoken, clip in found.items() for s in self._sentences_of[spoken]}
        """Sentence -> clip for every sentence already in the cache."""
        self.missing = [s for spoken in self._wanted for s in self._sentences_of[spoken]]
        """The sentences still to be spoken, in script order."""

    def ahead(self, progress: Callable[[int, int], None] | None = None):
        """As ``synthesise()``, but run on a helper thread that never waits for the caller:
        speech keeps going while the caller mixes and encodes what is already done."""
        results: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        done = object()

        def run() -> None:
            spoken = self.synthesise(progress)
            try:
                for item in spoken:
                    if stop.is_set():
                        break
                    results.put((item, None))
            except BaseException as exc:  # handed to the caller, raised there
                results.put((None, exc))
                return
            finally:
                spoken.close()
            results.put((done, None))

        worker = threading.Thread(target=run, name="compassion-audio-clips", daemon=True)
        worker.start()
        try:
            while True:
                item, error = results.get()
                if error is not None:
                    raise error
                if item is done:
                    return
                yield item
        finally:
            stop.set()
            worker.join()

    def synthesise(self, progress: Callable[[int, int], None] | None = None):
        """Speak and process the missing phrases; yield ``(sentence, clip)`` for each, in order."""
        total = len(self.distinct)
        done = total - len(self.missing)
        if progress is not None and not self._wanted:
            progress(total, total)
        if not self._wanted:
            return
        wanted, rate = self._wanted, self.sample_rate

        def finish(spoken: str, audio: Audio) -> Clip:
            key, sentence = wanted[spoken]
            processed = process_clip(audio, rate, sentence)
            return self.cache.put(key, spoken, processed.samples, processed.lead_frames,
                                  processed.tail_frames, processed.true_peak)

        # One processing thread keeps up with synthesis (~9 ms per phrase against
        # espeak-ng's ~15 ms); a second only took CPU from the encoder running beside
        # (render.py). At most _AHEAD phrases wait, so memory does not grow with the script.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: deque = deque()

            def collect():
                nonlocal done
                spoken, future = pending.popleft()
                clip = future.result()
                for sentence in self._sentences_of[spoken]:
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    yield sentence, replace(clip, text=sentence)

            for spoken, audio in _spoken_ahead(self.engine, list(wanted)):
                pending.append((spoken, pool.submit(finish, spoken, audio)))
                if len(pending) > _AHEAD:
                    yield from collect()
            while pending:
                yield from collect()


_AHEAD = 4
"""Phrases the synthesis thread may run ahead of processing."""


def _spoken_ahead(engine: SpeechEngine, texts: list[str]):
    """Yield (text, audio) in order, synthesising on one helper thread (the engine's only user)."""
    if not texts:
        return
    results: queue.Queue = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        for text in texts:
            if stop.is_set():
                return
            try:
                item = (text, engine.synthesize(text), None)
            except BaseException as exc:  # handed to the consumer, raised there
                item = (text, None, exc)
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    worker = threading.Thread(target=produce, name="compassion-audio-speech", daemon=True)
    worker.start()
    try:
        for _ in texts:
            text, audio, error = results.get()
            if error is not None:
                raise error
            yield text, audio
    finally:
        stop.set()
        worker.join()
