"""Recording sheets for a human voice pack: the phrases to record, numbered, plus the pack manifest."""
from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path
from typing import Sequence

from compassion_audio.core.errors import OutputError, ProfileError
from compassion_audio.core.files import write_text_atomic
from compassion_audio.core.segments import Script

MANIFEST = "phrases.json"
SHEET_TEXT = "recording-sheet.txt"
SHEET_HTML = "recording-sheet.html"

INSTRUCTIONS = (
    "Record one file per phrase, named by its number: 001.wav, 002.wav ... "
    "(any format ffmpeg reads works: 001.mp3, 001.m4a ...).",
    "Record in a quiet room with soft furnishings; keep the microphone at the same distance throughout.",
    "Speak at a natural, unhurried pace, as if to one person. No need to whisper.",
    "Leave about a second of silence before and after each phrase; the silence is trimmed for you.",
    "If you slip, record the phrase again and keep only the good take under its number.",
    "Or read every phrase in order in one long take with a clear pause (two seconds) between "
    "phrases, and import it with import_take.",
)


def normalise_phrase(text: str) -> str:
    """The matching key for a phrase: case, curly quotes, punctuation and spacing do not count."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'").casefold()
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def phrases_for(scripts: Sequence[Script]) -> list[str]:
    """Every distinct sentence of the scripts, in first-spoken order."""
    seen: set[str] = set()
    phrases: list[str] = []
    for script in scripts:
        for speech in script.speech:
            key = normalise_phrase(speech.text)
            if key and key not in seen:
                seen.add(key)
                phrases.append(speech.text)
    return phrases


def phrase_number(index: int, total: int) -> str:
    """Zero-padded phrase number (001; wider only past 999 phrases)."""
    return str(index).zfill(max(3, len(str(total))))


def _numbered(phrases: Sequence[str]) -> list[tuple[str, str]]:
    return [(phrase_number(i, len(phrases)), p) for i, p in enumerate(phrases, start=1)]


def sheet_text(phrases: Sequence[str], title: str, numbers: Sequence[str] | None = None) -> str:
    """A plain-text sheet: title, instructions, then `001  text` lines."""
    pairs = list(zip(numbers, phrases)) if numbers else _numbered(phrases)
    lines = [title, "=" * len(title), ""] + [f"- {line}" for line in INSTRUCTIONS] + [""]
    lines += [f"{number}  {text}" for number, text in pairs]
    return "\n".join(lines) + "\n"


def sheet_html(phrases: Sequence[str], title: str, numbers: Sequence[str] | None = None) -> str:
    """A printable page in large type: instructions, then one numbered phrase per row."""
    pairs = list(zip(numbers, phrases)) if numbers else _numbered(phrases)
    esc = html.escape
    items = "\n".join(f'<li><span class="n">{esc(n)}</span> {esc(t)}</li>' for n, t in pairs)
    steps = "\n".join(f"<li>{esc(line)}</li>" for line in INSTRUCTIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: Georgia, serif; font-size: 20pt; line-height: 1.5; margin: 2em; }}
h1 {{ font-size: 26pt; }}
.instructions {{ font-size: 14pt; border: 1px solid #999; padding: 0.5em 1.5em; }}
ol.phrases {{ list-style: none; padding: 0; }}
ol.phrases li {{ margin: 0.8em 0; page-break-inside: avoid; }}
.n {{ font-family: monospace; font-weight: bold; margin-right: 1em; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<ul class="instructions">
{steps}
</ul>
<ol class="phrases">
{items}
</ol>
</body>
</html>
"""


def read_manifest(folder: str | Path) -> dict[str, str]:
    """A pack's phrases.json (number -> text); a bad file is a ProfileError naming it."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProfileError("no phrases.json: not a voice pack", source=str(path),
                           hint="write one with: compassion-audio voices script EXERCISE -o FOLDER") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"not valid JSON: {exc.msg}", source=str(path), line=exc.lineno) from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ProfileError("phrases.json must map numbers to phrase text", source=str(path))
    return data


def write_sheet(phrases: Sequence[str], folder: str | Path, title: str) -> list[Path]:
    """Write the text and HTML sheets and phrases.json into the pack folder; returns the paths.

    An existing manifest keeps its numbers (recordings already made stay valid);
    new phrases get the next free numbers.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the pack folder {folder}: {exc.strerror}") from exc
    manifest = read_manifest(folder) if (folder / MANIFEST).exists() else {}
    known = {normalise_phrase(t): n for n, t in manifest.items()}
    numbers = []
    next_number = max((int(n) for n in manifest if n.isdigit()), default=0) + 1
    for phrase in phrases:
        number = known.get(normalise_phrase(phrase))
        if number is None:
            number = phrase_number(next_number, len(phrases) + len(manifest))
            next_number += 1
            manifest[number] = phrase
            known[normalise_phrase(phrase)] = number
        numbers.append(number)
    written = [folder / SHEET_TEXT, folder / SHEET_HTML, folder / MANIFEST]
    ordered = dict(sorted(manifest.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0))
    texts = (sheet_text(phrases, title, numbers), sheet_html(phrases, title, numbers),
             json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")
    for path, text in zip(written, texts):
        write_text_atomic(path, text)
    return written
