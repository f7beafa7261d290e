"""The default speech engine: pyttsx3 (espeak-ng on Linux) run in a worker process."""
from __future__ import annotations

import contextlib
import difflib
import errno
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compassion_audio.core import tools
from compassion_audio.core.audio import DEFAULT_RATE, Audio, audible_bounds, decode_file, gain_to_db
from compassion_audio.core.files import held_folder
from compassion_audio.core.settings import RATE_WPM_RANGE, VoiceSettings
from compassion_audio.core.errors import EngineUnavailable, SpeechError, VoiceError
from compassion_audio.speech.engines.base import EngineVoice, has_audible_speech

WORKER_MODULE = "compassion_audio.speech.engines._pyttsx3_worker"
INSTALL_HINT = ("install it with `pip install pyttsx3 espeakng-loader` "
                "(or the system package, e.g. `apt install espeak-ng`)")
START_SECONDS = 30.0
"""How long a fresh worker may take to import pyttsx3 and start the engine."""
TIMEOUT_SECONDS = 30.0
"""How long one phrase may take before the worker is taken for hung (espeak-ng speaks a
phrase in 10-100 ms). Not a user setting: tests pass a shorter ``timeout_seconds``, or set
this in the process they start."""
RETRIED_IN_A_ROW_LIMIT = 3
"""The circuit breaker: after this many phrases in a row that each needed a fresh worker, the
engine stops with a SpeechError instead of paying a timeout for every phrase."""
SCRATCH_PREFIX = "compassion-audio-speech-"
"""The worker's WAV files go to a held folder ``$TMPDIR/compassion-audio-speech-*``: removed on
close, and, when a render was killed (kill -9), by the next engine that starts."""

# What listeners hear at each espeak-ng `rate` setting, measured with espeak-ng
# 1.52.0 (espeakng-loader) as words / seconds from first to last audible sample
# of two paragraphs (61 and 47 words; they differ by ~13% because pace depends
# on the text), averaged over voices gmw/en and gmw/en-us (within 2% of each
# other). espeak speaks ~15-20% faster than its nominal rate: 130 wpm needs
# rate ~112. Its slowest setting, 80, still sounds like ~97 wpm (every setting
# below 80 sounds the same): hence settings.RATE_WPM_RANGE starts at 100.
ESPEAK_RATE_TABLE = ((80, 97.0), (90, 103.6), (100, 115.6), (110, 127.4), (120, 139.1),
                     (130, 151.8), (150, 175.2), (175, 206.1), (200, 235.8), (250, 295.0),
                     (300, 357.0), (400, 481.4))


def espeak_rate_for(rate_wpm: float) -> int:
    """The espeak `rate` setting that sounds like ``rate_wpm`` (clamped to espeak's range)."""
    settings = [s for s, _ in ESPEAK_RATE_TABLE]
    heard = [w for _, w in ESPEAK_RATE_TABLE]
    return int(round(float(np.interp(rate_wpm, heard, settings))))


PACE_SECONDS_PER_LETTER = 13.1
"""espeak-ng's audible seconds per letter or digit, times the rate in wpm: 13.1 at 100, 130
and 180 wpm (median over the 540 distinct sentences of the exercise library, each within
0.78-1.67 times it)."""
TOO_FAST = 0.75
"""A take shorter than this share of the expected length is spoken again: a rate setting lost
on its way to espeak speaks 110-140 wpm at espeak's default, ~236 wpm (0.47-0.59 of the
pace). No sentence of the library is that short; a false alarm costs one retake."""


def _audible_seconds(audio: Audio) -> float:
    """From the first to the last sample within 40 dB of the take's peak."""
    peak = float(np.abs(audio.samples).max(initial=0.0))
    bounds = audible_bounds(audio.samples, audio.sample_rate,
                            threshold_db=gain_to_db(peak) - 40.0) if peak > 0 else None
    return 0.0 if bounds is None else (bounds[1] - bounds[0]) / audio.sample_rate


class _WorkerFailed(Exception):
    """The worker hung, died or could not do what was asked (internal: becomes SpeechError)."""


class _NoRoom(_WorkerFailed):
    """The worker could not write its WAV file: a full disk or quota (ENOSPC, EDQUOT) or a
    file-size limit (EFBIG, SIGXFSZ). Not retried: a fresh worker would meet the same wall."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _room_message(code: str, folder: Path) -> str:
    if code == "EFBIG":
        return (f"the file-size limit (ulimit -f) stops the speech engine writing to the temporary "
                f"folder {folder} (raise the limit, e.g. `ulimit -f unlimited`)")
    return f"no space left in the temporary folder {folder} (free some space or set TMPDIR to another disk)"


class _Worker:
    """One worker process and the thread that reads its answers."""

    def __init__(self, stderr_file) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", WORKER_MODULE], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=stderr_file, text=True, encoding="utf-8")
        self._answers: queue.Queue = queue.Queue()
        # The reader holds the stream, not self, so a forgotten worker can be collected.
        threading.Thread(target=_read_lines, args=(self.process.stdout, self._answers),
                         daemon=True).start()
        self.stop = weakref.finalize(self, _end_process, self.process)
        """Ask the worker to quit (kill it if it will not) and close the pipes; idempotent."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, request: dict, timeout_seconds: float) -> dict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise _WorkerFailed(self._death()) from None
        try:
            line = self._answers.get(timeout=timeout_seconds)
        except queue.Empty:
            raise _WorkerFailed(f"no answer within {timeout_seconds:g} s: the engine hung") from None
        if line is None:
            raise _WorkerFailed(self._death())
        return json.loads(line)

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "the worker stopped answering"
        if code == -getattr(signal, "SIGXFSZ", 0):  # writing past the file-size limit killed it
            raise _NoRoom("EFBIG")
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the engine crashed with {name}"
        return f"the engine exited with code {code}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stop()


def _read_lines(stream, answers: queue.Queue) -> None:
    try:
        for line in stream:
            answers.put(line)
    except (OSError, ValueError):  # the pipe closed under the read: a killed worker, being cleaned up
        pass
    answers.put(None)


def _end_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            process.stdin.write('{"op": "quit"}\n')
            process.stdin.flush()
            process.wait(timeout=2.0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            stream.close()


@dataclass(frozen=True)
class EngineInfo:
    """What the worker reported at start-up."""

    pyttsx3_version: str
    driver: str
    default_voice: str | None
    espeak_library: str | None
    espeak_version: str | None
    voices: tuple[EngineVoice, ...]
    variants: tuple[str, ...]


def _info_from(reply: dict) -> EngineInfo:
    voices = tuple(EngineVoice(id=v["id"], name=v["name"], languages=tuple(v["languages"]),
                               gender=(v["gender"] or None)) for v in reply["voices"])
    return EngineInfo(reply["pyttsx3_version"], reply["driver"], reply["default_voice"],
                      reply["espeak_library"], reply["espeak_version"], voices,
                      tuple(reply["variants"]))


def _voice_keys(info: EngineInfo):
    """(name, voice id) pairs, in the order they win: ids, espeak file names (gmw/en-us ->
    en-us), display names, then languages - so no voice's id is shadowed by another's language."""
    yield from ((v.id, v.id) for v in info.voices)
    if info.driver == "espeak":
        yield from ((v.id.rsplit("/", 1)[-1], v.id) for v in info.voices)
    yield from ((v.name, v.id) for v in info.voices)
    yield from ((language, v.id) for v in info.voices for language in v.languages)


def resolve_voice(wanted: str, info: EngineInfo) -> str:
    """The engine voice id for ``wanted`` (id, name or language; espeak: ``voice+variant``).

    The one lookup of voice names: the engine, ``--voice`` and the voice listing all use
    it. pyttsx3 ignores unknown voices, so an unknown one is a VoiceError here.
    """
    base, _, variant = wanted.partition("+") if info.driver == "espeak" else (wanted, "", "")
    names: dict[str, str] = {}
    for key, voice_id in _voice_keys(info):
        names.setdefault(key.lower(), voice_id)
    found = names.get(base.strip().lower())
    if found is None:
        close = difflib.get_close_matches(base.lower(), list(names), n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else "run `compassion-audio voices`"
        raise VoiceError(f"unknown voice {wanted!r} for {info.driver}; {hint}")
    if not variant:
        return found
    if variant.lower() not in info.variants:
        close = difflib.get_close_matches(variant.lower(), list(info.variants), n=5, cutoff=0.5)
        hint = f"close matches: {', '.join(close)}" if close else f"variants: {', '.join(info.variants[:12])}"
        raise VoiceError(f"unknown voice variant {variant!r} in {wanted!r}; {hint}")
    return f"{found}+{variant.lower()}"


def decode_engine_file(path: Path) -> Audio:
    """Decode what the engine wrote by its content (WAV on Linux/Windows, AIFF on macOS)."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"FORM":
        # pydub would need ffprobe (not shipped by imageio-ffmpeg) to read AIFF.
        return decode_file(path, sample_rate=DEFAULT_RATE)
    if magic != b"RIFF":
        raise SpeechError(f"the speech engine wrote an unknown audio format ({magic!r})")
    # pydub leaves a file it opened by name unclosed: hand it an open file.
    with open(path, "rb") as fh:
        seg = tools.pydub().AudioSegment.from_file(fh, format="wav")
    data = np.array(seg.get_array_of_samples(), dtype=np.float32)
    data /= float(1 << (8 * seg.sample_width - 1))
    if seg.channels > 1:
        data = data.reshape(-1, seg.channels).mean(axis=1)
    return Audio(data.astype(np.float32, copy=False), seg.frame_rate)


def _check_ranges(settings: VoiceSettings) -> None:
    low, high = RATE_WPM_RANGE
    if not low <= settings.rate_wpm <= high:
        raise VoiceError(f"rate_wpm {settings.rate_wpm} is outside {low}-{high} wpm "
                         "(the rates every engine can speak)")
    if settings.pitch is not None and not 0 <= settings.pitch <= 100:
        raise VoiceError(f"pitch {settings.pitch} is outside 0-100")
    if not 0.0 < settings.volume <= 1.0:
        raise VoiceError(f"volume {settings.volume} is outside 0-1 (0 would be silent)")


def _remove_scratch(scratch, stderr_file) -> None:
    stderr_file.close()
    scratch.close()


def _scratch_folder():
    """The engine's held temp folder (core/files.py: swept by the next run if this one is killed)."""
    try:
        return held_folder(SCRATCH_PREFIX)
    except OSError as exc:
        parent = Path(tempfile.gettempdir())
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise SpeechError(_room_message("ENOSPC", parent)) from None
        raise SpeechError(f"cannot make a folder in the temporary folder {parent} "
                          f"({exc.strerror or exc}; set TMPDIR to a writable folder)") from None


class Pyttsx3Engine:
    """pyttsx3 behind the SpeechEngine protocol; one worker process serves every phrase.

    Faults, and what each costs at most (T = ``timeout_seconds``, 30 s by default; S = a
    worker's start, ~0.3 s, at most START_SECONDS):
    - a phrase that hangs, crashes the worker (SIGKILL, SIGSEGV) or comes back silent or
      empty is spoken again once in a fresh worker; failing again, it is a SpeechError
      (at most 2T + 2S for that phrase);
    - the circuit breaker: RETRIED_IN_A_ROW_LIMIT (3) phrases in a row that each needed a
      fresh worker stop the engine with a SpeechError, so an engine that hangs after every
      phrase costs at most 3 (T + S) plus the phrases' own time, not T a phrase for ever;
    - a WAV file the worker cannot write (a full temp folder, a quota, a file-size limit) is
      a SpeechError naming the folder at once, with no retry.
    Messages never quote the phrase (it may hold a client's name): ClipSource names its place.
    """

    name = "pyttsx3"

    def __init__(self, settings: VoiceSettings, *, timeout_seconds: float | None = None) -> None:
        _check_ranges(settings)
        self.settings = settings
        self.timeout_seconds = TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
        self._scratch = _scratch_folder()
        self._folder = self._scratch.path
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        # Runs on close(), on collection or at exit: an engine left open leaves nothing behind.
        self._cleanup = weakref.finalize(self, _remove_scratch, self._scratch, self._stderr)
        self._count = 0
        self._restarts = 0
        self._retried_in_a_row = 0
        self._broken: str | None = None
        self._last_failure = ""
        self._worker: _Worker | None = None
        self._closed = False
        try:
            self._info = self._start()
            self._voice = (resolve_voice(settings.voice, self._info) if settings.voice
                           else self._info.default_voice)
            self._rate = self._engine_rate(settings.rate_wpm)
        except BaseException:
            self.close()
            raise

    def _engine_rate(self, rate_wpm: int) -> int:
        if self._info.driver != "espeak":
            return int(rate_wpm)  # nsss and sapi5 take words per minute directly
        return espeak_rate_for(rate_wpm)  # _check_ranges kept it where espeak can follow

    @property
    def info(self) -> EngineInfo:
        """The driver, its voices and (espeak) variants, as the worker reported them."""
        return self._info

    def _start(self) -> EngineInfo:
        self._worker = _Worker(self._stderr)
        try:
            reply = self._worker.call({"op": "hello"}, START_SECONDS)
        except _WorkerFailed as exc:
            raise EngineUnavailable(f"pyttsx3 could not start ({exc}{self._stderr_tail()}); "
                                    f"{INSTALL_HINT}") from None
        if not reply.get("ok"):
            raise EngineUnavailable(f"pyttsx3 could not start ({reply.get('message')}); {INSTALL_HINT}")
        return _info_from(reply)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        self._stderr.seek(0, os.SEEK_END)
        return f": {lines[-1]}" if lines else ""

    def identity(self) -> dict:
        info = self._info
        return {"engine": self.name, "pyttsx3": info.pyttsx3_version, "driver": info.driver,
                "espeak_library": info.espeak_library, "espeak_version": info.espeak_version,
                "platform": sys.platform, "voice": self._voice, "rate_wpm": self.settings.rate_wpm,
                "engine_rate": self._rate, "pitch": self.settings.pitch,
                "volume": self.settings.volume}

    def voices(self) -> list[EngineVoice]:
        return list(self._info.voices)

    def _synth_request(self, text: str, path: str) -> dict:
        return {"op": "synth", "text": text, "path": path, "voice": self._voice,
                "rate": self._rate, "pitch": self.settings.pitch, "volume": self.settings.volume,
                "wait_seconds": self.timeout_seconds * 0.8}

    def synthesize(self, text: str) -> Audio:
        """Raw engine audio for ``text``; a hang, crash, or silent or empty take restarts the
        worker and retries once (see the class docstring for the limits).

        A take far shorter than the rate allows (a rate setting lost on its way to espeak)
        is spoken again, never returned - so never cached.
        """
        if self._closed:
            raise SpeechError("the speech engine is closed")
        if self._broken:
            raise SpeechError(self._broken)
        restarts = self._restarts
        audio = self._paced(text)
        if self._restarts == restarts:
            self._retried_in_a_row = 0
            return audio
        self._retried_in_a_row += 1
        if self._retried_in_a_row >= RETRIED_IN_A_ROW_LIMIT:
            self._broken = (f"the speech engine failed on each of the last {self._retried_in_a_row} "
                            f"phrases and spoke them only in a fresh worker ({self._last_failure}): "
                            "stopped, as it is not working reliably here")
            raise SpeechError(self._broken)
        return audio

    def _paced(self, text: str) -> Audio:
        audio = self._spoken(text)
        expected = self._expected_seconds(text)
        if _audible_seconds(audio) >= TOO_FAST * expected:
            return audio
        retake = self._spoken(text)  # every request sets (and checks) the rate again
        # In pace now; or as fast again (within 10 %): then the pace is the text's own.
        alike = abs(retake.frames - audio.frames) <= 0.1 * audio.frames
        if _audible_seconds(retake) >= TOO_FAST * expected or alike:
            return retake
        first, second = _audible_seconds(audio), _audible_seconds(retake)
        raise SpeechError(f"the speech engine spoke too fast for {self.settings.rate_wpm} wpm: "
                          f"in {first:.2f} s, then {second:.2f} s, where about {expected:.2f} s "
                          "were expected; try again, or report the phrase")

    def _expected_seconds(self, text: str) -> float:
        """About how long espeak speaks ``text`` at this rate (0: no check, too short to tell)."""
        letters = sum(c.isalnum() for c in text)
        if self._info.driver != "espeak" or letters < 8:
            return 0.0
        return PACE_SECONDS_PER_LETTER * letters / self.settings.rate_wpm

    def _spoken(self, text: str) -> Audio:
        failures: list[str] = []
        for _attempt in range(2):
            self._count += 1
            path = self._folder / f"phrase-{self._count}.wav"
            try:
                return self._synthesize_once(text, str(path))
            except _NoRoom as exc:
                raise SpeechError(_room_message(exc.code, self._folder.parent)) from None
            except _WorkerFailed as exc:
                failures.append(str(exc))
                self._last_failure = str(exc)
                self._restart()
            finally:
                path.unlink(missing_ok=True)
        raise SpeechError(f"the speech engine failed ({failures[0]}), and again in a fresh worker "
                          f"({failures[-1]})")

    def _synthesize_once(self, text: str, path: str) -> Audio:
        if self._closed:
            raise _WorkerFailed("the engine was closed")
        worker = self._worker  # close() on another thread may clear it meanwhile
        if worker is None:
            raise _WorkerFailed("the engine could not be restarted")
        reply = worker.call(self._synth_request(text, path), self.timeout_seconds)
        if not reply.get("ok"):
            if reply.get("error") == "no-room":
                raise _NoRoom(reply.get("errno", "ENOSPC"))
            raise _WorkerFailed(reply.get("message", "the engine failed"))
        try:
            audio = decode_engine_file(Path(path))
        except SpeechError as exc:
            raise _WorkerFailed(str(exc)) from None
        except Exception as exc:  # a truncated or garbled file: pydub's or wave's own errors
            raise _WorkerFailed(f"the engine wrote an unreadable file ({type(exc).__name__})") from None
        if audio.frames == 0:
            raise _WorkerFailed("the engine wrote no audio")
        if not has_audible_speech(audio):
            raise _WorkerFailed("the engine wrote silence")
        return audio

    def _restart(self) -> None:
        self._restarts += 1
        worker = self._worker
        if worker is not None:
            worker.kill()
        if self._closed:  # closed from another thread (an interrupted render): start nothing
            self._worker = None
            return
        try:
            self._info = self._start()
        except EngineUnavailable:
            self._worker = None

    def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._cleanup()

    def __enter__(self) -> "Pyttsx3Engine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
