"""The stated limits on what the tool accepts: one place, quoted by the README's
"Limits, failures and privacy" section and by every error that enforces one.

Each limit is far beyond any real practice track and well short of what would start a
job of hours or exhaust an office machine's memory. Input beyond a limit is refused
before anything is spoken, with the limit named.
"""
from __future__ import annotations

MAX_PAUSE_SECONDS = 3 * 3600.0
"""The longest single pause or breathing stretch: anything longer is a typo, not a practice."""

MAX_TRACK_SECONDS = 3 * 3600.0
"""The longest track: its pauses plus its words spoken at the fastest rate we allow."""

MAX_TEMPLATE_BYTES = 1024 * 1024
"""The largest template file read (the longest built-in exercise is under 10 KB)."""

MAX_SCRIPT_CHARS = 200_000
"""The most text a rendered script may hold (some 30,000 words: hours of speech)."""

MAX_VALUE_CHARS = 1000
"""The longest value a profile or ``-s`` may give one parameter (or one list item)."""

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""The largest cover image embedded in a track."""

MAX_SOUND_FILE_BYTES = 200 * 1024 * 1024
"""The largest bell or background file read."""

MAX_TEMPLATE_STEPS = 1_000_000
"""The most work one render of a template may do: a step is one loop turn, or one character or
item a filter, call or operator handles or a template writes (a built-in exercise takes under
3,000: the longest script, written five times over, fits)."""

MAX_TEMPLATE_DEPTH = 50
"""The deepest a template's macros and recursive loops may call themselves, and its includes nest."""
