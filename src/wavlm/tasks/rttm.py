"""RTTM speaker turns (NIST Rich Transcription Time Marked) and the diarization error rate.

DER is computed exactly on segment boundaries with the optimal one-to-one speaker mapping (Hungarian method),
with md-eval's collar convention (+-collar seconds around every reference boundary is not scored).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Iterable, Sequence, TextIO

import numpy as np


@dataclass(frozen=True, order=True)
class Turn:
    """One speaker turn: `start`/`end` in seconds, `speaker` label, recording `uri`, RTTM `channel`."""
    start: float
    end: float
    speaker: str
    uri: str = "file"
    channel: str = "1"

    @property
    def duration(self) -> float:
        return self.end - self.start


def _check_field(name: str, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"RTTM {name} must be a non-empty string without whitespace, got {value!r}")


def format_rttm(turns: Iterable[Turn]) -> str:
    """RTTM text, one `SPEAKER <uri> <channel> <start> <dur> <NA> <NA> <speaker> <NA> <NA>` line per turn.

    Times are written in seconds with 3 decimals; turns are written in the given order.
    """
    lines = []
    for t in turns:
        _check_field("uri", t.uri)
        _check_field("speaker", t.speaker)
        _check_field("channel", t.channel)
        if not (math.isfinite(t.start) and math.isfinite(t.end)) or t.end < t.start or t.start < 0:
            raise ValueError(f"turn of {t.speaker!r} in {t.uri!r} has invalid times {t.start}..{t.end}")
        lines.append(f"SPEAKER {t.uri} {t.channel} {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} "
                     f"<NA> <NA>\n")
    return "".join(lines)


def write_rttm(turns: Iterable[Turn], file: str | Path | TextIO) -> None:
    """Write turns as RTTM to a path or an open text file (see format_rttm)."""
    text = format_rttm(turns)
    if isinstance(file, (str, Path)):
        Path(file).write_text(text, encoding="utf-8")
    else:
        file.write(text)


def parse_rttm(text: str, source: str = "<rttm>") -> list[Turn]:
    """Parse RTTM text into turns, in file order. Only SPEAKER lines are kept (SPKR-INFO etc. are skipped);
    blank lines and ';;' / '#' comments are ignored. Malformed SPEAKER lines raise ValueError with the line number.
    """
    turns = []
    for lineno, line in enumerate(io.StringIO(text), start=1):
        fields = line.split()
        if not fields or fields[0].startswith((";;", "#")) or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ValueError(f"{source}:{lineno}: a SPEAKER line needs at least 8 fields, got {len(fields)}")
        try:
            start, dur = float(fields[3]), float(fields[4])
        except ValueError:
            raise ValueError(f"{source}:{lineno}: cannot read start/duration {fields[3]!r} {fields[4]!r}") from None
        if not (math.isfinite(start) and math.isfinite(dur)) or dur < 0 or start < 0:
            raise ValueError(f"{source}:{lineno}: invalid start {start} or duration {dur}")
        turns.append(Turn(start, start + dur, fields[7], uri=fields[1], channel=fields[2]))
    return turns


def read_rttm(path: str | Path) -> list[Turn]:
    """Read an RTTM file (see parse_rttm)."""
    path = Path(path)
    return parse_rttm(path.read_text(encoding="utf-8"), source=str(path))


def group_by_uri(turns: Iterable[Turn]) -> dict[str, list[Turn]]:
    """Turns grouped by recording, each group sorted by (start, end, speaker)."""
    out: dict[str, list[Turn]] = {}
    for t in turns:
        out.setdefault(t.uri, []).append(t)
    return {uri: sorted(group) for uri, group in out.items()}


# ---------------------------------------------------------------------------------------------------------------
# optimal assignment

def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment for a (R, C) cost matrix (Hungarian method with potentials, O(n^3)).

    Returns min(R, C) pairs (row, col), sorted by row.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    transposed = cost.shape[0] > cost.shape[1]
    a = cost.T if transposed else cost  # n rows <= m columns
    n, m = a.shape
    if n == 0:
        return []
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j] = row (1-based) assigned to column j; column 0 is virtual
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            cur = a[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = [(int(match[j]) - 1, j - 1) for j in range(1, m + 1) if match[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)


# ---------------------------------------------------------------------------------------------------------------
# diarization error rate

_Seg = tuple[float, float, str]


def _as_segments(turns: Iterable[Turn | Sequence]) -> list[_Seg]:
    out = []
    for t in turns:
        start, end, spk = (t.start, t.end, t.speaker) if isinstance(t, Turn) else (float(t[0]), float(t[1]), str(t[2]))
        if end < start:
            raise ValueError(f"segment of {spk!r} ends before it starts: {start}..{end}")
        if end > start:
            out.append((start, end, spk))
    return out


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged if e > s]


def _elementary(ref: list[_Seg], hyp: list[_Seg], excluded: list[tuple[float, float]],
                uem: list[tuple[float, float]] | None, skip_overlap: bool):
    """Yield (duration, ref speakers, hyp speakers) on every scored interval between consecutive boundaries."""
    points = {p for s, e, _ in ref + hyp for p in (s, e)}
    points |= {p for s, e in excluded for p in (s, e)}
    if uem is not None:
        points |= {p for s, e in uem for p in (s, e)}
    bounds = np.array(sorted(points))
    if bounds.size < 2:
        return
    starts, ends = bounds[:-1], bounds[1:]
    mids = 0.5 * (starts + ends)
    scored = np.ones(mids.size, dtype=bool)
    for s, e in excluded:
        scored &= ~((mids > s) & (mids < e))
    if uem is not None:
        inside = np.zeros(mids.size, dtype=bool)
        for s, e in uem:
            inside |= (mids > s) & (mids < e)
        scored &= inside

    def active(segs: list[_Seg]) -> list[set[str]]:
        sets: list[set[str]] = [set() for _ in range(mids.size)]
        for s, e, spk in segs:
            lo, hi = np.searchsorted(starts, s, side="left"), np.searchsorted(ends, e, side="right")
            for k in range(lo, hi):
                sets[k].add(spk)
        return sets

    r_sets, h_sets = active(ref), active(hyp)
    for k in np.flatnonzero(scored):
        if skip_overlap and len(r_sets[k]) > 1:
            continue
        yield float(ends[k] - starts[k]), r_sets[k], h_sets[k]


def _der_one(ref: list[_Seg], hyp: list[_Seg], collar: float, skip_overlap: bool,
             uem: list[tuple[float, float]] | None) -> tuple[dict[str, float], dict[str, str]]:
    excluded = _union((b - collar, b + collar) for s, e, _ in ref for b in (s, e)) if collar > 0 else []
    pieces = list(_elementary(ref, hyp, excluded, uem, skip_overlap))
    r_names = sorted({spk for _, _, spk in ref})
    h_names = sorted({spk for _, _, spk in hyp})
    r_idx = {n: i for i, n in enumerate(r_names)}
    h_idx = {n: i for i, n in enumerate(h_names)}
    overlap = np.zeros((len(r_names), len(h_names)))
    missed = false_alarm = total = both = 0.0
    for d, rs, hs in pieces:
        total += d * len(rs)
        missed += d * max(0, len(rs) - len(hs))
        false_alarm += d * max(0, len(hs) - len(rs))
        both += d * min(len(rs), len(hs))
        for r in rs:
            for h in hs:
                overlap[r_idx[r], h_idx[h]] += d
    pairs = linear_assignment(-overlap) if overlap.size else []
    correct = float(sum(overlap[r, h] for r, h in pairs))
    mapping = {h_names[h]: r_names[r] for r, h in pairs}
    return {"missed": missed, "false_alarm": false_alarm, "confusion": max(0.0, both - correct),
            "total": total}, mapping


def _split(turns: Iterable[Turn | Sequence]) -> dict[str, list[_Seg]]:
    by_uri: dict[str, list] = {}
    for t in turns:
        by_uri.setdefault(t.uri if isinstance(t, Turn) else "", []).append(t)
    return {uri: _as_segments(ts) for uri, ts in by_uri.items()}


def diarization_error_rate(reference: Iterable[Turn | Sequence], hypothesis: Iterable[Turn | Sequence],
                           collar: float = 0.0, skip_overlap: bool = False,
                           uem: Sequence[tuple[float, float]] | None = None) -> dict[str, float]:
    """Diarization error rate with the optimal one-to-one speaker mapping.

    reference, hypothesis: Turns (grouped by `uri`; each recording gets its own mapping and the components are
    summed) or (start_s, end_s, speaker) tuples (one recording). collar: seconds removed on each side of every
    reference turn boundary (md-eval's `-c`; pyannote.metrics' `collar` is the full width, i.e. 2 * this value).
    skip_overlap: do not score regions where two or more reference speakers talk. uem: optional scored
    (start, end) regions in seconds (applied to every recording); by default the whole timeline is scored.
    Returns seconds of `missed`, `false_alarm`, `confusion`, the scored reference speech `total` (overlap counted
    once per speaker) and `der` = (missed + false_alarm + confusion) / total (0 when both are 0, inf when only
    the total is 0).
    """
    if collar < 0:
        raise ValueError(f"collar must be >= 0 seconds, got {collar}")
    ref, hyp = _split(reference), _split(hypothesis)
    uem_list = _union(uem) if uem is not None else None
    result = {"missed": 0.0, "false_alarm": 0.0, "confusion": 0.0, "total": 0.0}
    for uri in sorted(set(ref) | set(hyp)):
        parts, _ = _der_one(ref.get(uri, []), hyp.get(uri, []), collar, skip_overlap, uem_list)
        for k in result:
            result[k] += parts[k]
    errors = result["missed"] + result["false_alarm"] + result["confusion"]
    if result["total"] > 0:
        result["der"] = errors / result["total"]
    else:
        result["der"] = 0.0 if errors == 0 else math.inf
    return result


def optimal_mapping(reference: Iterable[Turn | Sequence], hypothesis: Iterable[Turn | Sequence],
                    collar: float = 0.0, skip_overlap: bool = False) -> dict[str, str]:
    """The hypothesis -> reference speaker mapping that maximises the matched scored time (one recording)."""
    ref, hyp = _as_segments(reference), _as_segments(hypothesis)
    return _der_one(ref, hyp, collar, skip_overlap, None)[1]


def merge_turns(turns: Iterable[Turn], gap: float = 0.0) -> list[Turn]:
    """Merge turns of the same speaker and recording that overlap or are separated by at most `gap` seconds."""
    out = []
    key = lambda t: (t.uri, t.channel, t.speaker)  # noqa: E731
    for (uri, channel, spk), group in groupby(sorted(turns, key=lambda t: (key(t), t.start)), key=key):
        cur: list[float] | None = None
        for t in group:
            if cur is not None and t.start <= cur[1] + gap:
                cur[1] = max(cur[1], t.end)
            else:
                if cur is not None:
                    out.append(Turn(cur[0], cur[1], spk, uri, channel))
                cur = [t.start, t.end]
        if cur is not None:
            out.append(Turn(cur[0], cur[1], spk, uri, channel))
    return sorted(out)
