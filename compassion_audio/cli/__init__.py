"""The command line: a thin click layer over the library."""
from compassion_audio.cli.app import cli, main

__all__ = ["cli", "main"]
