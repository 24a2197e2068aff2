"""Frame arithmetic of the WavLM conv feature encoder, the one place it is written: output lengths of a stack of
unpadded convolutions, receptive field and hop, samples <-> frames <-> seconds, and sample -> frame masks. The
model, the config, the kernels and the command line all use these.

Convention: frame i covers samples [i*stride, i*stride + receptive_field) (320 and 400 by default, i.e. 20 ms
hop and 25 ms window at 16 kHz) and its time stamp is its start, i*stride / sampling_rate seconds.
Neither torch nor numpy is imported here until a function is given one of their arrays.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DEFAULT_KERNELS: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
DEFAULT_STRIDES: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _check(kernels: Sequence[int], strides: Sequence[int]) -> None:
    if len(kernels) != len(strides):
        raise ValueError(f"kernels and strides need one entry per conv layer, got {len(kernels)} and {len(strides)}")


def frame_stride(strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Samples between consecutive frames (320 by default)."""
    return math.prod(strides)


def receptive_field(kernels: Sequence[int] = DEFAULT_KERNELS, strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """Samples seen by one frame (400 by default)."""
    _check(kernels, strides)
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * jump
        jump *= s
    return field


def min_samples(num_frames: int, kernels: Sequence[int] = DEFAULT_KERNELS,
                strides: Sequence[int] = DEFAULT_STRIDES) -> int:
    """The fewest samples that give `num_frames` frames: the receptive field, and one stride per further frame."""
    return (num_frames - 1) * frame_stride(strides) + receptive_field(kernels, strides)


def conv_output_lengths(lengths: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
                        strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Output length of a stack of unpadded convolutions: floor((n - kernel) / stride) + 1 per layer, as
    transformers computes it (not clamped: below the receptive field the result is 0 or negative).

    `lengths`: a Python int (or a symbolic size while tracing), a numpy integer array or a torch tensor; the
    result is of the same kind."""
    _check(kernels, strides)
    for k, s in zip(kernels, strides):
        lengths = (lengths - k) // s + 1  # floor division for ints, numpy and torch integers alike
    return lengths


def num_frames(n_samples: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
               strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Frames the conv stack outputs for `n_samples` input samples (0 when shorter than the receptive field).

    `conv_output_lengths` clamped at 0; with the defaults this equals floor((N - 400) / 320) + 1 for N >= 400.
    Accepts an int (returns int), a numpy array or a list (numpy int64) or a torch tensor (int64 of its shape).
    """
    if _is_torch(n_samples):
        return conv_output_lengths(n_samples.long(), kernels, strides).clamp(min=0)
    if isinstance(n_samples, (list, tuple)) or hasattr(n_samples, "shape") and n_samples.shape != ():
        import numpy as np

        return np.maximum(conv_output_lengths(np.asarray(n_samples, dtype=np.int64), kernels, strides), 0)
    return max(int(conv_output_lengths(int(n_samples), kernels, strides)), 0)


def frame_lengths(sample_mask: Any, kernels: Sequence[int] = DEFAULT_KERNELS,
                  strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Valid frames per utterance from a (B, S) sample mask (1/True = real sample): (B,) int64.

    The mask is assumed right-padded (real samples first), as the feature extractor produces by default.
    """
    if _is_torch(sample_mask):
        return num_frames(sample_mask.sum(-1), kernels, strides)
    import numpy as np

    return num_frames(np.asarray(sample_mask).sum(-1), kernels, strides)


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
    import numpy as np

    return np.arange(total)[None, :] < np.asarray(lengths)[:, None]


def frame_to_seconds(frame: Any, sampling_rate: int = 16000, strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Time stamp in seconds of frame index `frame` (start of its receptive field): frame * 320 / sr.

    Works on ints, numpy arrays and torch tensors (float result); use on CTC offsets from `decode`.
    """
    scale = frame_stride(strides) / sampling_rate
    if _is_torch(frame):
        return frame.double() * scale
    if isinstance(frame, int) or type(frame).__module__ == "numpy" and getattr(frame, "shape", None) == ():
        return int(frame) * scale
    import numpy as np

    return np.asarray(frame, dtype=np.float64) * scale


def seconds_to_frame(seconds: Any, sampling_rate: int = 16000, strides: Sequence[int] = DEFAULT_STRIDES) -> Any:
    """Index of the last frame whose time stamp is at or before `seconds` (floor(t * sr / 320), at least 0).

    Inverse of `frame_to_seconds` on frame stamps; ints, numpy arrays and torch tensors.
    """
    # A tiny epsilon so that frame_to_seconds(i) maps back to i despite float rounding (e.g. 3 * 0.02).
    scale = sampling_rate / frame_stride(strides)
    if _is_torch(seconds):
        return (seconds.double() * scale + 1e-9).floor().clamp(min=0).long()
    if isinstance(seconds, (int, float)) or type(seconds).__module__ == "numpy" and \
            getattr(seconds, "shape", None) == ():
        return max(int(math.floor(float(seconds) * scale + 1e-9)), 0)
    import numpy as np

    return np.maximum(np.floor(np.asarray(seconds, dtype=np.float64) * scale + 1e-9), 0).astype(np.int64)


def seconds_to_samples(seconds: float, sampling_rate: int = 16000) -> int:
    """Sample index at `seconds` (rounded to the nearest sample)."""
    return int(round(seconds * sampling_rate))
