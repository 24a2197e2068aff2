"""Frame timing for the WavLM conv feature encoder: samples <-> frames <-> seconds, and sample -> frame masks.

Convention: frame i covers samples [i*stride, i*stride + receptive_field) (320 and 400 by default, i.e. 20 ms
hop and 25 ms window at 16 kHz) and its time stamp is its start, i*stride / sampling_rate seconds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_KERNELS: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
DEFAULT_STRIDES: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def frame_stride(strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Samples between consecutive frames (320 by default)."""
    return math.prod(strides)


def receptive_field(kernels: Sequence[int] = DEFAULT_KERNELS, strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Samples seen by one frame (400 by default)."""
    if len(kernels) != len(strides):
        raise ValueError(f"kernels and strides need one entry per conv layer, got {len(kernels)} and {len(strides)}")
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * jump
        jump *= s
    return field


def num_frames(n_samples: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
               strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Frames the conv stack outputs for `n_samples` input samples (0 when shorter than the receptive field).

    Applies each layer's floor((n - kernel) / stride) + 1 in turn, clamped at 0; with the defaults this equals
    floor((N - 400) / 320) + 1 for N >= 400. Accepts an int (returns int), a numpy array or a torch tensor
    (returns int64 of the same kind and shape).
    """
    if len(kernels) != len(strides):
        raise ValueError(f"kernels and strides need one entry per conv layer, got {len(kernels)} and {len(strides)}")
    if _is_torch(n_samples):
        import torch

        n = n_samples.to(torch.int64)
        for k, s in zip(kernels, strides):
            n = torch.clamp(torch.div(n - k, s, rounding_mode="floor") + 1, min=0)
        return n
    if isinstance(n_samples, (int, np.integer)):
        n = int(n_samples)
        for k, s in zip(kernels, strides):
            n = max((n - k) // s + 1, 0)
        return n
    n = np.asarray(n_samples, dtype=np.int64)
    for k, s in zip(kernels, strides):
        n = np.maximum((n - k) // s + 1, 0)
    return n


def frame_lengths(sample_mask: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
                  strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Valid frames per utterance from a (B, S) sample mask (1/True = real sample): (B,) int64.

    The mask is assumed right-padded (real samples first), as the feature extractor produces by default.
    """
    lengths = sample_mask.sum(-1) if _is_torch(sample_mask) else np.asarray(sample_mask).sum(-1)
    return num_frames(lengths, kernels, strides)


def frame_mask(sample_mask: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
               strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Frame-level mask (B, T) bool, True for real frames, from a right-padded (B, S) sample mask.

    T = num_frames(S). Same as transformers' `_get_feature_vector_attention_mask`, except that an utterance
    with no complete frame gets an all-False row (transformers marks the whole row real).
    """
    lengths = frame_lengths(sample_mask, kernels, strides)
    total = num_frames(int(sample_mask.shape[-1]), kernels, strides)
    if _is_torch(sample_mask):
        import torch

        return torch.arange(total, device=sample_mask.device)[None, :] < lengths[:, None]
    return np.arange(total)[None, :] < np.asarray(lengths)[:, None]


def frame_to_seconds(frame: Any, sampling_rate: int = 16000, strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Time stamp in seconds of frame index `frame` (start of its receptive field): frame * 320 / sr.

    Works on ints, numpy arrays and torch tensors (float result); use on CTC offsets from `decode`.
    """
    scale = frame_stride(strides) / sampling_rate
    if _is_torch(frame):
        return frame.to(dtype=__import__("torch").float64) * scale
    if isinstance(frame, (int, np.integer)):
        return int(frame) * scale
    return np.asarray(frame, dtype=np.float64) * scale


def seconds_to_frame(seconds: Any, sampling_rate: int = 16000, strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Index of the last frame whose time stamp is at or before `seconds` (floor(t * sr / 320), at least 0).

    Inverse of `frame_to_seconds` on frame stamps; ints, numpy arrays and torch tensors.
    """
    # A tiny epsilon so that frame_to_seconds(i) maps back to i despite float rounding (e.g. 3 * 0.02).
    scale = sampling_rate / frame_stride(strides)
    if _is_torch(seconds):
        import torch

        return torch.clamp(torch.floor(seconds.to(torch.float64) * scale + 1e-9), min=0).to(torch.int64)
    if isinstance(seconds, (int, float, np.integer, np.floating)):
        return max(int(math.floor(float(seconds) * scale + 1e-9)), 0)
    return np.maximum(np.floor(np.asarray(seconds, dtype=np.float64) * scale + 1e-9), 0).astype(np.int64)


def seconds_to_samples(seconds: float, sampling_rate: int = 16000) -> int:
    """Sample index at `seconds` (rounded to the nearest sample)."""
    return int(round(seconds * sampling_rate))
