"""Named errors: each carries what the user needs to put the problem right."""
from __future__ import annotations


class CompassionAudioError(Exception):
    """Base for every error the user can act on; the CLI prints it as one line."""


class SourceError(CompassionAudioError):
    """A problem at a place in a file: template, profile or voice profile."""

    def __init__(self, message: str, *, source: str, line: int | None = None,
                 column: int | None = None, hint: str | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class MarkerError(SourceError):
    """A pause/breathe/bell/chapter marker that cannot be read."""


class TemplateError(SourceError):
    """A template that cannot be loaded or rendered (syntax, undefined name)."""


class ParameterError(SourceError):
    """A missing, unknown or ill-typed template parameter."""


class ProfileError(SourceError):
    """A client, voice or settings file with a wrong key, type or value."""


class ExerciseNotFound(CompassionAudioError):
    """No built-in or user exercise by that name."""


class SpeechError(CompassionAudioError):
    """The speech engine failed or produced no audible speech for a phrase."""


class EngineUnavailable(CompassionAudioError):
    """A speech engine or tool is not installed; the message names the install command."""


class VoiceError(CompassionAudioError):
    """An unknown or unusable voice."""


class AudioError(CompassionAudioError):
    """Audio that cannot be decoded or encoded (carries ffmpeg's last words)."""


class OutputError(CompassionAudioError):
    """The output cannot be written: exists without --force, or the folder is not writable."""


class PageError(CompassionAudioError):
    """A session page that cannot be found (the message names the command that makes it)."""


class ProgrammeError(SourceError):
    """A programme (course) file that names a missing exercise or length, or cannot be read."""


class AlbumError(SourceError):
    """An album manifest with a wrong key or value, or an album folder that cannot be built."""


class ClusterError(CompassionAudioError):
    """A Dask scheduler that cannot be reached (the message names how to start one)."""


class Notice(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""


class VoiceFallback(Notice):
    """A voice was replaced by its profile's fallback because its engine cannot load here.

    Python prints it once on stderr unless a caller handles it (the CLI prints one line)."""


class CacheUnavailable(Notice):
    """The cache folder cannot be written: the render goes on without it (one line on stderr)."""
