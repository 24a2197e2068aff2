"""SubRip (SRT) captions: timed words grouped into cues, written and parsed back."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Caption:
    """One subtitle: start and end in seconds and its text (may span lines)."""
    start: float
    end: float
    text: str


def _srt_time(seconds: float) -> str:
    if not seconds >= 0:
        raise ValueError(f"SRT times must be >= 0 seconds, got {seconds}")
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(entries: Iterable[Caption | tuple[float, float, str]]) -> str:
    """SubRip text: numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm` with times rounded to milliseconds."""
    blocks = []
    for n, e in enumerate(entries, start=1):
        start, end, text = (e.start, e.end, e.text) if isinstance(e, Caption) else e
        if end < start:
            raise ValueError(f"caption {n} ends ({end} s) before it starts ({start} s)")
        text = "\n".join(line for line in text.strip().splitlines() if line.strip())
        blocks.append(f"{n}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n")
    return "\n".join(blocks)


_SRT_TIMING = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})")


def parse_srt(text: str) -> list[Caption]:
    """Parse SubRip text (BOM, CRLF and a missing final blank line tolerated). Raises ValueError naming the
    line of a cue without a valid timing line."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    captions = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if lines[i].strip().isdigit() and i + 1 < len(lines):
            i += 1  # the cue number
        m = _SRT_TIMING.match(lines[i])
        if m is None:
            raise ValueError(f"SRT line {i + 1}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm', got {lines[i]!r}")
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + int(m.group(4).ljust(3, "0")) / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + int(m.group(8).ljust(3, "0")) / 1000
        i += 1
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i])
            i += 1
        captions.append(Caption(start, end, "\n".join(body)))
    return captions


def words_to_captions(words: Sequence[dict[str, Any]], max_chars: int = 42, max_gap_s: float = 1.0,
                      max_duration_s: float = 7.0) -> list[Caption]:
    """Group timed words into subtitle cues: a new cue after a pause longer than max_gap_s, or when the line would
    exceed max_chars characters or max_duration_s seconds."""
    cues: list[list[dict[str, Any]]] = []
    for w in words:
        cur = cues[-1] if cues else None
        if cur and (w["start"] - cur[-1]["end"] <= max_gap_s
                    and len(" ".join(x["word"] for x in cur + [w])) <= max_chars
                    and w["end"] - cur[0]["start"] <= max_duration_s):
            cur.append(w)
        else:
            cues.append([w])
    return [Caption(c[0]["start"], c[-1]["end"], " ".join(x["word"] for x in c)) for c in cues]
