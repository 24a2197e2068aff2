"""The one conversion the algorithms in wavlm.tasks share: scores or embeddings from numpy, lists or torch."""
from __future__ import annotations

from typing import Any

import numpy as np


def as_float64(x: Any) -> np.ndarray:
    """A float64 numpy array of `x`: a numpy array, a (nested) list, or a torch tensor on any device (read without
    importing torch here)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
