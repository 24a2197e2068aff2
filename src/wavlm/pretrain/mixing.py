"""Utterance mixing, WavLM's denoising pre-training (Chen et al. 2021, section 3.2; UniSpeech's
`mixing_collated_audios`): in the collate step, with probability p an utterance gets a segment of another utterance
of the batch (or of a noise recording) added at a random place. The segment covers at most half of the primary, and
its level is drawn as an energy ratio (primary over added, dB) uniformly from [-5, 5] for speech and [-5, 20] for
noise. The targets stay those of the primary utterance: only the waveform changes.

Deliberate differences from the reference code: an utterance is never mixed with itself; the secondary is taken
from the batch before any mixing; the energy ratio is between the primary's power over its real samples and the
added segment's power over the segment (the reference uses whole padded rows), so the drawn ratio is the one in
the audio; a silent primary or segment is left alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class MixingConfig:
    """prob: chance that an utterance is mixed (the WavLM paper: 0.2); noise_prob: chance that a mixed utterance
    gets noise instead of speech (when noise recordings are given); ratio ranges in dB; max_fraction: the longest
    segment as a fraction of the primary's length."""
    prob: float = 0.2
    noise_prob: float = 0.0
    speech_ratio_db: tuple[float, float] = (-5.0, 5.0)
    noise_ratio_db: tuple[float, float] = (-5.0, 20.0)
    max_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("prob", "noise_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"mixing {name} must be in [0, 1], got {value}")
        for name in ("speech_ratio_db", "noise_ratio_db"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"mixing {name} must be (low, high) dB with low <= high, got {(lo, hi)}")
        if not 0.0 < self.max_fraction <= 1.0:
            raise ValueError(f"mixing max_fraction must be in (0, 1], got {self.max_fraction}")


@dataclass(frozen=True)
class Mix:
    """What was added to one utterance: `length` samples of `source` ("speech": batch row `partner`; "noise":
    noise recording `partner`) from `source_start`, added at `start`, at energy ratio `ratio_db` (gain `scale`)."""
    kind: str
    partner: int
    start: int
    source_start: int
    length: int
    ratio_db: float
    scale: float


def mix_batch(wavs: torch.Tensor, lengths: Sequence[int] | torch.Tensor, config: MixingConfig,
              rng: np.random.Generator, noises: Sequence[np.ndarray | torch.Tensor] = ()
              ) -> tuple[torch.Tensor, list[Mix | None]]:
    """Mix a collated batch. wavs (B, S) float, right-padded; lengths (B,) real samples per row; noises: 1-D
    recordings at the same sampling rate. Returns the mixed batch (a new tensor; padding stays zero) and, per row,
    the Mix applied or None. All randomness comes from `rng`, so a seeded generator reproduces the batch."""
    if wavs.dim() != 2:
        raise ValueError(f"wavs must be a (batch, samples) tensor, got shape {tuple(wavs.shape)}")
    lengths = [int(n) for n in (lengths.tolist() if torch.is_tensor(lengths) else lengths)]
    if len(lengths) != wavs.shape[0] or any(n < 0 or n > wavs.shape[1] for n in lengths):
        raise ValueError(f"lengths must give 0..{wavs.shape[1]} real samples for each of the {wavs.shape[0]} rows, "
                         f"got {lengths}")
    if config.noise_prob > 0 and not noises:
        raise ValueError("mixing noise_prob > 0 needs noise recordings")
    original = wavs.detach()
    mixed = wavs.clone()
    applied: list[Mix | None] = []
    for i, length in enumerate(lengths):
        if rng.random() >= config.prob:
            applied.append(None)
            continue
        use_noise = bool(noises) and rng.random() < config.noise_prob
        if use_noise:
            partner = int(rng.integers(len(noises)))
            source = torch.as_tensor(noises[partner], dtype=wavs.dtype).flatten()
            low, high = config.noise_ratio_db
        else:
            partners = [j for j, n in enumerate(lengths) if j != i and n > 0]
            if not partners:
                applied.append(None)
                continue
            partner = partners[int(rng.integers(len(partners)))]
            source = original[partner, :lengths[partner]]
            low, high = config.speech_ratio_db
        longest = min(int(length * config.max_fraction), source.numel())
        if longest < 1:
            applied.append(None)
            continue
        seg_len = int(rng.integers(1, longest + 1))
        source_start = int(rng.integers(0, source.numel() - seg_len + 1))
        start = int(rng.integers(0, length - seg_len + 1))
        ratio_db = float(rng.uniform(low, high))
        segment = source[source_start:source_start + seg_len].double()
        primary_power = float(original[i, :length].double().pow(2).mean())
        segment_power = float(segment.pow(2).mean())
        if primary_power == 0.0 or segment_power == 0.0:
            applied.append(None)
            continue
        scale = math.sqrt(primary_power / (segment_power * 10.0 ** (ratio_db / 10.0)))
        mixed[i, start:start + seg_len] += (segment * scale).to(wavs.dtype)
        applied.append(Mix("noise" if use_noise else "speech", partner, start, source_start, seg_len, ratio_db,
                           scale))
    return mixed, applied


def energy_ratio_db(primary: torch.Tensor, added: torch.Tensor) -> float:
    """10 log10 of the primary's mean power over the added signal's mean power (both 1-D, their own samples)."""
    return 10.0 * math.log10(float(primary.double().pow(2).mean()) / float(added.double().pow(2).mean()))
