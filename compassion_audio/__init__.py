"""compassion-audio: compassion-focused therapy practice tracks from Jinja2 scripts, offline.

Public API: ``render_track(TrackRequest(...))`` renders a track; the stages are
``templates`` (scripts), ``speech`` (engines + cache), ``assemble`` (timeline),
``mix`` and ``export``.
"""
__version__ = "0.1.0"

from compassion_audio.core.errors import CompassionAudioError  # noqa: E402

__all__ = ["CompassionAudioError", "__version__", "render_track", "TrackRequest", "TrackResult"]


def __getattr__(name: str):
    # Imported lazily so `import compassion_audio` stays cheap for the CLI's --help.
    if name in ("render_track", "TrackRequest", "TrackResult"):
        from compassion_audio import render

        return getattr(render, name)
    raise AttributeError(name)
