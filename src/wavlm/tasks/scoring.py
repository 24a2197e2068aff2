"""Speaker-verification scoring: cosine scores, equal error rate, minimum detection cost, trial lists.

EER and minDCF follow the NIST SRE / VoxCeleb definitions; a trial is accepted when its score is >= the threshold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from wavlm.tasks.arrays import as_float64

_TARGET = {"1": 1, "target": 1, "tgt": 1, "true": 1}
_NONTARGET = {"0": 0, "nontarget": 0, "non-target": 0, "nontgt": 0, "imposter": 0, "impostor": 0, "false": 0}


def cosine_scores(a: Any, b: Any, pairwise: bool = False, eps: float = 1e-12) -> np.ndarray:
    """Cosine similarity between embeddings.

    a, b: numpy arrays or torch tensors. With pairwise=False they have the same shape (N, D) (or (D,)) and the
    result is the row-wise similarity, shape (N,) (or a 0-d array). With pairwise=True, a is (N, D), b is (M, D)
    and the result is the (N, M) matrix. float64, in [-1, 1]; a zero vector scores 0 against everything.
    """
    a, b = as_float64(a), as_float64(b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2):
        raise ValueError(f"embeddings must be (D,) or (N, D), got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"embedding sizes differ: {a.shape[-1]} and {b.shape[-1]}")
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), eps)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), eps)
    if pairwise:
        return np.atleast_2d(a) @ np.atleast_2d(b).T
    if a.shape != b.shape:
        raise ValueError(f"row-wise cosine needs equal shapes, got {a.shape} and {b.shape}; use pairwise=True")
    return np.clip((a * b).sum(-1), -1.0, 1.0)


def _error_curves(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, P_fa, P_miss) at every distinct score and at +inf, thresholds ascending.

    At threshold t a trial is accepted when score >= t: P_fa falls from 1 to 0, P_miss rises from 0 to 1.
    """
    s, y = as_float64(scores).ravel(), as_float64(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.size} and {y.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 1 (target) or 0 (non-target)")
    tgt, non = np.sort(s[y == 1]), np.sort(s[y == 0])
    if tgt.size == 0 or non.size == 0:
        raise ValueError(f"need both target and non-target trials, got {tgt.size} targets and {non.size} non-targets")
    thresholds = np.append(np.unique(s), np.inf)
    p_miss = np.searchsorted(tgt, thresholds, side="left") / tgt.size  # targets with score < t
    p_fa = 1.0 - np.searchsorted(non, thresholds, side="left") / non.size  # non-targets with score >= t
    return thresholds, p_fa, p_miss


def compute_eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate from the exact ROC, returns (eer, threshold); eer is a fraction in [0, 1].

    scores: (N,) float, higher means "same speaker"; labels: (N,) with 1 = target, 0 = non-target.
    The ROC points are the (P_fa, P_miss) pairs at every distinct score (accept when score >= t) and at +inf.
    Walking them by increasing threshold, P_miss - P_fa goes from -1 to +1; the EER is where the straight line
    between the last point with P_miss < P_fa and the first with P_miss >= P_fa crosses P_fa = P_miss. The
    threshold is interpolated between those two points' thresholds with the same fraction (when the second
    one is +inf, the first one's threshold is returned).
    """
    thr, p_fa, p_miss = _error_curves(scores, labels)
    d = p_miss - p_fa
    i = int(np.argmax(d >= 0))  # d[-1] == 1, so a crossing exists
    if d[i] == 0 or i == 0:
        return float(p_fa[i]), float(thr[i])
    frac = -d[i - 1] / (d[i] - d[i - 1])
    eer = p_fa[i - 1] + frac * (p_fa[i] - p_fa[i - 1])
    threshold = thr[i - 1] if math.isinf(thr[i]) else thr[i - 1] + frac * (thr[i] - thr[i - 1])
    return float(eer), float(threshold)


def compute_min_dcf(scores: Any, labels: Any, p_target: float = 0.01, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> tuple[float, float]:
    """Normalised minimum detection cost, returns (min_dcf, threshold).

    DCF(t) = c_miss * P_miss(t) * p_target + c_fa * P_fa(t) * (1 - p_target), divided by the cost of the best
    trivial system, min(c_miss * p_target, c_fa * (1 - p_target)); minimised over the thresholds at every
    distinct score and +inf (accept when score >= t). VoxCeleb uses p_target=0.05 or 0.01, c_miss = c_fa = 1.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
    thr, p_fa, p_miss = _error_curves(scores, labels)
    dcf = (c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa) / min(c_miss * p_target,
                                                                                c_fa * (1.0 - p_target))
    i = int(np.argmin(dcf))
    return float(dcf[i]), float(thr[i])


@dataclass(frozen=True)
class Trial:
    """One verification trial: enrollment and test utterance ids (or paths), label 1/0 or None when unlabelled."""
    enroll: str
    test: str
    label: int | None = None


def _parse_label(token: str) -> int | None:
    t = token.lower()
    return _TARGET.get(t, _NONTARGET.get(t))


def parse_trials(lines: Iterable[str] | str, source: str = "<trials>") -> list[Trial]:
    """Parse a trial list: one `enroll test [label]` per line; label is 1/0 or target/nontarget.

    The VoxCeleb order `label enroll test` is accepted too (a first field that is a label and a third that is not).
    Blank lines and lines starting with '#' are skipped. Either every trial has a label or none has.
    Raises ValueError naming the source and line number of a malformed line.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    trials: list[Trial] = []
    labelled: bool | None = None
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 2:
            trial = Trial(fields[0], fields[1])
        elif len(fields) == 3:
            last, first = _parse_label(fields[2]), _parse_label(fields[0])
            if last is not None:
                trial = Trial(fields[0], fields[1], last)
            elif first is not None:
                trial = Trial(fields[1], fields[2], first)
            else:
                raise ValueError(f"{source}:{lineno}: cannot read a label (1/0/target/nontarget) in {line.strip()!r}")
        else:
            raise ValueError(f"{source}:{lineno}: expected 'enroll test [label]', got {len(fields)} fields "
                             f"in {line.strip()!r}")
        has_label = trial.label is not None
        if labelled is None:
            labelled = has_label
        elif labelled != has_label:
            raise ValueError(f"{source}:{lineno}: trial {'has' if has_label else 'lacks'} a label but earlier "
                             f"trials {'do not' if has_label else 'do'}")
        trials.append(trial)
    return trials


def read_trials(path: str | Path) -> list[Trial]:
    """Read a trial list file (see parse_trials)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        return parse_trials(f, source=str(path))
