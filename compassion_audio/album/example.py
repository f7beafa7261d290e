"""``album new``: a commented example manifest to edit (or a programme week's, written out)."""
from __future__ import annotations

from compassion_audio.album.manifest import Manifest

EXAMPLE = '''\
# An album manifest for compassion-audio: `compassion-audio album THIS-FILE.toml`
# builds output/<album title>/ with numbered, tagged tracks, playlist.m3u8 and tracks.md.
# Paths are relative to this file. Run it again after an edit: only the tracks whose
# script, values or settings changed are made again.

[album]
title = "Week 3 practices"
artist = "Riverside Clinic"          # optional (default: the voice's name)
year = 2026                          # optional
# cover = "cover.png"                # optional: a JPEG or PNG, in every track and copied beside them
# client = "clients/jane.toml"       # optional: personalise every track (--clients DIR: one album each)

# Any render option here is the default for every track; a track's own setting wins.
# The keys are the `render` options' names with - as _:
#   voice, voices, fallback_voice, rate, length, group, format, bitrate, loudness,
#   breathing, ratio, pattern, tones, tone_style, tones_in_pauses, bells, bell_file,
#   background, background_level, channels, sample_rate, captions, timeline, artist, comment
# (no_tones = true and no_bells = true work too, as on the command line).
# hold = true                        # the album's session page (index.html) stops at each section's end
# voice = "heart"                    # the default; `compassion-audio voices` lists the others
format = "mp3"
captions = false

[[track]]
exercise = "soothing-rhythm-breathing"   # a built-in (`compassion-audio list`) or your own by name
length = "short"

[[track]]
exercise = "compassionate-place"
title = "Your compassionate place"       # optional; default: the exercise's title
set = { "place.smell" = "pine" }         # values, as -s gives them (they beat the client profile)
background = "rain"

# [[track]]
# template = "scripts/arriving.txt.j2"   # a template file of your own
# title = "Arriving"
# set = { name = "Jane" }
'''


def programme_text(manifest: Manifest, programme: str, week: int) -> str:
    """A programme week as a manifest to edit."""
    lines = [f"# Week {week} of the {programme} programme as an album: edit, then",
             "# `compassion-audio album THIS-FILE.toml --client clients/NAME.toml`.", "",
             "[album]", f"title = {_quoted(manifest.title)}", "# artist = \"Your clinic\"", ""]
    for track in manifest.tracks:
        lines += ["[[track]]", f"exercise = {_quoted(track.exercise or '')}"]
        lines += [f"length = {_quoted(track.options['length'])}"] if "length" in track.options else []
        lines.append("")
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
