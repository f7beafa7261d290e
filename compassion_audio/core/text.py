"""Sentence splitting and text clean-up for narration."""
from __future__ import annotations

import re

# Words whose full stop does not end a sentence ("Dr. Lee", "e.g. a walk").
ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "mx", "prof", "st", "sr", "jr", "vs", "etc", "approx",
    "e.g", "i.e", "cf", "mt", "fig",
})

# A sentence ends at . ! ? or an ellipsis, plus any closing quotes or brackets,
# when whitespace and the start of a new sentence follow.
_END = re.compile(r"(?:\.{3}|…|[.!?])+[\"'”’)\]]*(?=\s+[\"'“‘(]*[A-Z0-9])")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,;:.!?…])")
_REPEATED_COMMA = re.compile(r",(?:\s*,)+")
_COMMA_BEFORE_STOP = re.compile(r",\s*([.!?])")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def clean_text(text: str) -> str:
    """Collapse whitespace and tidy stray spaces and commas around punctuation."""
    text = _SPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_COMMA.sub(",", text)
    text = _COMMA_BEFORE_STOP.sub(r"\1", text)
    return text


def tidy_lines(text: str) -> str:
    """Clean every line of a multi-line text, keep single blank lines between paragraphs."""
    lines = [clean_text(line) if line.strip() else "" for line in text.split("\n")]
    tidy = "\n".join(lines)
    tidy = re.sub(r"\n{3,}", "\n\n", tidy).strip("\n")
    return tidy + "\n" if tidy else ""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each sentence in ``text``, without surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        if _is_abbreviation(text, match.start(), match.group()):
            continue
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    return [_strip_span(text, a, b) for a, b in spans if text[a:b].strip()]


def split_sentences(text: str) -> list[str]:
    """Split text into clean sentences (abbreviations, ellipses and quotes respected)."""
    return [clean_text(text[a:b]) for a, b in sentence_spans(text)]


def word_count(text: str) -> int:
    """Spoken words: runs of letters or digits (contractions count once)."""
    return len(_WORD.findall(text))


def join_and(items: object) -> str:
    """["a", "b", "c"] -> "a, b and c" (empty items dropped; a single string passes through)."""
    if isinstance(items, str):
        return items
    words = [str(item) for item in items if str(item).strip()]
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _is_abbreviation(text: str, end_index: int, terminator: str) -> bool:
    # Only a single full stop can belong to an abbreviation; "..." or "!" always ends.
    if terminator.rstrip("\"'”’)]") != ".":
        return False
    word = re.search(r"([A-Za-z](?:\.?[A-Za-z])*)$", text[:end_index])
    return bool(word) and word.group(1).lower() in ABBREVIATIONS


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
