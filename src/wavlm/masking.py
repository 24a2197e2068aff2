"""Span masks for SpecAugment (Park et al. 2019, as used by wav2vec 2.0 / HuBERT / WavLM fine-tuning).

`compute_mask_indices` draws from numpy's global RNG in the same order as transformers, so a seeded run masks the
same frames in both libraries; given an `rng` (numpy Generator) it draws from that instead, which pre-training uses
so that a step's masks depend only on its seed (resume and multi-process runs mask the same frames).
"""
from __future__ import annotations

import numpy as np
import torch


def compute_mask_indices(shape: tuple[int, int], mask_prob: float, mask_length: int,
                         attention_mask: torch.Tensor | np.ndarray | None = None,
                         min_masks: int = 0, *, axis: str = "frames",
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Random spans to mask: a bool array (B, T), True = masked.

    About `mask_prob * length / mask_length` spans of `mask_length` frames start in each row (at least `min_masks`),
    inside the row's valid length (`attention_mask.sum(-1)` frames when given). Spans may overlap. `axis`
    ("frames" or "channels", wavlm only) names what is masked in error messages. `rng` (wavlm only): a numpy
    Generator to draw from instead of numpy's global RNG.
    """
    batch, seq_len = shape
    field_ = "mask_time_length" if axis == "frames" else "mask_feature_length"
    if mask_length < 1:
        raise ValueError(f"mask_length ({field_}) must be at least 1, got {mask_length}")
    if mask_length > seq_len:
        hint = ("lower mask_time_length or use longer audio" if axis == "frames" else
                "lower mask_feature_length (it masks spans of channels, at most hidden_size)")
        raise ValueError(f"mask_length ({field_}={mask_length}) must not exceed the number of {axis} "
                         f"({seq_len}); {hint}")

    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    rand = np.random.rand if rng is None else rng.random
    choice = np.random.choice if rng is None else rng.choice
    epsilon = float(rand(1)[0])  # one draw per call: rounds the expected span count up or down

    def num_spans(length: int) -> int:
        n = max(int(mask_prob * length / mask_length + epsilon), min_masks)
        n = min(n, seq_len // mask_length)
        return max(min(n, length - (mask_length - 1)), 0)

    if attention_mask is not None:
        lengths = np.asarray(attention_mask.detach().cpu() if torch.is_tensor(attention_mask) else attention_mask)
        lengths = lengths.sum(-1).astype(np.int64).tolist()
    else:
        lengths = [seq_len] * batch

    mask = np.zeros((batch, seq_len), dtype=bool)
    max_spans = num_spans(seq_len)
    if max_spans == 0:
        return mask

    starts = np.empty((batch, max_spans), dtype=np.int64)
    for row, length in enumerate(lengths):
        n = num_spans(length)
        chosen = choice(np.arange(length - (mask_length - 1)), n, replace=False)
        # rows with fewer spans repeat their first start (or the last frame) so all rows have max_spans entries
        filler = chosen[0] if len(chosen) else seq_len - 1
        starts[row, :n] = chosen
        starts[row, n:] = filler

    frames = (starts[:, :, None] + np.arange(mask_length)[None, None, :]).reshape(batch, -1)
    np.minimum(frames, seq_len - 1, out=frames)
    np.put_along_axis(mask, frames, True, axis=-1)
    return mask
