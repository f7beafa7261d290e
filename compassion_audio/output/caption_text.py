"""Caption text laid out to broadcast norms: two short lines a cue, broken at phrases, never mid-word."""
from __future__ import annotations

import re

LINE_CHARS = 42
"""Caption line length: the usual broadcast limit, readable on a shared screen."""
MAX_LINES = 2
"""Lines a cue may hold: more cover the picture (five fill the bottom third of a 720p browser)."""

CONJUNCTIONS = frozenset({
    "and", "but", "or", "nor", "yet", "so", "as", "while", "when", "whenever", "because",
    "if", "until", "unless", "though", "although", "whether", "where", "before", "after",
    "since", "then"})
"""A line may break before these: they open a new clause."""
CLINGING = frozenset({
    # articles and possessives
    "a", "an", "the", "my", "your", "our", "their", "his", "its", "this", "these", "those",
    # prepositions
    "to", "of", "in", "on", "at", "by", "for", "with", "from", "into", "onto", "about",
    "through", "towards", "toward", "without", "within", "across", "around", "over",
    "under", "upon", "like", "than",
    # auxiliaries and pronouns that open a verb phrase
    "is", "are", "was", "were", "be", "been", "has", "have", "had", "do", "does", "can",
    "could", "will", "would", "may", "might", "must", "should", "not", "very", "i", "we",
    "you're", "i'm", "it's", "let"})
"""A line should not end on these: they belong with the word that follows."""

# Break penalties: what it costs to end a line or a cue after a word.
_STOP, _PHRASE, _CONJUNCTION, _WORD, _CLINGING = 0, 1, 2, 6, 14
_BREAK_WEIGHT = 10
_CUE_BREAK_WEIGHT = 20  # a cue change mid-phrase hurts more than a line break: the reader loses the rest
_LINE_COST = 5        # a second line costs a little: one line is easier to read
_PIECE_COST = 20      # a cue costs more: each one is a change on screen
_SHORT_PIECE = 60     # a cue the voice speaks in under the minimum time is a flicker
_ENDS_SENTENCE = re.compile(r"(?:[.!?…]|\.\.\.)[\"'”’)\]]*$")
_ENDS_PHRASE = re.compile(r"[,;:—–][\"'”’)\]]*$")
_DASHES = frozenset({"—", "–", "-", "--"})
_BARE = re.compile(r"^[^\w']+|[^\w']+$")


def _bare(word: str) -> str:
    return _BARE.sub("", word.lower().replace("’", "'"))


def break_penalty(words: list[str], i: int) -> int:
    """What it costs to break after ``words[i]`` (0 after a full stop, most inside a phrase)."""
    word, following = words[i], words[i + 1]
    if _ENDS_SENTENCE.search(word):
        return _STOP
    if _ENDS_PHRASE.search(word) or word in _DASHES:
        return _PHRASE
    if following in _DASHES:
        return _PHRASE + 1  # the dash should close its line, but before it is still a phrase edge
    if _bare(following) in CONJUNCTIONS:
        return _CONJUNCTION
    if _bare(word) in CLINGING:
        return _CLINGING
    return _WORD


def _width(lengths: list[int], i: int, j: int) -> int:
    """Characters of words i..j-1 joined by single spaces."""
    return sum(lengths[i:j]) + (j - i - 1)


def _two_lines(words: list[str], lengths: list[int], i: int, j: int) -> tuple[float, int] | None:
    """Best layout of words i..j-1 in at most two lines: (cost, break index or j), None if it cannot fit."""
    if _width(lengths, i, j) <= LINE_CHARS or j - i == 1:
        return 0.0, j
    best = None
    for k in range(i + 1, j):
        top, bottom = _width(lengths, i, k), _width(lengths, k, j)
        if top > LINE_CHARS or bottom > LINE_CHARS:
            continue
        cost = _LINE_COST + _BREAK_WEIGHT * break_penalty(words, k - 1) + abs(top - bottom) / 4
        if best is None or cost < best[0]:
            best = (cost, k)
    return best


def _wrap_many(words: list[str], lengths: list[int]) -> list[str]:
    """Text that cannot fit two lines: the fewest lines, then the best breaks."""
    n = len(words)
    best: list[tuple[int, float, int] | None] = [None] * (n + 1)
    best[0] = (0, 0.0, 0)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if _width(lengths, i, j) > LINE_CHARS and j - i > 1:
                break
            if best[i] is None:
                continue
            lines, cost, _ = best[i]
            cost += _BREAK_WEIGHT * break_penalty(words, i - 1) if i else 0
            candidate = (lines + 1, cost, i)
            if best[j] is None or candidate[:2] < best[j][:2]:
                best[j] = candidate
    return _chosen_runs(words, [None if b is None else b[2] for b in best])


def wrap_lines(text: str) -> list[str]:
    """``text`` in lines of at most LINE_CHARS, broken at phrase edges; two lines where it fits.

    Only a single word longer than a line is ever left longer (words are never cut).
    """
    words = text.split()
    if not words:
        return []
    lengths = [len(w) for w in words]
    layout = _two_lines(words, lengths, 0, len(words))
    if layout is None:
        return _wrap_many(words, lengths)
    k = layout[1]
    return [" ".join(words[:k])] + ([" ".join(words[k:])] if k < len(words) else [])


PHRASE_PAUSE_CHARS = 4
"""A comma, semicolon, colon or dash is spoken as a short pause worth about this many letters
(espeak-ng, default voice: 37 commas in 14 sentences; cue changes predicted from letters alone
came a median 0.24 s early, with this 0.12 s; from syllables 0.24 s)."""


def spoken_weight(text: str) -> int:
    """How long ``text`` takes to say, relative to the rest of its sentence: its letters and
    digits, one for each word gap and PHRASE_PAUSE_CHARS for each phrase mark (the engines
    give no per-word timing)."""
    words = text.split()
    pauses = sum(1 for w in words if _ENDS_PHRASE.search(w) or w in _DASHES)
    return sum(sum(ch.isalnum() for ch in w) for w in words) + len(words) + PHRASE_PAUSE_CHARS * pauses


def split_cue_text(text: str, *, min_share: float = 0.0) -> list[str]:
    """A sentence cut into cue texts of at most MAX_LINES lines each, at phrase edges.

    ``min_share``: the fraction of the sentence's speaking time one cue must hold to stay
    on screen long enough; shorter cues are avoided where the sentence allows.
    The pieces joined with single spaces give the sentence back, whitespace folded.
    """
    words = text.split()
    n = len(words)
    if not n:
        return []
    lengths = [len(w) for w in words]
    weights = [spoken_weight(w) for w in words]
    total = sum(weights) or 1
    limit = MAX_LINES * (LINE_CHARS + 1)
    best: list[tuple[float, int] | None] = [None] * (n + 1)
    best[0] = (0.0, 0)
    for j in range(1, n + 1):
        end_cost = 0 if j == n else _CUE_BREAK_WEIGHT * break_penalty(words, j - 1)
        for i in range(j - 1, -1, -1):
            if _width(lengths, i, j) > limit and j - i > 1:
                break
            layout = _two_lines(words, lengths, i, j)
            if best[i] is None or layout is None:
                continue
            cost = best[i][0] + _PIECE_COST + end_cost + layout[0]
            if sum(weights[i:j]) / total < min_share:
                cost += _SHORT_PIECE
            if best[j] is None or cost < best[j][0]:
                best[j] = (cost, i)
    return _chosen_runs(words, [None if b is None else b[1] for b in best])


def _chosen_runs(words: list[str], starts: list[int | None]) -> list[str]:
    """The runs of words a best-split table chose, read back from its end: ``starts[j]`` is
    where the best run ending before word ``j`` begins."""
    runs, j = [], len(words)
    while j:
        i = starts[j]
        runs.append(" ".join(words[i:j]))
        j = i
    return runs[::-1]
