"""Grammatical person of profile entries: find first-person words, and say a description to the client."""
from __future__ import annotations

import re

_APOSTROPHE = "['’]"
FIRST_PERSON = re.compile(rf"(?<![\w'’-])(?:I(?:{_APOSTROPHE}(?:m|ve|d|ll))?|me|my|mine|myself)(?![\w'’-])",
                          re.IGNORECASE)
"""I, me, my, mine, myself and I'm / I've / I'd / I'll, as whole words."""
_I_VERB = re.compile(r"(?<![\w'’-])I\s+(am|was)(?![\w'’-])", re.IGNORECASE)
_SECOND = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself"}


def has_first_person(text: str) -> bool:
    """True when ``text`` says I, me, my, mine or myself (any case, contractions too)."""
    return FIRST_PERSON.search(text) is not None


def to_second_person(text: str) -> str:
    """A description as the track says it to the client: "my sister" -> "your sister",
    "the day I was brave" -> "the day you were brave". Text without first-person words
    is returned unchanged; the first letter's case is kept."""
    text = _I_VERB.sub(lambda m: ("You " if m.start() == 0 and m.group()[0] == "I" else "you ")
                       + {"am": "are", "was": "were"}[m.group(1).lower()], text)
    return FIRST_PERSON.sub(_swap, text)


def _swap(match: re.Match) -> str:
    base, apostrophe, ending = re.fullmatch(rf"([^'’]+)({_APOSTROPHE}?)(\w*)", match.group()).groups()
    ending = {"m": "re"}.get(ending.lower(), ending.lower())      # I'm -> you're; I've -> you've
    new = _SECOND[base.lower()] + apostrophe + ending
    # "I" is a capital anywhere; a capital stays only at the start of the entry.
    keep_capital = base[:1].isupper() and (base != "I" or match.start() == 0)
    return new[:1].upper() + new[1:] if keep_capital else new
