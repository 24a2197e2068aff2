"""Training losses the heads do not have: permutation-invariant BCE for speaker activity (diarization, as s3prl's
`pit_loss`), and a summed AM-softmax (Wang et al. 2018) whose sum the loop normalises over the global batch."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def pit_bce(logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutation-invariant binary cross-entropy, summed over utterances.

    logits (B, T, S) speaker-activity logits; labels (B, T, S) 0/1 activity of the reference speakers (columns in any
    order); lengths (B,) valid frames. For each utterance the loss is the smallest, over the S! orders of the
    reference columns, of the BCE summed over its valid frames and all S outputs. Returns (loss sum as a float32
    scalar, best permutation (B, S) int64: output s is matched to reference column perm[b, s]).
    """
    if logits.shape != labels.shape or logits.dim() != 3:
        raise ValueError(f"logits and labels must both be (batch, frames, speakers), got {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    batch, frames, speakers = logits.shape
    if speakers > 8:
        raise ValueError(f"PIT over {speakers} speakers would try {speakers}! permutations; at most 8 are allowed")
    valid = (torch.arange(frames, device=logits.device)[None, :] < lengths.to(logits.device)[:, None]).float()
    x, y = logits.float(), labels.float()
    # cost[b, i, j]: BCE of output i against reference column j, summed over valid frames
    bce = F.binary_cross_entropy_with_logits(x[:, :, :, None].expand(-1, -1, -1, speakers),
                                             y[:, :, None, :].expand(-1, -1, speakers, -1), reduction="none")
    cost = (bce * valid[:, :, None, None]).sum(dim=1)  # (B, S, S)
    perms = torch.tensor(list(itertools.permutations(range(speakers))), device=logits.device)  # (P, S)
    rows = torch.arange(speakers, device=logits.device)
    totals = cost[:, rows[None, :], perms].sum(dim=-1)  # (B, P)
    best, index = totals.min(dim=1)
    return best.sum(), perms[index]


def am_softmax(embeddings: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, scale: float = 30.0,
               margin: float = 0.4) -> torch.Tensor:
    """Additive-margin softmax cross-entropy summed over the batch: embeddings (B, D), weight (D, classes) as
    WavLMForXVector.objective.weight, labels (B,) class ids. The mean of this equals the head's own loss."""
    cosine = F.normalize(embeddings.float(), dim=1) @ F.normalize(weight.float(), dim=0)
    target = F.one_hot(labels, weight.shape[1]).bool()
    logits = scale * torch.where(target, cosine - margin, cosine)
    return F.cross_entropy(logits, labels, reduction="sum")
