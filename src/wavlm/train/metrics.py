"""Validation metrics computed here: Levenshtein edit distance, word and character error rates."""
from __future__ import annotations

from typing import Sequence


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Substitutions + deletions + insertions turning `ref` into `hyp` (any sequences of comparable items)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def error_rate(refs: Sequence[str], hyps: Sequence[str], unit: str = "word") -> float:
    """Corpus WER (unit="word": whitespace-separated words) or CER (unit="char": characters, spaces included):
    total edits over total reference units. An empty reference set gives 0 if every hypothesis is empty, else 1."""
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses")
    if unit not in ("word", "char"):
        raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    split = str.split if unit == "word" else (lambda s: list(" ".join(s.split())))
    edits = total = 0
    for r, h in zip(refs, hyps):
        r, h = split(r), split(h)
        edits += edit_distance(r, h)
        total += len(r)
    if total == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / total


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return error_rate(refs, hyps, "word")


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return error_rate(refs, hyps, "char")
