"""Measure a voice as a listener meets it: pace, pitch variation and intelligibility of a fixed paragraph.

The figures in the shipped profiles' descriptions come from here:

    .venv/bin/python -m tests.voice_measures heart neural-joe calm-female
    .venv/bin/python -m tests.voice_measures heart --speed 0.6,0.65,0.7
    .venv/bin/python -m tests.voice_measures neural-joe --length-scale 1.0,1.3,1.8 --sentence-gap 0.8

Method: the twelve sentences of PARAGRAPH are rendered by the product (render_track, no bells, WAV,
the voice's own sentence gap unless --sentence-gap) as one paragraph; the file is decoded with
ffmpeg and cut at the timeline's speech events (each spans exactly the audible speech).
- paragraph wpm: words / (first audible sample to last) of the whole paragraph, gaps included;
- speech wpm: words / the summed length of the sentences alone;
- pitch variation: standard deviation of the pitch in semitones over the voiced 10 ms frames of a
  sentence (normalised cross-correlation tracker, 60-500 Hz; octave errors beyond 12 semitones of
  the sentence's median dropped), averaged over the sentences;
- WER: pocketsphinx (its own en-us model, default dictionary and language model) on each sentence
  padded with 0.3 s of silence at 16 kHz; word-level edit distance over the reference words, after
  lower-casing and removing punctuation. It scores espeak-ng badly (0.5-1.0) whatever the pace:
  compare neural voices with it, or use it to catch a broken front end.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

PARAGRAPH = (
    "You might notice the breath moving in and out of your body.",
    "There is nothing you need to do right now, and nowhere you need to be.",
    "Let your shoulders soften, and allow your hands to rest wherever they are.",
    "If your mind wanders, that is perfectly natural; gently bring your attention back.",
    "Imagine a warm light resting in the center of your chest.",
    "You could place a hand over your heart, feeling its warmth and weight.",
    "Notice any tension in your jaw, and see if it can loosen a little.",
    "Perhaps you can offer yourself the same kindness you would offer a friend.",
    "Whatever you are feeling is welcome here, just as it is.",
    "Allow each breath out to be a little slower than the one before.",
    "You are doing the best you can, and that is enough.",
    "When you are ready, let your eyes open and return to the room around you.",
)
SR = 44100
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Measures:
    words: int
    paragraph_wpm: float
    speech_wpm: float
    pitch_variation_st: float
    median_f0_hz: float
    wer: float | None
    heard: tuple[str, ...] = ()


def render_paragraph(profile, folder: Path, *, sentences=PARAGRAPH):
    """(decoded samples at SR, [(start, end) frames of each sentence]) of the paragraph in ``profile``."""
    from compassion_audio.core.settings import MixSettings
    from compassion_audio.render import TrackRequest, render_track

    from .conftest import decode

    script = folder / "paragraph.txt"
    script.write_text(" ".join(sentences).replace("[", "[[") + "\n", encoding="utf-8")
    out = folder / f"paragraph-{abs(hash(profile)) % 10**8}.wav"
    result = render_track(TrackRequest(
        exercise=str(script), voice_profile=profile, output=out, force=True, use_cache=False,
        mix=MixSettings(bells=False, lead_in_seconds=0.5, tail_seconds=0.5, sample_rate=SR)))
    spans = [(e.start, e.end) for e in result.timeline.of_kind("speech")]
    return decode(out, SR), spans


def measure(samples: np.ndarray, spans, sentences=PARAGRAPH, *, recognise: bool = True,
            pitch: bool = True) -> Measures:
    words = sum(word_count(s) for s in sentences)
    first, last = spans[0][0], spans[-1][1]
    speech = sum(end - start for start, end in spans)
    stds, medians, heard = [], [], []
    errors = reference = 0
    recogniser = Recogniser() if recognise else None
    for (start, end), text in zip(spans, sentences):
        clip = to_16k(samples[start:end], SR)
        st = semitones(f0_track(clip)) if pitch else np.zeros(0)
        if st.size >= 5:
            stds.append(float(np.std(st)))
            medians.append(float(2 ** (np.median(st) / 12)))
        if recogniser is not None:
            pad = np.zeros(int(0.3 * 16000), np.float32)
            hyp = recogniser(np.concatenate([pad, clip, pad]))
            heard.append(hyp)
            ref = norm_words(text)
            errors += edit_distance(ref, norm_words(hyp))
            reference += len(ref)
    return Measures(words=words, paragraph_wpm=words / ((last - first) / SR) * 60,
                    speech_wpm=words / (speech / SR) * 60,
                    pitch_variation_st=float(np.mean(stds)) if stds else math.nan,
                    median_f0_hz=float(np.median(medians)) if medians else math.nan,
                    wer=errors / reference if recogniser is not None else None, heard=tuple(heard))


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def to_16k(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = math.gcd(sr, 16000)
    return resample_poly(x.astype(np.float64), 16000 // g, sr // g).astype(np.float32)


def f0_track(x16: np.ndarray, sr: int = 16000, fmin: float = 60.0, fmax: float = 500.0) -> np.ndarray:
    """Pitch (Hz) of the voiced 10 ms frames: 25 ms windows low-passed at 1 kHz; a frame is voiced
    when its normalised cross-correlation peak is >= 0.7 within 35 dB of the loudest frame; the
    smallest lag within 0.9 of the best peak wins (no sub-octave picks), refined parabolically."""
    from scipy.signal import butter, sosfiltfilt

    if x16.size < sr // 10:
        return np.zeros(0)
    y = sosfiltfilt(butter(4, 1000, fs=sr, output="sos"), x16.astype(np.float64))
    size, hop = int(0.025 * sr), int(0.010 * sr)
    low, high = int(sr / fmax), int(sr / fmin) + 1
    count = (y.size - size - high) // hop
    if count <= 0:
        return np.zeros(0)
    energy = np.array([np.dot(y[i * hop:i * hop + size], y[i * hop:i * hop + size]) for i in range(count)])
    loudest = energy.max()
    found = []
    for i in range(count):
        if energy[i] <= 0 or energy[i] < loudest * 10 ** (-35 / 10):
            continue
        s = i * hop
        lags = np.lib.stride_tricks.sliding_window_view(y[s + low:s + high + size], size)
        ncc = (lags @ y[s:s + size]) / (np.sqrt(energy[i] * np.einsum("ij,ij->i", lags, lags)) + 1e-12)
        best = float(ncc.max())
        if best < 0.7:
            continue
        peaks = [k for k in range(1, len(ncc) - 1)
                 if ncc[k] >= ncc[k - 1] and ncc[k] >= ncc[k + 1] and ncc[k] >= 0.9 * best]
        if not peaks:
            continue
        k = peaks[0]
        curve = ncc[k - 1] - 2 * ncc[k] + ncc[k + 1]
        found.append(sr / (low + k + (0.5 * (ncc[k - 1] - ncc[k + 1]) / curve if curve else 0.0)))
    return np.array(found)


def semitones(f0: np.ndarray) -> np.ndarray:
    """Voiced pitch in semitones, octave errors (> 12 st from the median) dropped."""
    f0 = f0[f0 > 0]
    if f0.size < 5:
        return np.zeros(0)
    st = 12 * np.log2(f0)
    return st[np.abs(st - np.median(st)) <= 12]


class Recogniser:
    """pocketsphinx with its own en-us model: 16 kHz mono float -> the words it heard."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(loglevel="FATAL")

    def __call__(self, x16: np.ndarray) -> str:
        pcm = (np.clip(x16, -1, 1) * 32767).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, False, True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def norm_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(b) + 1):
            above = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1]))
            diagonal = above
    return row[-1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("voices", nargs="+", help="voice profiles (as --voice takes them)")
    parser.add_argument("--speed", help="hibari speeds to try, e.g. 0.6,0.65,0.7")
    parser.add_argument("--length-scale", help="Piper length scales to try, e.g. 1.0,1.3,1.8")
    parser.add_argument("--sentence-gap", type=float, help="seconds between sentences (default: the voice's)")
    parser.add_argument("--no-wer", action="store_true", help="skip pocketsphinx")
    args = parser.parse_args(argv)
    from compassion_audio.speech.voices import resolve_voice

    print("| voice | setting | gap s | paragraph wpm | speech wpm | pitch variation st | median f0 Hz | WER |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.voices:
            base = resolve_voice(name)
            if args.sentence_gap is not None:
                base = base.with_settings(sentence_gap_seconds=args.sentence_gap)
            variants = [("", base)]
            if args.speed:
                variants = [(f"speed {v}", replace(base, speed=float(v))) for v in args.speed.split(",")]
            elif args.length_scale:
                variants = [(f"length_scale {v}", replace(base, length_scale=float(v)))
                            for v in args.length_scale.split(",")]
            for label, profile in variants:
                m = measure(*render_paragraph(profile, Path(tmp)), recognise=not args.no_wer)
                wer = "-" if m.wer is None else f"{m.wer:.3f}"
                print(f"| {name} | {label or 'as shipped'} | {profile.settings.sentence_gap_seconds:g} | "
                      f"{m.paragraph_wpm:.0f} | {m.speech_wpm:.0f} | {m.pitch_variation_st:.2f} | "
                      f"{m.median_f0_hz:.0f} | {wer} |", flush=True)
                for heard in m.heard:
                    print(f"    heard: {heard}", file=sys.stderr)


if __name__ == "__main__":
    main()
