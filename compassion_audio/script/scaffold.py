"""A commented starter template for a new exercise, showing every feature of the format."""
from __future__ import annotations

import re

from compassion_audio.core.errors import TemplateError

_SKELETON = '''\
+++
# Front matter (TOML). Everything here is optional; a plain text file works too.
title = "TITLE"
summary = "One line on what this practice is for."
lengths = ["short", "standard", "long"]
# group = true means the template has a group variant: it reads `group` below.
group = true

[params]
# Every param needs a default to be optional; leave out default to make it required.
# Types: str, int, float, bool, list (a list of strings). Dotted names become objects.
name = { type = "str", default = "", help = "The client's first name (individual tracks only)." }
"place.description" = { type = "str", default = "", help = "A short phrase for their calm place." }
kind_phrases = { type = "list", default = [], help = "The client's own kind phrases." }
+++
{# Comments like this one are never spoken. #}
{# pick() chooses a value by length: here a scale for the pauses. #}
{% set s = pick(short=0.5, standard=1, long=1.5) %}
{# A group track never uses a name; the renderer blanks it too, this keeps the text natural. #}
{% set who = name if name and not group else "" %}
[chapter Arriving]
Welcome{{ ", " ~ who if who else "" }}. This is a short practice to settle and be kind to yourself.

{# The way out: early in every track. #}
You can stop at any time. If anything feels like too much, open your eyes, notice the room around you, feel your feet on the floor and take a few slow breaths.
{% if group %}
Nobody has to close their eyes, take part or share anything.
{% endif %}

You might close your eyes, or let your gaze rest softly on the floor in front of you.
{# Markers: [pause 10s], [pause 1m 30s], [breathe 2m], [breathe 6 breaths rate=5.5 ratio=4:6], [chapter Title]. #}
{# The helper pause(seconds) writes a pause marker; here the pause scales with the length. #}
{{ pause(10 * s) }}

[chapter Breathing]
Let your breathing slow a little. If the breath is not a comfortable anchor, rest your attention on the sounds around you or the seat beneath you instead.
{# breathe() writes a paced-breathing stretch; the track plays its pacing tones under it. #}
{{ breathe(seconds=pick(short=30, standard=60, long=120)) }}

{% if length != "short" %}
[chapter Kindness]
{% if place.description %}
If you like, bring to mind your calm place: {{ place.description }}.
{% else %}
If you like, bring to mind a place where you feel a little calmer.
{% endif %}
{{ pause(20 * s) }}

{# A list param: each item spoken as its own sentence. join_and makes "a, b and c". #}
{% for phrase in kind_phrases %}
{{ phrase }}.
{{ pause(5) }}
{% endfor %}
{% endif %}

{# The track adds its own bells at the start and the end; bell() is for one in between. #}
[chapter Returning]
Feel the weight of your body and your feet on the floor, notice the sounds in the room, and open your eyes when you are ready.
'''


def new_template(name: str) -> str:
    """The text of a new exercise template called ``name`` (a file-name-like word)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,60}", name):
        raise TemplateError(f"exercise name {name!r} is not usable as a file name", source=name,
                            hint="use lower-case letters, digits and hyphens, e.g. morning-kindness")
    title = name.replace("-", " ").capitalize()
    return _SKELETON.replace("TITLE", title)
