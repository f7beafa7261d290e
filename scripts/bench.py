"""Benchmark compassion-audio renders; prints ratios. Not a test: run ./scripts/bench.

Measures, in one run (medians of --runs): a cold and a warm (cache-hit) render of a ~30-minute script
to MP3 (wall time, peak RSS of the whole process tree); the irreducible work
(synthesising the same phrases with the engine alone + encoding the final PCM
with ffmpeg); the short phrases one pyttsx3 worker speaks per second; a naive render
(pyttsx3 per sentence, pydub ``+=``, one export); and a 60-minute render to show how
time and memory grow. These use espeak-ng (calm-female). The default voice (hibari heart) has its
own section: cold and warm renders against its own synthesis of the same phrases + the encode, and
its real-time factor beside Piper joe's.
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
    # espeak-ng unless a voice is named: its figures stay comparable (the default voice has its own section).
    voice = resolve_voice(extra.get("voice", "calm-female"))
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

    from compassion_audio.core.segments import Speech

    sentences = [s.text for s in markers.parse(script_text, source="bench") if isinstance(s, Speech)]
    with Pyttsx3Engine(VoiceSettings()) as engine:
        engine.synthesize("Warm up.")
        t = time.perf_counter()
        for s in sentences:
            engine.synthesize(s)
        synth = time.perf_counter() - t
    encode = encode_seconds(mp3, work)
    return {"synth": synth, "encode": encode, "total": synth + encode, "sentences": len(sentences)}


def encode_seconds(mp3: Path, work: Path) -> float:
    """ffmpeg's time to encode the final PCM of ``mp3`` again, as the product feeds it."""
    from compassion_audio.core.tools import ffmpeg_exe

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
    return time.perf_counter() - t


def whole_process(script: Path, out: Path, cache: Path, work: Path, runs: int) -> dict:
    """The CLI as a user runs it, warm (every phrase cached, a new file): the whole process,
    interpreter start and imports included, against ffmpeg encoding the same track's PCM."""
    cli = [str(Path(sys.executable).with_name("compassion-audio")), "render", str(script),
           "--voice", "calm-female", "-o", str(out), "--force", "--cache-dir", str(cache), "-q"]
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cli, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    encodes = sorted(encode_seconds(out, work) for _ in range(runs))
    return {"wall": sorted(walls)[runs // 2], "encode": encodes[runs // 2]}


def worker_phrases_per_second(count: int = 20) -> float:
    """Short phrases one pyttsx3 worker speaks per second (the engine warmed up)."""
    from compassion_audio.core.settings import VoiceSettings
    from compassion_audio.speech.engines.pyttsx3_engine import Pyttsx3Engine

    with Pyttsx3Engine(VoiceSettings()) as engine:
        engine.synthesize("Warm up.")
        t = time.perf_counter()
        for i in range(count):
            engine.synthesize(f"Breath number {i}.")
        return count / (time.perf_counter() - t)


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


def voice_synthesis(script_text: str, voice: str) -> dict:
    """A voice's own synthesis of the script's phrases (model loaded and warmed up beforehand), and
    its real-time factor: synthesis seconds per second of audible speech made."""
    from compassion_audio.core.audio import audible_bounds
    from compassion_audio.core.segments import Speech
    from compassion_audio.script import markers
    from compassion_audio.speech.voices import create_engine, resolve_voice

    sentences = [s.text for s in markers.parse(script_text, source="bench") if isinstance(s, Speech)]
    engine = create_engine(resolve_voice(voice))
    engine.synthesize("Warm up.")
    clips, t = [], time.perf_counter()
    for sentence in sentences:
        clips.append(engine.synthesize(sentence))
    synth = time.perf_counter() - t
    engine.close()
    audible = 0.0
    for clip in clips:
        start, end = audible_bounds(clip.samples, clip.sample_rate)
        audible += (end - start) / clip.sample_rate
    return {"synth": synth, "audible": audible, "rtf": synth / audible}


def _voice_synthesis_in_child(script: Path, voice: str) -> dict:
    # A child process, as for Piper: the model's memory never counts in a later render's peak RSS.
    proc = subprocess.run([sys.executable, __file__, "--voice-synthesis-of", voice, str(script)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--voice-synthesis-of", nargs=2, metavar=("VOICE", "SCRIPT"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-default-voice", action="store_true", help="skip the default (hibari) voice's section")
    parser.add_argument("--skip-album", action="store_true", help="skip the album section (bench_album.py)")
    parser.add_argument("--only-album", action="store_true", help="run only the album section")
    parser.add_argument("--soak", action="store_true",
                        help="run only the soak: 200 renders in one process, watching for growth (bench_soak.py)")
    args = parser.parse_args()
    if args.soak:
        from bench_soak import main as soak

        sys.exit(soak([]))
    if args.voice_synthesis_of:
        print(json.dumps(voice_synthesis(Path(args.voice_synthesis_of[1]).read_text(), args.voice_synthesis_of[0])))
        return
    if args.piper_synthesis_of:
        print(piper_synthesis(args.piper_synthesis_of.read_text()))
        return
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if args.only_album:
        from bench_album import album_section, print_album

        with tempfile.TemporaryDirectory() as tmp:
            print_album(album_section(Path(tmp), args.runs))
        return
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
        whole = whole_process(script, work / "whole.mp3", cache, work, args.runs)
        floor = _median([irreducible(text, work / "cold.mp3", work) for _ in range(args.runs)], key="total")
        phrase_rate = sorted(worker_phrases_per_second() for _ in range(args.runs))[args.runs // 2]
        base = None if args.skip_naive else naive(script, work / "naive.mp3")
        plain_warm = run_render(script, work / "plain.mp3", cache, mix={"loudness_lufs": None})
        sound = run_render(script, work / "sound.mp3", cache, mix={"background": "rain"},
                           breathing={"tones_in_pauses_seconds": 5.0})
        piper = None
        if not args.skip_piper:
            piper = {"cold": run_render(script, work / "piper.mp3", work / "cache-piper", voice="neural-joe"),
                     "warm": run_render(script, work / "piper2.mp3", work / "cache-piper", voice="neural-joe"),
                     "synth": _piper_synthesis_in_child(script)}
        default = None if args.skip_default_voice else default_voice_section(script, work, args)
        long_script = work / "long.txt"
        long_script.write_text(make_script(args.long_minutes, seed=2))
        long = run_render(long_script, work / "long.mp3", work / "cache-long")
        album = None
        if not args.skip_album:
            from bench_album import album_section

            (work / "album").mkdir()
            album = album_section(work / "album", args.runs)

    mins = cold["seconds"] / 60
    print(f"track: {mins:.1f} min, {cold['phrases']} phrases")
    print(f"cold render      {cold['wall']:7.2f} s   peak RSS {cold['rss_mb']:6.0f} MB (python {cold['own_rss_mb']:.0f} MB)   "
          f"{cold['lufs']:.2f} LUFS in {cold['passes']} pass(es)")
    print(f"warm render      {warm['wall']:7.2f} s   peak RSS {warm['rss_mb']:6.0f} MB   spoken {warm['spoken']}")
    print(f"irreducible      {floor['total']:7.2f} s   (synthesis {floor['synth']:.2f} s + encode {floor['encode']:.2f} s)")
    print(f"whole process    {whole['wall']:7.2f} s   warm CLI render / encode of its own PCM {whole['encode']:.2f} s = "
          f"{whole['wall'] / whole['encode']:.2f}x (target <= 1.25x)")
    print(f"one worker       {phrase_rate:7.1f} phrases/s   (20 short phrases, median of --runs)")
    print(f"overhead         {100 * (cold['wall'] / floor['total'] - 1):6.1f} %   (cold / irreducible - 1; target <= 20 %)")
    if base:
        print(f"naive baseline   {base['wall']:7.2f} s   peak RSS {base['rss_mb']:6.0f} MB")
        print(f"speed-up cold    {base['wall'] / cold['wall']:6.2f} x   warm {base['wall'] / warm['wall']:.2f} x  (target >1x cold, >=2x warm)")
    print(f"mastering        {warm['wall'] - plain_warm['wall']:7.2f} s   (warm with -16 LUFS mastering - warm with loudness off: the meter, plus any second pass)")
    print(f"tones + rain bed {sound['wall'] - warm['wall']:7.2f} s   (warm with a ducked bed and tones under pauses >= 5 s - warm)   "
          f"{sound['lufs']:.2f} LUFS in {sound['passes']} pass(es)")
    if piper:
        print(f"piper cold       {piper['cold']['wall']:7.2f} s   piper synthesis alone {piper['synth']:.2f} s   "
              f"overhead {100 * (piper['cold']['wall'] / piper['synth'] - 1):.1f} %   "
              f"{piper['cold']['lufs']:.2f} LUFS in {piper['cold']['passes']} pass(es)")
        print(f"piper warm       {piper['warm']['wall']:7.2f} s   spoken {piper['warm']['spoken']}   peak RSS {piper['cold']['rss_mb']:.0f} MB")
    if default:
        print_default_voice(default)
    lm = long["seconds"] / 60
    print(f"{lm:.0f}-min render   {long['wall']:7.2f} s   peak RSS {long['rss_mb']:6.0f} MB (python {long['own_rss_mb']:.0f} MB)")
    print(f"time per track minute: {cold['wall'] / mins:.3f} s ({mins:.0f} min) vs {long['wall'] / lm:.3f} s ({lm:.0f} min)")
    if album:
        from bench_album import print_album

        print_album(album)


def default_voice_section(script: Path, work: Path, args) -> dict:
    """The default voice (hibari heart): cold and warm renders, its own synthesis of the same
    phrases + the encode, and its real-time factor beside Piper joe's (same run)."""
    from compassion_audio.speech.voices import DEFAULT_PROFILE

    colds = [run_render(script, work / "default.mp3", work / f"cache-default-{i}", voice=DEFAULT_PROFILE)
             for i in range(args.runs)]
    section = {"voice": DEFAULT_PROFILE, "cold": _median(colds),
               "warm": _median([run_render(script, work / "default-warm.mp3", work / "cache-default-0",
                                           voice=DEFAULT_PROFILE) for _ in range(args.runs)]),
               "synth": _median([_voice_synthesis_in_child(script, DEFAULT_PROFILE) for _ in range(args.runs)],
                                key="synth"),
               "encode": sorted(encode_seconds(work / "default.mp3", work) for _ in range(args.runs))[args.runs // 2]}
    if not args.skip_piper:
        section["piper"] = _voice_synthesis_in_child(script, "neural-joe")
    return section


def print_default_voice(d: dict) -> None:
    floor = d["synth"]["synth"] + d["encode"]
    cold = d["cold"]
    print(f"{d['voice']} (default) cold {cold['wall']:7.2f} s   own synthesis {d['synth']['synth']:.2f} s + encode "
          f"{d['encode']:.2f} s = {floor:.2f} s   ratio {cold['wall'] / floor:.3f} x (target <= 1.15 x)   "
          f"{cold['lufs']:.2f} LUFS in {cold['passes']} pass(es)   peak RSS {cold['rss_mb']:.0f} MB")
    print(f"{d['voice']} (default) warm {d['warm']['wall']:7.2f} s   spoken {d['warm']['spoken']}")
    rtf = f"real-time factor {d['voice']} {d['synth']['rtf']:.4f}"
    if "piper" in d:
        rtf += f"   neural-joe {d['piper']['rtf']:.4f} ({d['piper']['rtf'] / d['synth']['rtf']:.1f}x {d['voice']}'s)"
    print(rtf + "   (synthesis seconds per second of audible speech, one process, model loaded)")


if __name__ == "__main__":
    main()
