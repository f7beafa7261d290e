"""Progress of an album build as plain data: tracks done / total, the tracks in flight and an ETA."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AlbumProgress:
    """One change in a build, handed to the caller's callback (the CLI draws it)."""

    event: str
    """checking, started, built, unchanged, failed, retrying or finished."""
    label: str
    """The track it is about (empty for checking and finished)."""
    done: int
    """Tracks finished: built, unchanged or failed."""
    total: int
    in_flight: tuple[str, ...]
    """Tracks being rendered now, in the order they started."""
    eta_seconds: float | None
    """Time left, from the audio rendered so far per second of wall time (None: not known yet)."""
    detail: str = ""
    """What happened: the time a track took, or why it failed (one line)."""


ProgressCallback = Callable[[AlbumProgress], None]


class Tracker:
    """Counts the build and estimates the time left from the tracks' estimated lengths."""

    def __init__(self, total: int, callback: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self.callback = callback
        self.in_flight: dict[str, float] = {}
        """label -> estimated seconds of audio."""
        self.to_render = 0.0
        self.rendered = 0.0
        self.started_at: float | None = None

    def plan(self, audio_seconds: float) -> None:
        """A track will be rendered: its estimated audio length counts towards the ETA."""
        self.to_render += audio_seconds

    def event(self, event: str, label: str = "", detail: str = "", *, audio_seconds: float = 0.0) -> None:
        if event == "started":
            self.started_at = self.started_at or time.perf_counter()
            self.in_flight[label] = audio_seconds
        elif event in ("built", "failed", "unchanged"):
            self.done += 1
            self.rendered += self.in_flight.pop(label, 0.0)
        elif event == "retrying":
            self.in_flight.pop(label, None)
        if self.callback is not None:
            self.callback(AlbumProgress(event=event, label=label, done=self.done, total=self.total,
                                        in_flight=tuple(self.in_flight), eta_seconds=self.eta(), detail=detail))

    def eta(self) -> float | None:
        if self.started_at is None or self.rendered <= 0:
            return None
        rate = self.rendered / (time.perf_counter() - self.started_at)
        return max(0.0, (self.to_render - self.rendered) / rate)
