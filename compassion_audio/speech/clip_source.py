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
from compassion_audio.core.segments import Speech
from compassion_audio.speech.cache import ClipCache, PhraseKey
from compassion_audio.speech.cache_locks import WAIT_SECONDS
from compassion_audio.speech.clip_processing import process_clip
from compassion_audio.speech.engines.base import SpeechEngine
from compassion_audio.core.errors import SpeechError
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


class ClipSource:
    """The clips of a script's sentences: cache hits at once (``ready``), the rest spoken
    and processed in script order by ``synthesise()``, which yields each as it is done.

    The lexicon rewrites what is spoken; the cache key is the spoken text plus
    the engine's identity and the rate, so unchanged phrases are never re-spoken.
    A phrase another render is speaking into the same cache is not spoken twice: it is read
    once that render has finished it, and meanwhile this one speaks the next (``ClipCache.claim``).
    Cache misses are spoken on a helper thread while a processing thread trims and
    level-matches the previous phrases (the engine runs in its own process, or
    releases the GIL), so synthesis and processing overlap - and the caller can
    mix and encode the clips already done meanwhile.

    ``sentences`` are texts, or the script's Speech segments (which carry their template
    line). A phrase that cannot be spoken - the engine failed, or gave no audible speech - is
    a SpeechError naming it by its place: "phrase 3 of 12 (line 7 of calm.txt.j2)" - never by
    its text, which may hold a client's name. ``source`` names the template in those messages.
    """

    def __init__(self, sentences: Sequence[str | Speech], engine: SpeechEngine, cache: ClipCache, *,
                 sample_rate: int, lexicon: Mapping[str, str] | None = None, source: str = "") -> None:
        self.engine = engine
        self.cache = cache
        self.sample_rate = sample_rate
        texts = [s.text if isinstance(s, Speech) else s for s in sentences]
        self.distinct = list(dict.fromkeys(texts))
        self._place: dict[str, str] = {}  # sentence -> where it is first said, for messages
        for number, item in enumerate(sentences, 1):
            line = item.line if isinstance(item, Speech) else 0
            self._place.setdefault(texts[number - 1], phrase_place(number, len(texts), line, source))
        # An engine whose sound differs per phrase (a recorded pack: one file per phrase)
        # keys each phrase on its own identity, so re-recording one re-renders only that one.
        identity_for = getattr(engine, "identity_for", None)
        shared_identity = None if identity_for else engine.identity()
        found: dict[str, Clip] = {}
        self._wanted: dict[str, tuple[PhraseKey, str]] = {}  # spoken -> (cache key, first sentence)
        self._sentences_of: dict[str, list[str]] = {}  # spoken -> the sentences that say it
        for sentence in self.distinct:
            spoken = apply_lexicon(sentence, lexicon)
            if not spoken.strip():
                raise SpeechError(f"nothing to say in {self._place[sentence]}")
            self._sentences_of.setdefault(spoken, []).append(sentence)
            if spoken in found or spoken in self._wanted:
                continue
            identity = identity_for(spoken) if identity_for else shared_identity
            key = PhraseKey(identity, spoken, sample_rate)
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

    def ahead(self):
        """As ``synthesise()``, but run on a helper thread that never waits for the caller:
        speech keeps going while the caller mixes and encodes what is already done."""
        results: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        done = object()

        def run() -> None:
            spoken = self.synthesise()
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

    def synthesise(self):
        """Speak and process the missing phrases; yield ``(sentence, clip)`` for each, in order -
        except that a phrase another render is speaking into the same cache comes when that
        render has finished it, read from the cache: meanwhile this one speaks the next."""
        if not self._wanted:
            return
        wanted, rate, cache = self._wanted, self.sample_rate, self.cache
        claims: dict[str, object] = {}  # spoken -> its held cache claim, until its entry is written

        def speak(spoken: str, stop: threading.Event, last_try: bool):
            """On the speech thread: the phrase's audio; or its clip, when another render
            sharing the cache has finished it; or LATER while another render speaks it."""
            key = wanted[spoken][0]
            claim = cache.claim(key, timeout=WAIT_SECONDS if last_try else 0.0, stop=stop)
            if stop.is_set():
                _release(claim if claim is not None and claim.held else None)
                return None
            if claim is not None and not claim.held and not last_try:
                return LATER
            if claim is not None and claim.held:
                claims[spoken] = claim
            clip = cache.get(key)
            if clip is None:
                try:
                    return self.engine.synthesize(spoken)
                except SpeechError as exc:
                    raise SpeechError(f"could not speak {self._place[wanted[spoken][1]]}: {exc}") from exc
            _release(claims.pop(spoken, None))
            return clip

        def finish(spoken: str, got: Audio | Clip) -> Clip:
            """On the processing thread: trim, level and store the audio (then the claim goes)."""
            if isinstance(got, Clip):
                return got
            key, sentence = wanted[spoken]
            place = self._place[sentence]
            try:
                processed = process_clip(got, rate, place)  # its errors name the place
                try:
                    return cache.put(key, processed.samples, processed.lead_frames,
                                     processed.tail_frames, processed.true_peak)
                except SpeechError as exc:
                    raise SpeechError(f"could not keep {place}: {exc}") from exc
            finally:
                _release(claims.pop(spoken, None))

        # One processing thread keeps up with synthesis (~9 ms per phrase against
        # espeak-ng's ~15 ms); a second only took CPU from the encoder running beside
        # (render.py). At most _AHEAD phrases wait, so memory does not grow with the script.
        spoken_ahead = _spoken_ahead(speak, list(wanted))
        pool = ThreadPoolExecutor(max_workers=1)
        pending: deque = deque()

        def collect():
            spoken, future = pending.popleft()
            clip = future.result()
            for sentence in self._sentences_of[spoken]:
                yield sentence, replace(clip, text=sentence)

        try:
            for spoken, got in spoken_ahead:
                pending.append((spoken, pool.submit(finish, spoken, got)))
                if len(pending) > _AHEAD:
                    yield from collect()
            while pending:
                yield from collect()
        finally:
            spoken_ahead.close()  # the speech thread has stopped when this returns
            pool.shutdown(wait=True, cancel_futures=True)
            for claim in list(claims.values()):  # phrases stopped half-way: others may have them
                _release(claim)


def phrase_place(number: int, total: int, line: int = 0, source: str = "") -> str:
    """How messages name a phrase: "phrase 3 of 12 (line 7 of calm.txt.j2)" - its place, never its
    text (which may hold a client's name); the line part only when the line is known."""
    where = "" if not line else f" (line {line} of {source})" if source else f" (template line {line})"
    return f"phrase {number} of {total}{where}"


def _release(claim) -> None:
    if claim is not None:
        claim.release()


_AHEAD = 4
"""Phrases the synthesis thread may run ahead of processing."""


LATER = object()
"""What ``speak`` answers for a phrase it should come back to (another render is speaking it)."""


def _spoken_ahead(speak: Callable[[str, threading.Event, bool], object], texts: list[str]):
    """Yield (text, speak(text, stop, last_try)) for every text, calling ``speak`` on one helper
    thread (the engine's only user); ``stop`` is set when the caller stops listening.

    ``speak`` may answer LATER on a first try: that text is tried again before each next
    text, and, if it is still LATER when the others are done, once more with ``last_try``
    (which must answer). So texts come in order but for those, which come as soon as they can.
    """
    if not texts:
        return
    results: queue.Queue = queue.Queue(maxsize=_AHEAD)
    stop = threading.Event()

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def attempt(text: str, last_try: bool) -> bool:
        """Speak ``text`` and hand the result over; False when it must wait (or on an error)."""
        try:
            got = speak(text, stop, last_try)
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over((text, None, exc))
            raise _Stopped from None
        if got is LATER:
            return False
        hand_over((text, got, None))
        return True

    def produce() -> None:
        later: list[str] = []
        try:
            for text in texts:
                for waiting in list(later):
                    if stop.is_set():
                        return
                    if attempt(waiting, False):
                        later.remove(waiting)
                if stop.is_set():
                    return
                if not attempt(text, False):
                    later.append(text)
            for text in later:
                if stop.is_set():
                    return
                attempt(text, True)
        except _Stopped:
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


class _Stopped(Exception):
    """The speech thread ends: ``speak`` failed (the error went to the consumer)."""
