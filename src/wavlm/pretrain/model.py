"""WavLMForPreTraining: the WavLM backbone with HuBERT's masked-prediction head (Hsu et al. 2021, section 2;
WavLM section 3.1). Masked frames get the learned `masked_spec_embed`; the last hidden state goes through
`final_proj` and is compared by cosine similarity (temperature 0.1) with one embedding per k-means cluster; the loss
is the cross-entropy on masked frames (optionally on unmasked ones with a weight), plus the squared-feature penalty
of the conv encoder, whose gradient is scaled by `feature_grad_mult`.

The backbone saves as an ordinary `WavLMModel` directory (transformers loads it); the head is saved beside it
(pretraining_head.json + pretraining_head.safetensors) so that training can resume or continue.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavlm.config import WavLMConfig
from wavlm.masking import compute_mask_indices
from wavlm.model import WavLMModel

HEAD_CONFIG = "pretraining_head.json"
HEAD_WEIGHTS = "pretraining_head.safetensors"
IGNORE = -100  # label of frames that are not scored (padding, or frames without a target)


@dataclass
class PreTrainingConfig:
    """The prediction head and the loss. Defaults are the released WavLM Base(+) recipe (UniSpeech's wavlm.py and
    wavlm_criterion.py): final_dim 256, temperature 0.1, mask_prob 0.8 / mask_length 10 / at least 2 spans,
    masked-only loss, feature penalty weight 10, feature_grad_mult 0.1."""
    num_clusters: int
    final_dim: int = 256
    logit_temperature: float = 0.1
    mask_prob: float = 0.8
    mask_length: int = 10
    min_masks: int = 2
    masked_weight: float = 1.0
    unmasked_weight: float = 0.0
    feature_penalty: float = 10.0
    feature_grad_mult: float = 0.1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ValueError(f"pre-training {name} must be {what}, got {getattr(self, name)!r}")

        for name in ("num_clusters", "final_dim", "mask_length"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "a positive integer")
        need(self.num_clusters >= 2, "num_clusters", "at least 2")
        need(isinstance(self.min_masks, int) and self.min_masks >= 0, "min_masks", "an integer >= 0")
        need(self.logit_temperature > 0, "logit_temperature", "> 0")
        need(0.0 <= self.mask_prob <= 1.0, "mask_prob", "in [0, 1]")
        for name in ("masked_weight", "unmasked_weight", "feature_penalty"):
            need(getattr(self, name) >= 0, name, ">= 0")
        need(self.masked_weight > 0 or self.unmasked_weight > 0, "masked_weight", "> 0 (or unmasked_weight > 0)")
        need(0.0 <= self.feature_grad_mult <= 1.0, "feature_grad_mult", "in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreTrainingConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown pre-training head option(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass
class PreTrainingOutput:
    """What one forward pass gives. `loss` is normalised by this batch's `sample_size` (masked frames, or unmasked
    ones when only those are scored); `loss_sum` is the unnormalised sum, for normalising by a global count."""
    loss: torch.Tensor | None
    loss_sum: torch.Tensor | None
    sample_size: torch.Tensor | None
    logits: torch.Tensor                       # (B, T, num_clusters) float32
    mask_time_indices: torch.Tensor            # (B, T) bool, True = masked
    features_pen: torch.Tensor                 # mean squared conv feature over real frames
    correct_masked: torch.Tensor | None = None
    count_masked: torch.Tensor | None = None
    correct_unmasked: torch.Tensor | None = None
    count_unmasked: torch.Tensor | None = None
    ce_masked: torch.Tensor | None = None      # summed cross-entropy over masked / unmasked scored frames
    ce_unmasked: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x unchanged in value, its gradient multiplied by `scale` (fairseq's GradMultiply, without a custom Function:
    x - x.detach() is exactly 0)."""
    if scale == 1.0:
        return x
    return x.detach() + (x - x.detach()) * scale


class WavLMForPreTraining(nn.Module):
    """WavLMModel + final_proj + label embeddings, trained on k-means frame labels.

    forward(input_values (B, N) float at 16 kHz, attention_mask (B, N) 0/1 right-padded, labels (B, T) int64 with
    -100 for unscored frames, mask_time_indices (B, T) bool) -> PreTrainingOutput. T is the conv stack's frame
    count (`frames(N)`). Without mask_time_indices, training draws masks from numpy's global RNG; the training task
    passes masks drawn by `compute_mask` from a seeded generator instead.
    """

    def __init__(self, config: WavLMConfig, head: PreTrainingConfig, backbone: WavLMModel | None = None) -> None:
        super().__init__()
        if not isinstance(head, PreTrainingConfig):
            raise TypeError(f"head must be a PreTrainingConfig, got {type(head).__name__}")
        config = backbone.config if backbone is not None else config
        if not config.apply_spec_augment:
            config.apply_spec_augment = True  # masking goes through the backbone's SpecAugment path
        if backbone is None:
            if config.mask_time_prob == 0 and config.mask_feature_prob == 0:
                config.mask_time_prob = 0.05  # the backbone keeps masked_spec_embed only then (released default)
            backbone = WavLMModel(config)
        elif not hasattr(backbone, "masked_spec_embed"):
            config.mask_time_prob = 0.05
            backbone.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size).uniform_())
        self.head = head
        self.wavlm = backbone
        self.final_proj = nn.Linear(config.output_hidden_size if config.add_adapter else config.hidden_size,
                                    head.final_dim)
        # fairseq: label_embs_concat, uniform in [0, 1)
        self.label_embeddings = nn.Parameter(torch.empty(head.num_clusters, head.final_dim).uniform_())
        self._features: dict[str, torch.Tensor] = {}
        self._frame_mask: torch.Tensor | None = None
        self.wavlm.feature_extractor.register_forward_hook(self._conv_features_hook)

    base_model_prefix = "wavlm"
    main_input_name = "input_values"

    @property
    def config(self) -> WavLMConfig:
        return self.wavlm.config

    @property
    def base_model(self) -> WavLMModel:
        return self.wavlm

    @property
    def device(self) -> torch.device:
        return self.wavlm.device

    @property
    def dtype(self) -> torch.dtype:
        return self.wavlm.dtype

    def freeze_feature_encoder(self) -> None:
        self.wavlm.freeze_feature_encoder()

    def gradient_checkpointing_enable(self, *args: Any, **kwargs: Any) -> None:
        self.wavlm.gradient_checkpointing_enable(*args, **kwargs)

    def frames(self, num_samples: int | torch.Tensor) -> Any:
        """Frames the conv stack gives for `num_samples` samples (int or (B,) tensor)."""
        return self.wavlm._get_feat_extract_output_lengths(num_samples, add_adapter=False)

    def set_layerdrop_seed(self, seed: int | None) -> None:
        """Draw layerdrop decisions from a generator seeded with `seed` (the same on every rank, so all ranks drop
        the same layers in a step); None returns to torch's global RNG."""
        encoder = self.wavlm.encoder
        encoder.layerdrop_generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def compute_mask(self, frame_lengths: torch.Tensor | np.ndarray | list[int], frames: int,
                     rng: np.random.Generator | None = None) -> torch.Tensor:
        """Span mask (B, frames) bool over each row's first frame_lengths[i] frames: about mask_prob / mask_length
        of a row's frames start a span of mask_length (at least min_masks spans; spans overlap), i.e. about 57 %
        masked with the released 0.8 / 10."""
        head = self.head
        lengths = np.asarray(frame_lengths.cpu() if torch.is_tensor(frame_lengths) else frame_lengths, dtype=np.int64)
        if lengths.size and int(lengths.min()) < head.mask_length:
            raise ValueError(f"an utterance of {int(lengths.min())} frames is shorter than mask_length "
                             f"{head.mask_length}; drop utterances under {head.mask_length * 0.02:.2f} s or crop longer")
        valid = np.arange(frames)[None, :] < lengths[:, None]
        mask = compute_mask_indices((len(lengths), frames), head.mask_prob, head.mask_length, attention_mask=valid,
                                    min_masks=head.min_masks, rng=rng)
        return torch.from_numpy(mask & valid)

    def _conv_features_hook(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        """Conv features (B, C, T): their penalty is recorded and their gradient scaled by feature_grad_mult."""
        features = scale_gradient(output, self.head.feature_grad_mult)
        squares = features.float().pow(2).mean(dim=1)  # (B, T)
        mask = self._frame_mask
        if mask is None:
            self._features["pen"] = squares.mean()
        else:
            mask = mask[:, :squares.shape[1]].to(squares.dtype)
            self._features["pen"] = (squares * mask).sum() / mask.sum().clamp(min=1)
        return features

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) hidden states -> (B, T, num_clusters) float32 cosine similarities / temperature."""
        proj = F.normalize(self.final_proj(hidden).float(), dim=-1)
        embeddings = F.normalize(self.label_embeddings.float(), dim=-1)
        return proj @ embeddings.t() / self.head.logit_temperature

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, mask_time_indices: torch.Tensor | None = None
                ) -> PreTrainingOutput:
        batch, samples = input_values.shape[0], input_values.shape[-1]
        frames = int(self.frames(int(samples)))
        if attention_mask is not None:
            frame_lengths = self.frames(attention_mask.sum(-1).long()).clamp(min=0)
        else:
            frame_lengths = torch.full((batch,), frames, dtype=torch.long)
        frame_mask = torch.arange(frames, device=input_values.device)[None, :] < frame_lengths.to(
            input_values.device)[:, None]
        if mask_time_indices is None:
            if self.training:
                mask_time_indices = self.compute_mask(frame_lengths, frames).to(input_values.device)
            else:
                mask_time_indices = torch.zeros(batch, frames, dtype=torch.bool, device=input_values.device)
        mask_time_indices = mask_time_indices.bool() & frame_mask
        if labels is not None and tuple(labels.shape) != (batch, frames):
            raise ValueError(f"labels have shape {tuple(labels.shape)}, but the audio gives (batch, frames) = "
                             f"({batch}, {frames}); targets must be at the model's frame rate (one per conv frame)")

        self._frame_mask = frame_mask
        try:
            out = self.wavlm(input_values, attention_mask, mask_time_indices, return_dict=True)
            pen = self._features.pop("pen")
        finally:
            self._frame_mask = None
            self._features.clear()
        logits = self.logits(out.last_hidden_state)
        result = PreTrainingOutput(None, None, None, logits, mask_time_indices, pen,
                                   last_hidden_state=out.last_hidden_state)
        if labels is None:
            return result

        labels = labels.to(logits.device).long()
        wrong = ((labels < 0) & (labels != IGNORE)) | (labels >= self.head.num_clusters)
        if bool(wrong.any()):
            bad = labels[wrong]
            raise ValueError(f"labels must be cluster ids in [0, {self.head.num_clusters}) or {IGNORE}, got "
                             f"{sorted(set(bad.tolist()))[:5]}")
        scored = frame_mask & (labels != IGNORE)
        masked, unmasked = scored & mask_time_indices, scored & ~mask_time_indices
        ce = F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten(), reduction="none").view(batch, frames)
        hit = logits.argmax(-1) == labels
        loss_m = (ce * masked).sum()
        loss_u = (ce * unmasked).sum()
        head = self.head
        loss_sum = head.masked_weight * loss_m + head.unmasked_weight * loss_u
        sample_size = masked.sum() if head.masked_weight > 0 else unmasked.sum()
        # fairseq: the penalty is multiplied by sample_size so that it survives the normalisation unchanged
        loss_sum = loss_sum + head.feature_penalty * pen * sample_size
        result.loss_sum = loss_sum
        result.sample_size = sample_size
        result.loss = loss_sum / sample_size.clamp(min=1)
        result.correct_masked, result.count_masked = (hit & masked).sum(), masked.sum()
        result.correct_unmasked, result.count_unmasked = (hit & unmasked).sum(), unmasked.sum()
        result.ce_masked, result.ce_unmasked = loss_m.detach(), loss_u.detach()
        return result

    # -- checkpoints
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """The backbone as a WavLMModel directory (config.json + model.safetensors, loadable by transformers'
        WavLMModel.from_pretrained), and the head beside it (pretraining_head.json / .safetensors)."""
        from safetensors.torch import save_file

        directory = Path(save_directory)
        self.wavlm.save_pretrained(directory, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        (directory / HEAD_CONFIG).write_text(json.dumps(self.head.to_dict(), indent=2) + "\n", encoding="utf-8")
        head = {"final_proj.weight": self.final_proj.weight, "final_proj.bias": self.final_proj.bias,
                "label_embeddings": self.label_embeddings}
        save_file({k: v.detach().contiguous().cpu() for k, v in head.items()}, str(directory / HEAD_WEIGHTS))

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, head: PreTrainingConfig | None = None,
                        **kwargs: Any) -> "WavLMForPreTraining":
        """A backbone from any model source WavLMModel.from_pretrained reads (a pre-training or fine-tuning output
        directory, a Hub id, an original .pt), keeping its architecture, with the saved head when the source has
        one and `head` is None or has the same clusters; otherwise a new head from `head`."""
        backbone = WavLMModel.from_pretrained(source, **kwargs)
        directory = Path(source)
        saved = None
        if (directory / HEAD_CONFIG).is_file():
            saved = PreTrainingConfig.from_dict(json.loads((directory / HEAD_CONFIG).read_text(encoding="utf-8")))
        if head is None and saved is None:
            raise ValueError(f"{source} has no pre-training head ({HEAD_CONFIG}); pass head=PreTrainingConfig("
                             f"num_clusters=...) to start a new one")
        reuse = saved is not None and (head is None or (head.num_clusters, head.final_dim) ==
                                       (saved.num_clusters, saved.final_dim))
        model = cls(backbone.config, head if head is not None else saved, backbone=backbone)
        if reuse:
            from safetensors.torch import load_file

            state = load_file(str(directory / HEAD_WEIGHTS))
            with torch.no_grad():
                model.final_proj.weight.copy_(state["final_proj.weight"])
                model.final_proj.bias.copy_(state["final_proj.bias"])
                model.label_embeddings.copy_(state["label_embeddings"])
        elif saved is not None:
            warnings.warn(f"{source}: its head has {saved.num_clusters} clusters, the new one {head.num_clusters}; "
                          "the head starts afresh", stacklevel=2)
        return model.to(backbone.dtype)


def chance_loss(num_clusters: int) -> float:
    """ln K: the cross-entropy of a uniform prediction over K clusters (the loss at initialisation)."""
    return math.log(num_clusters)
