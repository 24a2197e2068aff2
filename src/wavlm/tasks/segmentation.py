"""Frame-level activity to time segments: median smoothing, hysteresis thresholds, minimum durations.

Frame i is taken to cover [frame_offset_s + i * frame_shift_s, frame_offset_s + (i + 1) * frame_shift_s); for
WavLM at 16 kHz the shift is 0.02 s (320 samples) and the offset 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from wavlm.tasks.arrays import as_float64

_EPS = 1e-9  # seconds; frame times are multiples of a float shift, so compare durations with slack


def median_filter(probs: Any, width: int) -> np.ndarray:
    """Running median over time (axis 0) of (T,) or (T, S) scores, odd `width` in frames, edges padded by
    repeating the first/last frame. Returns a float64 array of the input's shape.
    """
    x = as_float64(probs)
    if x.ndim not in (1, 2):
        raise ValueError(f"probs must be (T,) or (T, S), got shape {x.shape}")
    if width < 1 or width % 2 == 0:
        raise ValueError(f"median filter width must be a positive odd number of frames, got {width}")
    if width == 1 or x.shape[0] == 0:
        return x.copy()
    half = width // 2
    padded = np.pad(x, [(half, half)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)  # (T, [S,] width)
    return np.median(windows, axis=-1)


def hysteresis(probs: Any, onset: float, offset: float | None = None) -> np.ndarray:
    """Boolean activity (T,) or (T, S): a track switches on at a frame with score > onset and stays on until a
    frame with score < offset (offset defaults to onset, offset <= onset)."""
    x = as_float64(probs)
    offset = onset if offset is None else offset
    if offset > onset:
        raise ValueError(f"offset ({offset}) must not exceed onset ({onset})")
    squeeze = x.ndim == 1
    x = x[:, None] if squeeze else x
    if x.ndim != 2:
        raise ValueError(f"probs must be (T,) or (T, S), got shape {x.shape}")
    active = np.zeros(x.shape, dtype=bool)
    on = np.zeros(x.shape[1], dtype=bool)
    for t in range(x.shape[0]):
        on = np.where(on, x[t] >= offset, x[t] > onset)
        active[t] = on
    return active[:, 0] if squeeze else active


def activity_runs(active: Any) -> list[tuple[int, int]]:
    """Runs of True in a (T,) boolean vector as [start, end) frame index pairs."""
    a = np.asarray(active, dtype=bool).ravel()
    edges = np.diff(np.concatenate([[False], a, [False]]).astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def binarize(probs: Any, onset: float = 0.5, offset: float | None = None, min_duration_on: float = 0.0,
             min_duration_off: float = 0.0, frame_shift_s: float = 0.02,
             frame_offset_s: float = 0.0) -> list[list[tuple[float, float]]]:
    """Speaker (or speech) activity scores to segments in seconds.

    probs: (T, S) scores per frame and track (a (T,) vector is one track). Hysteresis: a track turns on at a
    frame with score > onset and stays on until a frame with score < offset (default offset = onset). Then gaps
    shorter than min_duration_off seconds inside a track are filled, and segments shorter than min_duration_on
    seconds are dropped (in that order). Returns S lists of (start_s, end_s), sorted, non-overlapping.
    """
    if frame_shift_s <= 0:
        raise ValueError(f"frame_shift_s must be positive, got {frame_shift_s}")
    if min_duration_on < 0 or min_duration_off < 0:
        raise ValueError(f"minimum durations must be >= 0, got on={min_duration_on} off={min_duration_off}")
    active = hysteresis(probs, onset, offset)
    active = active[:, None] if active.ndim == 1 else active
    tracks = []
    for s in range(active.shape[1]):
        segs = [[frame_offset_s + a * frame_shift_s, frame_offset_s + b * frame_shift_s]
                for a, b in activity_runs(active[:, s])]
        filled: list[list[float]] = []
        for seg in segs:
            if filled and seg[0] - filled[-1][1] < min_duration_off - _EPS:
                filled[-1][1] = seg[1]
            else:
                filled.append(seg)
        tracks.append([(a, b) for a, b in filled if b - a >= min_duration_on - _EPS])
    return tracks
