"""Shared foundations every stage uses: errors, segments, timeline, settings, audio, text, files, tools, levels, loudness."""
