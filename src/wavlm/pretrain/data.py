"""Pre-training batches (HuBERT's dataset + WavLM's collater): training batches are cropped to their shortest
utterance (at most `max_samples`), at a random start on a frame boundary so that the labels shift by whole frames;
then utterances are mixed (wavlm.pretrain.mixing) while the labels stay the primary's; then span masks are drawn.
Evaluation batches are padded instead of cropped, padding frames labelled -100 (never scored).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from wavlm.pretrain.mixing import Mix, MixingConfig, mix_batch
from wavlm.pretrain.model import IGNORE
from wavlm.pretrain.targets import FrameGeometry


@dataclass
class PretrainBatch:
    input_values: torch.Tensor          # (B, S) float32
    attention_mask: torch.Tensor        # (B, S) long, 1 = real sample
    labels: torch.Tensor                # (B, T) int64, -100 = unscored
    mask_time_indices: torch.Tensor     # (B, T) bool
    mixes: list[Mix | None] = field(default_factory=list)

    @property
    def masked_frames(self) -> int:
        return int((self.mask_time_indices & (self.labels != IGNORE)).sum())


def _normalise(wavs: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """Zero mean, unit variance per row over its real samples (the feature extractor's do_normalize)."""
    out = torch.zeros_like(wavs)
    for i, n in enumerate(lengths):
        x = wavs[i, :n]
        out[i, :n] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    return out


def collate_pretrain(wavs: Sequence[np.ndarray], labels: Sequence[np.ndarray], geometry: FrameGeometry,
                     compute_mask: Callable[[list[int], int, np.random.Generator | None], torch.Tensor],
                     rng: np.random.Generator | None, *, max_samples: int = 250_000,
                     mixing: MixingConfig | None = None, noises: Sequence[np.ndarray] = (),
                     normalize: bool = False) -> PretrainBatch:
    """One batch. wavs: 1-D float32 at 16 kHz; labels[i]: one int64 label per conv frame of wavs[i]
    (geometry.frames(len(wavs[i]))). With `rng` (training): crop to the shortest, mix, draw masks from rng.
    Without: pad, no mixing, masks from compute_mask(..., None) (the caller's fixed generator)."""
    if len(wavs) != len(labels) or not wavs:
        raise ValueError(f"a batch needs as many label arrays as utterances (> 0), got {len(wavs)} and {len(labels)}")
    for i, (w, l) in enumerate(zip(wavs, labels)):
        if len(l) != geometry.frames(len(w)):
            raise ValueError(f"utterance {i}: {len(l)} labels for {geometry.frames(len(w))} frames of "
                             f"{len(w)} samples; targets must come from `wavlm pretrain targets` for this model")
    stride = geometry.stride
    if rng is not None:
        size = min(min(len(w) for w in wavs), max_samples)
        frames = geometry.frames(size)
        cut_w, cut_l = [], []
        for w, l in zip(wavs, labels):
            start = int(rng.integers(0, (len(w) - size) // stride + 1)) * stride  # on a frame boundary
            cut_w.append(w[start:start + size])
            cut_l.append(l[start // stride:start // stride + frames])
        wav = torch.from_numpy(np.stack(cut_w).astype(np.float32))
        lab = torch.from_numpy(np.stack(cut_l).astype(np.int64))
        lengths = [size] * len(wavs)
    else:
        size = max(len(w) for w in wavs)
        frames = geometry.frames(size)
        wav = torch.zeros(len(wavs), size)
        lab = torch.full((len(wavs), frames), IGNORE, dtype=torch.long)
        for i, (w, l) in enumerate(zip(wavs, labels)):
            wav[i, :len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
            lab[i, :len(l)] = torch.from_numpy(np.asarray(l, dtype=np.int64))
        lengths = [len(w) for w in wavs]
    mixes: list[Mix | None] = [None] * len(wavs)
    if mixing is not None and rng is not None and mixing.prob > 0:
        wav, mixes = mix_batch(wav, lengths, mixing, rng, noises)
    if normalize:
        wav = _normalise(wav, lengths)
    attention = (torch.arange(size)[None, :] < torch.tensor(lengths)[:, None]).long()
    frame_lengths = [geometry.frames(n) for n in lengths]
    mask = compute_mask(frame_lengths, frames, rng)
    return PretrainBatch(wav, attention, lab, mask, mixes)
