"""Helpers for the front-end parity tests: outputs of either library as plain values, and side-by-side comparison
that knows the one documented way ragged rows differ."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest


def plain(x: Any) -> Any:
    """BatchFeature/BatchEncoding/ModelOutput/arrays/tensors -> nested Python values; float arrays rounded to 1e-5
    and tagged with their dtype, numpy object arrays (transformers' ragged rows) -> lists of rows."""
    if hasattr(x, "keys") and hasattr(x, "__getitem__") and not isinstance(x, dict):
        return {k: plain(x[k]) for k in x.keys()}
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "numpy") and hasattr(x, "detach"):
        x = x.numpy()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return [plain(v) for v in x]
        return ("array", str(x.dtype), np.round(x.astype(np.float64), 5).tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def outcome(fn: Callable[[], Any]) -> Any:
    """plain(fn()), or the name of the exception type when it raises ValueError, TypeError or KeyError."""
    try:
        return plain(fn())
    except (ValueError, TypeError, KeyError) as e:
        return type(e).__name__


def compare(theirs_fn: Callable[[], Any], ours_fn: Callable[[], Any], context: Any) -> None:
    """Equal outcomes; where transformers returns a numpy object array for ragged rows and ours raises ValueError
    naming the field (the documented difference, pinned by strict xfails), that is accepted."""
    try:
        raw = theirs_fn()
    except (ValueError, TypeError, KeyError) as e:
        assert outcome(ours_fn) == type(e).__name__, context
        return
    ragged = any(isinstance(v, np.ndarray) and v.dtype == object for v in raw.values())
    if ragged and outcome(ours_fn) == "ValueError":
        with pytest.raises(ValueError, match="different lengths"):
            ours_fn()
        return
    assert outcome(ours_fn) == plain(raw), context
