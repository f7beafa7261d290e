"""Benchmark compassion-audio renders; prints ratios. Not a test: run ./scripts/bench.

Measures, in one run (medians of --runs): a cold and a warm (cache-hit) render of a ~30-minute script
to MP3 (wall time, peak RSS of the whole process tree); the irreducible work
(synthesising the same phrases with the engine alone + encoding the final PCM
with ffmpeg); a naive render (pyttsx3 per sentence, pydub ``+=``, one export);
and a 60-minute render to show how time and memory grow.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("gently soft breath warm kind slow steady calm safe welcome notice rest ease settle "
         "ground quiet open friendly patient light wise strong caring present moment body "
         "shoulders hands feet chair floor air room sound colour place voice heart face").split()


def make_script(minutes: float, seed: int = 1) -> str:
    """A script of distinct sentences (~14 words) and pauses, about ``minutes`` long at 130 wpm."""
    rng = random.Random(seed)
    lines, total, i = [], 0.0, 0
    while total < minutes * 60:
        words = [rng.choice(WORDS) for _ in range(13)]
        lines.append(f"Step {i}: you might let your {' '.join(words)}.")
        pause = rng.choice([3, 5, 8, 12, 20])
        lines.append(f"[pause {pause}s]")
        total += 9.0 + 0.6 + pause  # a 14-word phrase measures ~9 s at the default voice
        i += 1
    return "\n".join(lines) + "\n"


CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from dataclasses import replace
    from pathlib import Path
    from compassion_audio.core.settings import BreathingSettings, MixSettings
    from compassion_audio.render import TrackRequest, render_track
    from compassion_audio.speech.voices import resolve_voice
    extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    mix = replace(MixSettings(), **extra.get("mix", {}))
    breathing = replace(BreathingSettings(), **extra.get("breathing", {}))
    voice = resolve_voice(extra["voice"]) if "voice" in extra else None
    t = time.perf_counter()
    r = render_track(TrackRequest(exercise=sys.argv[1], output=Path(sys.argv[2]), force=True,
                                  cache_dir=Path(sys.argv[3]), mix=mix, breathing=breathing,
                                  voice_profile=voice))
    wall = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    m = r.mastering
    print(json.dumps({"wall": wall, "rss_mb": max(own, kids) / 1024, "own_rss_mb": own / 1024,
                      "seconds": r.timeline.seconds, "phrases": r.phrases, "spoken": r.synthesised,
                      "passes": m.passes, "lufs": m.output_lufs}))
""")


def run_render(script: Path, out: Path, cache: Path, **extra) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(script), str(out), str(cache),
                           json.dumps(extra)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def irreducible(script_text: str, mp3: Path, work: Path) -> dict:
    """Engine-only synthesis of the same phrases + ffmpeg encoding of the final PCM."""
    from compassion_audio.script import markers
    from compassion_audio.core.settings import VoiceSettings
    from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine
    from compassion_audio.core.tools import ffmpeg_exe

    from compassion_audio.core.segments import Speech

    sentences = [s.text for s in markers.parse(script_text, source="bench") if isinstance(s, Speech)]
    with Pyttsx3Engine(VoiceSettings()) as engine:
        engine.synthesize("Warm up.")
        t = time.perf_counter()
        for s in sentences:
            engine.synthesize(s)
        synth = time.perf_counter() - t
    raw = work / "final.f32"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp3), "-f", "f32le", "-ac", "1",
                    "-ar", "44100", str(raw)], check=True)
    from compassion_audio.output.export import _CODECS, _quality, input_args, wav_header

    # The same input the product gives ffmpeg (float WAV, large packets), from a file.
    wav = work / "final.wav"
    with open(wav, "wb") as out, open(raw, "rb") as src:
        out.write(wav_header(44100, 1))
        while chunk := src.read(1 << 20):
            out.write(chunk)
    source = [str(wav) if arg == "pipe:0" else arg for arg in input_args("mp3")]
    t = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *source, *_CODECS["mp3"], *_quality("mp3", None),
                    str(work / "enc.mp3")], check=True)
    encode = time.perf_counter() - t
    return {"synth": synth, "encode": encode, "total": synth + encode, "sentences": len(sentences)}


NAIVE = textwrap.dedent("""
    import json, os, resource, sys, time, warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pydub import AudioSegment
    from compassion_audio.script import markers
    from compassion_audio.core import tools
    from compassion_audio.core.segments import Pause, Speech
    tools.prepare_espeak(); tools.pydub()
    import pyttsx3
    text = open(sys.argv[1]).read()
    t = time.perf_counter()
    engine = pyttsx3.init()
    engine.setProperty("rate", 130)
    track = AudioSegment.silent(duration=1000, frame_rate=44100)
    tmp = sys.argv[2] + ".wav"
    for seg in markers.parse(text, source="naive"):
        if isinstance(seg, Speech):
            if os.path.exists(tmp):
                os.remove(tmp)
            engine.save_to_file(seg.text, tmp)
            engine.runAndWait()
            # runAndWait can return before the file is written (engine-notes): poll for it.
            clip = None
            for _ in range(1000):
                try:
                    clip = AudioSegment.from_wav(tmp)
                    if len(clip):
                        break
                except Exception:
                    pass
                time.sleep(0.01)
            track += clip.set_frame_rate(44100)
        elif isinstance(seg, Pause):
            track += AudioSegment.silent(duration=seg.seconds * 1000, frame_rate=44100)
    track.export(sys.argv[2], format="mp3", bitrate="160k")
    wall = time.perf_counter() - t
    print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def naive(script: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", NAIVE, str(script), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"naive baseline failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def piper_synthesis(script_text: str) -> float:
    """Piper's own synthesis time for the script's phrases (model loaded beforehand)."""
    from compassion_audio.script import markers
    from compassion_audio.core.segments import Speech
    from compassion_audio.speech.voices import create_engine, resolve_voice

    sentences = [s.text for s in markers.parse(script_text, source="bench") if isinstance(s, Speech)]
    engine = create_engine(resolve_voice("neural-joe"))
    engine.synthesize("Warm up.")
    t = time.perf_counter()
    for sentence in sentences:
        engine.synthesize(sentence)
    return time.perf_counter() - t


def _piper_synthesis_in_child(script: Path) -> float:
    # A child process, so the model's ~300 MB never counts in a later render's peak RSS
    # (Linux keeps ru_maxrss across fork+exec: a big parent inflates its children).
    proc = subprocess.run([sys.executable, __file__, "--piper-synthesis-of", str(script)],
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def _median(runs: list[dict], key: str = "wall") -> dict:
    """The run with the median ``key`` (all its figures from that one run)."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3, help="runs of the cold/warm/irreducible figures (median)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-piper", action="store_true")
    parser.add_argument("--piper-synthesis-of", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.piper_synthesis_of:
        print(piper_synthesis(args.piper_synthesis_of.read_text()))
        return
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text = make_script(args.minutes)
        script = work / "bench.txt"
        script.write_text(text)
        # Cold, warm and the irreducible work, each the median of --runs runs: single
        # runs on a shared 2-core machine vary by about ±10 %.
        colds = [run_render(script, work / "cold.mp3", work / f"cache-cold-{i}") for i in range(args.runs)]
        cold = _median(colds)
        warm = _median([run_render(script, work / "warm.mp3", work / "cache-cold-0")
                        for _ in range(args.runs)])
        cache = work / "cache-cold-0"
        floor = _median([irreducible(text, work / "cold.mp3", work) for _ in range(args.runs)], key="total")
        base = None if args.skip_naive else naive(script, work / "naive.mp3")
        plain_warm = run_render(script, work / "plain.mp3", cache, mix={"loudness_lufs": None})
        sound = run_render(script, work / "sound.mp3", cache, mix={"background": "rain"},
                           breathing={"tones_in_pauses_seconds": 5.0})
        piper = None
        if not args.skip_piper:
            piper = {"cold": run_render(script, work / "piper.mp3", work / "cache-piper", voice="neural-joe"),
                     "warm": run_render(script, work / "piper2.mp3", work / "cache-piper", voice="neural-joe"),
                     "synth": _piper_synthesis_in_child(script)}
        long_script = work / "long.txt"
        long_script.write_text(make_script(args.long_minutes, seed=2))
        long = run_render(long_script, work / "long.mp3", work / "cache-long")

    mins = cold["seconds"] / 60
    print(f"track: {mins:.1f} min, {cold['phrases']} phrases")
    print(f"cold render      {cold['wall']:7.2f} s   peak RSS {cold['rss_mb']:6.0f} MB (python {cold['own_rss_mb']:.0f} MB)   "
          f"{cold['lufs']:.2f} LUFS in {cold['passes']} pass(es)")
    print(f"warm render      {warm['wall']:7.2f} s   peak RSS {warm['rss_mb']:6.0f} MB   spoken {warm['spoken']}")
    print(f"irreducible      {floor['total']:7.2f} s   (synthesis {floor['synth']:.2f} s + encode {floor['encode']:.2f} s)")
    print(f"overhead         {100 * (cold['wall'] / floor['total'] - 1):6.1f} %   (cold / irreducible - 1; target <= 20 %)")
    if base:
        print(f"naive baseline   {base['wall']:7.2f} s   peak RSS {base['rss_mb']:6.0f} MB")
        print(f"speed-up cold    {base['wall'] / cold['wall']:6.2f} x   warm {base['wall'] / warm['wall']:.2f} x  (target >1x cold, >=2x warm)")
    print(f"mastering        {warm['wall'] - plain_warm['wall']:7.2f} s   (warm with -16 LUFS mastering - warm with loudness off: the meter, plus any second pass)")
    print(f"tones + rain bed {sound['wall'] - warm['wall']:7.2f} s   (warm with a ducked bed and tones under pauses >= 5 s - warm)   "
          f"{sound['lufs']:.2f} LUFS in {sound['passes']} pass(es)")
    if piper:
        print(f"piper cold       {piper['cold']['wall']:7.2f} s   piper synthesis alone {piper['synth']:.2f} s   "
              f"overhead {100 * (piper['cold']['wall'] / piper['synth'] - 1):.1f} % (target <= 10 %)   "
              f"{piper['cold']['lufs']:.2f} LUFS in {piper['cold']['passes']} pass(es)")
        print(f"piper warm       {piper['warm']['wall']:7.2f} s   spoken {piper['warm']['spoken']}   peak RSS {piper['cold']['rss_mb']:.0f} MB")
    lm = long["seconds"] / 60
    print(f"{lm:.0f}-min render   {long['wall']:7.2f} s   peak RSS {long['rss_mb']:6.0f} MB (python {long['own_rss_mb']:.0f} MB)")
    print(f"time per track minute: {cold['wall'] / mins:.3f} s ({mins:.0f} min) vs {long['wall'] / lm:.3f} s ({lm:.0f} min)")


if __name__ == "__main__":
    main()
