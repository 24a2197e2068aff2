"""The pre-training task on the fine-tuning loop (wavlm.train): WavLMForPreTraining from a config.json (from
scratch) or any model source (continued pre-training, keeping its architecture), batches of k-means targets with
utterance mixing and span masks, the loss summed over masked frames (the loop divides by their global count), and
masked / unmasked accuracy.

    task = PretrainTask(load_targets("corpus/targets-km100"), mixing=MixingConfig(prob=0.2))
    train(task, "config.json", load_items("corpus/train.jsonl"), valid_items, TrainOptions(...))
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from wavlm.pretrain.data import collate_pretrain
from wavlm.pretrain.mixing import MixingConfig
from wavlm.pretrain.model import IGNORE, PreTrainingConfig, WavLMForPreTraining
from wavlm.pretrain.targets import FrameGeometry, Targets
from wavlm.train.data import SAMPLE_RATE, Item, filter_items
from wavlm.train.tasks import Batch, Task

# the released recipe's longest crop (fairseq max_sample_size)
MAX_CROP_SAMPLES = 250_000


class PretrainTask(Task):
    """Masked prediction of k-means targets. `head`: PreTrainingConfig options besides num_clusters (taken from the
    targets); `mixing`: utterance mixing (None or prob 0: off); `noises`: 1-D noise recordings at 16 kHz for the
    noise branch; `normalize`: zero-mean unit-variance audio (None: the source's preprocessor_config.json
    do_normalize, else False as for WavLM Base)."""
    name = "pretrain"
    metric = "masked_accuracy"
    higher_is_better = True
    model_class = "WavLMForPreTraining"

    def __init__(self, targets: Targets, head: dict[str, Any] | None = None, mixing: MixingConfig | None = None,
                 noises: Sequence[np.ndarray] = (), normalize: bool | None = None,
                 max_crop_samples: int = MAX_CROP_SAMPLES, eval_seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("max_seconds", max_crop_samples / SAMPLE_RATE)
        super().__init__(**kwargs)
        self.targets = targets
        self.head = PreTrainingConfig(num_clusters=targets.clusters, **(head or {}))
        self.mixing = mixing
        self.noises = list(noises)
        self.normalize = normalize
        self.max_crop_samples = int(max_crop_samples)
        self.eval_seed = eval_seed
        self.geometry: FrameGeometry | None = None
        self.model_ref: WavLMForPreTraining | None = None

    # -- model
    def build_model(self, source: str | os.PathLike, overrides: dict[str, Any]) -> nn.Module:
        from wavlm.config import WavLMConfig

        path = Path(source)
        if path.suffix == ".json" and path.is_file():
            config = WavLMConfig.from_json_file(path)
            for key, value in overrides.items():
                setattr(config, key, value)
            config.validate()
            model = WavLMForPreTraining(config, self.head)
        else:
            model = WavLMForPreTraining.from_pretrained(source, head=self.head, **overrides)
            self.head = model.head
        self.extractor = self._extractor(path)
        if self.normalize is None:
            self.normalize = bool(getattr(self.extractor, "do_normalize", False)) if \
                (path if path.is_dir() else path.parent).joinpath("preprocessor_config.json").is_file() else False
        self.extractor.do_normalize = self.normalize
        self.config = model.config
        self.geometry = FrameGeometry.of(model.config)
        stored = self.targets.geometry
        if stored.stride != self.geometry.stride:
            raise ValueError(f"the targets in {self.targets.root} are at one label per {stored.stride} samples, the "
                             f"model's frames every {self.geometry.stride}; compute targets for this model's conv "
                             "stack (`wavlm pretrain targets --config`)")
        return model

    # -- data
    def prepare(self, train: list[Item], valid: list[Item]) -> tuple[list[Item], list[Item]]:
        rule = lambda it: None if it.id in self.targets.labels else "no targets (not in the targets folder)"  # noqa
        return filter_items(train, rule, "train", self.log), filter_items(valid, rule, "valid", self.log)

    def check_fit(self, train: list[Item], valid: list[Item]) -> tuple[list[Item], list[Item]]:
        from wavlm.frames import min_samples

        shortest = min_samples(self.head.mask_length, self.config.conv_kernel, self.config.conv_stride)

        def rule(item: Item) -> str | None:
            if item.duration * SAMPLE_RATE < shortest:
                return f"shorter than {shortest / SAMPLE_RATE:.3f} s (one mask span of {self.head.mask_length} frames)"
            return None

        return filter_items(train, rule, "train", self.log), filter_items(valid, rule, "valid", self.log)

    def _mask(self, lengths: list[int], frames: int, rng: np.random.Generator | None) -> torch.Tensor:
        head = self.head
        valid = np.arange(frames)[None, :] < np.asarray(lengths)[:, None]
        from wavlm.masking import compute_mask_indices

        rng = rng if rng is not None else np.random.default_rng([self.eval_seed, *lengths[:4], frames])
        mask = compute_mask_indices((len(lengths), frames), head.mask_prob, head.mask_length, attention_mask=valid,
                                    min_masks=head.min_masks, rng=rng)
        return torch.from_numpy(mask & valid)

    def collate(self, items: list[Item], rng: np.random.Generator | None) -> Batch:
        wavs = [it.audio() for it in items]
        labels = [self.targets.for_frames(it.id, self.geometry.frames(len(w))) for w, it in zip(wavs, items)]
        b = collate_pretrain(wavs, labels, self.geometry, self._mask, rng, max_samples=self.max_crop_samples,
                             mixing=self.mixing, noises=self.noises, normalize=self.normalize)
        inputs = {"input_values": b.input_values, "mask_time_indices": b.mask_time_indices}
        if not bool(b.attention_mask.all()):
            inputs["attention_mask"] = b.attention_mask
        scored = b.labels != IGNORE
        count = int((b.mask_time_indices & scored).sum()) if self.head.masked_weight > 0 else \
            int((~b.mask_time_indices & scored).sum())
        seconds = float(b.attention_mask.sum()) / SAMPLE_RATE
        return Batch(inputs, {"labels": b.labels, "mixed": sum(m is not None for m in b.mixes)}, float(count),
                     seconds, items)

    # -- loss and metrics
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(**batch.inputs, labels=batch.targets["labels"])
        count = batch.count
        unmasked = float(out.correct_unmasked) / max(float(out.count_unmasked), 1.0)
        # extras are divided by the global count by the loop: sums over masked frames, per-batch rates x count
        return out.loss_sum.float(), {
            "masked_accuracy": float(out.correct_masked),
            "unmasked_accuracy": unmasked * count,
            "ce_masked": float(out.ce_masked),
            "features_pen": float(out.features_pen.detach()) * count,
            "mixed_fraction": batch.targets["mixed"] / len(batch.items) * count,
        }

    @torch.no_grad()
    def evaluate(self, model: nn.Module, items: list[Item], device: torch.device) -> dict[str, float]:
        sums = dict.fromkeys(("loss", "ce", "correct_m", "count_m", "correct_u", "count_u"), 0.0)
        counts = np.zeros(self.head.num_clusters, dtype=np.int64)
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            out = model(**batch.inputs, labels=batch.targets["labels"])
            labels = batch.targets["labels"]
            scored = out.mask_time_indices & (labels != IGNORE)
            counts += np.bincount(labels[scored].cpu().numpy(), minlength=self.head.num_clusters)
            sums["loss"] += float(out.loss_sum)
            sums["ce"] += float(out.ce_masked)
            sums["correct_m"] += float(out.correct_masked)
            sums["count_m"] += float(out.count_masked)
            sums["correct_u"] += float(out.correct_unmasked)
            sums["count_u"] += float(out.count_unmasked)
        m = max(sums["count_m"], 1.0)
        return {"masked_accuracy": sums["correct_m"] / m, "unmasked_accuracy": sums["correct_u"] /
                max(sums["count_u"], 1.0), "loss": sums["loss"] / m, "ce_masked": sums["ce"] / m,
                "majority_rate": float(counts.max() / max(counts.sum(), 1))}

    # -- checkpoints
    def load_weights(self, model: WavLMForPreTraining, directory: str | os.PathLike) -> None:
        """Backbone (model.safetensors) and head (pretraining_head.safetensors) of a saved directory, strictly."""
        from safetensors.torch import load_file

        from wavlm.pretrain.model import HEAD_WEIGHTS

        directory = Path(directory)
        state = {f"wavlm.{k}": v for k, v in load_file(str(directory / "model.safetensors")).items()}
        state.update(load_file(str(directory / HEAD_WEIGHTS)))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"--resume: {directory} does not match the model: missing {missing[:5]}, unexpected "
                             f"{unexpected[:5]}")
