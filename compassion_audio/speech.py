"""Speak every distinct sentence once, via the clip cache: trim, verify and level-match each clip."""
from __future__ import annotations

import math
import queue
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np

from .audio import Audio, audible_bounds, db_to_gain, fade_edges, gain_to_db, peak_db, seconds_to_frames
from .cache import ClipCache
from .engines.base import SpeechEngine
from .errors import SpeechError
from .loudness import limit, true_peak
from .text import quote_phrase
from .timeline import Clip

LEAD_SECONDS = 0.010
"""Kept before the first audible sample so soft onsets (f, h, s) are not clipped."""
TAIL_SECONDS = 0.040
"""Kept after the last audible sample: espeak's voiced endings decay slowly."""
FADE_SECONDS = 0.006
"""Raised-cosine fade at each cut edge, so joins never click."""
THRESHOLD_BELOW_PEAK_DB = 40.0
THRESHOLD_FLOOR_DB = -55.0
"""Audible means within 40 dB of the clip's peak, and never quieter than -55 dBFS."""
SILENT_PEAK_DB = -50.0
"""A clip whose peak is below this has no audible speech."""
TARGET_RMS_DB = -23.0
"""Active-speech RMS every clip is scaled to; the mix sets the final track loudness.

espeak-ng clips measured 13-19 dB from peak to active RMS, so -23 leaves every
one under the -3 dBFS ceiling and the clips match each other in level."""
PEAK_CEILING_DB = -3.0
PEAK_TO_RMS_DB = 12.0
"""Speech peaks are limited to this far above the active RMS (espeak-ng clips reach 19 dB).

Done once per clip here (and cached) so that the track can reach -16 LUFS with
a -1 dBTP ceiling without the final limiter working hard: with the track's
peak-to-loudness ratio under 15 dB, the loudness target is met to ~0.1 LU."""
ACTIVE_WINDOW_SECONDS = 0.020
ACTIVE_BELOW_LOUDEST_DB = 30.0
"""Windows more than this below the loudest window are gaps, not speech, for the RMS."""


@dataclass(frozen=True)
class ProcessedClip:
    """A trimmed, faded, level-matched clip at the track rate."""

    samples: np.ndarray
    lead_frames: int
    tail_frames: int
    true_peak: float = 1.0


def apply_lexicon(text: str, lexicon: Mapping[str, str] | None) -> str:
    """Replace whole words, ignoring case (e.g. "CFT" -> "C F T"); longest entries win."""
    if not lexicon:
        return text
    table = {k.lower(): v for k, v in lexicon.items() if k}
    words = sorted(table, key=len, reverse=True)
    # Lookarounds instead of \b so entries that end in punctuation ("e.g.") still match.
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda m: table[m.group(0).lower()], text)


def active_rms_db(samples: np.ndarray, sample_rate: int) -> float:
    """RMS over the windows that carry speech (gaps between words left out)."""
    window = max(1, seconds_to_frames(ACTIVE_WINDOW_SECONDS, sample_rate))
    count = samples.shape[0] // window
    if count == 0:
        return gain_to_db(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))) \
            if samples.size else -math.inf
    power = np.square(samples[: count * window], dtype=np.float64).reshape(count, window).mean(axis=1)
    loudest = float(power.max())
    if loudest <= 0.0:
        return -math.inf
    active = power[power >= loudest * 10.0 ** (-ACTIVE_BELOW_LOUDEST_DB / 10.0)]
    return 10.0 * math.log10(float(active.mean()))


def process_clip(audio: Audio, sample_rate: int, phrase: str) -> ProcessedClip:
    """Resample, trim engine padding to short margins, fade the cuts and level-match."""
    samples = audio.mono().resampled(sample_rate).samples
    peak = peak_db(samples)
    if not peak >= SILENT_PEAK_DB:
        raise SpeechError(f"the speech engine produced no audible speech for {quote_phrase(phrase)}")
    threshold = max(peak - THRESHOLD_BELOW_PEAK_DB, THRESHOLD_FLOOR_DB)
    first, end = audible_bounds(samples, sample_rate, threshold_db=threshold)
    start = max(0, first - seconds_to_frames(LEAD_SECONDS, sample_rate))
    stop = min(samples.shape[0], end + seconds_to_frames(TAIL_SECONDS, sample_rate))
    fade = seconds_to_frames(FADE_SECONDS, sample_rate)
    cut = fade_edges(samples[start:stop], fade, fade)
    # Cap the peaks relative to the level, then level-match. Limiting lowers the
    # RMS of peaky clips, so cap twice (once left the track limiter enough work
    # to cost 0.8 LU over a bed); the final gain makes the levels equal (peaks may
    # then sit a fraction of a dB over the cap, well under the ceiling).
    for _ in range(2):
        cut = _match_level(cut, first - start, end - start, sample_rate)
        cut = limit(cut, sample_rate, ceiling_db=TARGET_RMS_DB + PEAK_TO_RMS_DB, true_peak=False)
    cut = _match_level(cut, first - start, end - start, sample_rate)
    return ProcessedClip(cut, first - start, stop - end, true_peak(cut))


def _match_level(cut: np.ndarray, first: int, end: int, sample_rate: int) -> np.ndarray:
    gain_db = TARGET_RMS_DB - active_rms_db(cut[first:end], sample_rate)
    gain_db = min(gain_db, PEAK_CEILING_DB - peak_db(cut))
    return (cut * np.float32(db_to_gain(gain_db))).astype(np.float32)


def synthesize_clips(sentences: Sequence[str], engine: SpeechEngine, cache: ClipCache, *,
                     sample_rate: int, lexicon: Mapping[str, str] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Clip]:
    """A processed clip for every distinct sentence, keyed by the sentence as written.

    The lexicon rewrites what is spoken; the cache key is the spoken text plus
    the engine's identity and the rate, so unchanged phrases are never re-spoken.
    Cache misses are spoken on a second thread while this one trims and
    level-matches the previous phrase (the engine itself runs in its own
    process, or releases the GIL), so synthesis and processing overlap.
    ``progress(done, total)`` is called after each distinct sentence.
    """
    distinct = list(dict.fromkeys(sentences))
    # An engine whose sound differs per phrase (a recorded pack: one file per phrase)
    # keys each phrase on its own identity, so re-recording one re-renders only that one.
    identity_for = getattr(engine, "identity_for", None)
    shared_identity = None if identity_for else engine.identity()
    found: dict[str, Clip] = {}
    wanted: dict[str, tuple[str, str]] = {}  # spoken -> (cache key, first sentence)
    for sentence in distinct:
        spoken = apply_lexicon(sentence, lexicon)
        if not spoken.strip():
            raise SpeechError(f"nothing to say in {quote_phrase(sentence)}")
        if spoken in found or spoken in wanted:
            continue
        identity = identity_for(spoken) if identity_for else shared_identity
        key = cache.key(identity, spoken, sample_rate)
        clip = cache.get(key)
        if clip is not None:
            found[spoken] = clip
        else:
            wanted[spoken] = (key, sentence)
    done = len(distinct) - len(wanted)

    def finish(spoken: str, audio: Audio) -> Clip:
        key, sentence = wanted[spoken]
        processed = process_clip(audio, sample_rate, sentence)
        return cache.put(key, spoken, processed.samples, processed.lead_frames,
                         processed.tail_frames, processed.true_peak)

    def collect(spoken: str, future) -> None:
        nonlocal done
        found[spoken] = future.result()
        done += 1
        if progress is not None:
            progress(done, len(distinct))

    # Two processing threads (numpy and scipy release the GIL in the heavy parts);
    # at most _AHEAD phrases wait, so memory does not grow with the script.
    threads = 1 if getattr(engine, "busy_cores", 0) >= _PROCESSING_THREADS else _PROCESSING_THREADS
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        for spoken, audio in _spoken_ahead(engine, list(wanted)):
            pending.append((spoken, pool.submit(finish, spoken, audio)))
            if len(pending) > _AHEAD:
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
    if progress is not None and not wanted:
        progress(len(distinct), len(distinct))
    return {s: replace(found[apply_lexicon(s, lexicon)], text=s) for s in distinct}


_PROCESSING_THREADS = 2
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
