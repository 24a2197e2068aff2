"""What the loop trains: a Task builds its model, turns Items into batches, computes a summed loss with its
normaliser, evaluates a validation metric and saves a directory that `from_pretrained` and the CLI load.

Fine-tuning tasks: ctc (speech recognition), classify (utterance labels), frames (speaker activity for diarization,
permutation-invariant BCE), xvector (speaker embeddings, AM-softmax). A pre-training task plugs in the same way.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import SAMPLE_RATE, Item, bucket_batches, crop, filter_items
from .losses import am_softmax, pit_bce
from .metrics import cer, wer


@dataclass
class Batch:
    """A collated batch. inputs: model keyword arguments (input_values (B, N) float, attention_mask (B, N) long);
    targets: what the task's loss needs; count: the loss normaliser (tokens, utterances, frames, ...), summed over
    the global batch by the loop; seconds: real audio seconds in the batch."""
    inputs: dict[str, torch.Tensor]
    targets: dict[str, Any]
    count: float
    seconds: float
    items: list[Item] = field(default_factory=list, repr=False)

    def to(self, device: torch.device) -> "Batch":
        move = (lambda v: v.to(device, non_blocking=True) if torch.is_tensor(v) else v)
        return Batch({k: move(v) for k, v in self.inputs.items()}, {k: move(v) for k, v in self.targets.items()},
                     self.count, self.seconds, self.items)


def _print(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


class Task:
    """The interface the loop calls, in this order:

    prepare(train, valid) -> (train, valid)   learn vocabulary / labels from the training items, drop unusable ones
    build_model(source, overrides) -> model   a WavLMFor* model (the loop sets dropout / SpecAugment overrides)
    check_fit(train, valid) -> (train, valid) drop what this model cannot take (too short, CTC too long)
    collate(items, rng) -> Batch               rng: a numpy Generator for random crops (None = deterministic)
    loss(model, batch) -> (sum, logs)          a float32 scalar summed over the batch (the loop divides by the
                                               global count), and extra sums to log (averaged by count)
    evaluate(model, items, device) -> dict     validation metrics; `metric` names the one that picks the best model
    save(model, directory)                     config + weights + feature extractor (+ tokenizer) files
    """
    name = "task"
    metric = "loss"
    higher_is_better = False
    model_class = "WavLMModel"
    min_seconds = 0.05

    def __init__(self, max_seconds: float = 20.0, crop_seconds: float | None = None, eval_seconds: float = 60.0,
                 log: Callable[[str], None] = _print) -> None:
        self.max_seconds, self.crop_seconds, self.eval_seconds = max_seconds, crop_seconds, eval_seconds
        self.log = log
        self.extractor = None
        self.config = None

    # -- model
    def config_overrides(self) -> dict[str, Any]:
        """Config values the task sets (vocabulary size, labels)."""
        return {}

    def build_model(self, source: str | os.PathLike, overrides: dict[str, Any]) -> nn.Module:
        """The task's model class from a config.json (random initialisation) or anything from_pretrained takes."""
        import wavlm

        cls = getattr(wavlm, self.model_class)
        overrides = {**overrides, **self.config_overrides()}
        path = Path(source)
        if path.suffix == ".json" and path.is_file():
            config = wavlm.WavLMConfig.from_json_file(path)
            for key, value in overrides.items():
                setattr(config, key, value)
            config.validate() if hasattr(config, "validate") else None
            model = cls(config)
        else:
            model = cls.from_pretrained(source, ignore_mismatched_sizes=True, **overrides)
        self.extractor = self._extractor(path)
        self.config = model.config
        return model

    def _extractor(self, path: Path):
        from wavlm.features import WavLMFeatureExtractor

        folder = path.parent if path.is_file() else path
        if (folder / "preprocessor_config.json").is_file():
            return WavLMFeatureExtractor.from_pretrained(folder)
        if not path.exists():  # a Hub id
            try:
                return WavLMFeatureExtractor.from_pretrained(str(path))
            except (OSError, ValueError):
                pass
        return WavLMFeatureExtractor(return_attention_mask=True)

    def save(self, model: nn.Module, directory: str | os.PathLike) -> None:
        model.save_pretrained(directory)
        self.extractor.save_pretrained(directory)

    # -- data
    def prepare(self, train: list[Item], valid: list[Item]) -> tuple[list[Item], list[Item]]:
        return train, valid

    def check_fit(self, train: list[Item], valid: list[Item]) -> tuple[list[Item], list[Item]]:
        """After build_model: drop items shorter than the model takes (min_input_seconds)."""
        train_low, valid_low = self.min_input_seconds(True), self.min_input_seconds(False)
        if self.crop_seconds is not None and self.crop_seconds < train_low:
            raise ValueError(f"crop_seconds={self.crop_seconds} is shorter than the model needs in training "
                             f"({train_low:.3f} s)")
        return (filter_items(train, lambda it: self._length_rule(it, train_low), "train", self.log),
                filter_items(valid, lambda it: self._length_rule(it, valid_low), "valid", self.log))

    def min_input_seconds(self, training: bool) -> float:
        """The shortest input the model takes: its receptive field (one frame), and in training with SpecAugment on,
        one time-mask span (mask_time_length frames): a batch shorter than that stops the run, as in transformers
        ("mask_length ... must not exceed the number of frames")."""
        from wavlm.frames import min_samples

        c = self.config
        masked = training and c.apply_spec_augment and c.mask_time_prob > 0
        return min_samples(max(1, c.mask_time_length) if masked else 1, c.conv_kernel, c.conv_stride) / SAMPLE_RATE

    def audio_batch(self, wavs: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Normalised (as the feature extractor does at inference), right-padded input_values + attention_mask."""
        out = self.extractor(wavs, sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True,
                             return_tensors="pt")
        return {"input_values": out["input_values"].float(), "attention_mask": out["attention_mask"].long()}

    def frame_lengths(self, attention_mask: torch.Tensor) -> torch.Tensor:
        from wavlm.frames import conv_output_lengths

        return conv_output_lengths(attention_mask.sum(-1), self.config.conv_kernel, self.config.conv_stride).long()

    def collate(self, items: list[Item], rng: np.random.Generator | None) -> Batch:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, items: list[Item], device: torch.device) -> dict[str, float]:
        raise NotImplementedError

    def eval_batches(self, items: list[Item], max_seconds: float = 60.0) -> list[list[Item]]:
        """Length-sorted evaluation batches (padding changes group-norm models' outputs: fairseq #3227)."""
        order = bucket_batches([it.duration for it in items], max_seconds, num_buckets=1, shuffle=False)
        return [[items[i] for i in b] for b in order]

    def _length_rule(self, item: Item, min_seconds: float | None = None) -> str | None:
        low = self.min_seconds if min_seconds is None else min_seconds
        if item.duration < low:
            return f"shorter than {low:.3f} s"
        return None


# --------------------------------------------------------------------------------------------------- ctc


def build_vocab(texts: Sequence[str]) -> dict[str, int]:
    """A character vocabulary: <pad> (the CTC blank) = 0, <s>, </s>, <unk>, the word delimiter | for space, then
    every other character of the texts in sorted order."""
    chars = sorted({c for t in texts for c in t if not c.isspace()} - {"|"})
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    return vocab


def ctc_frames_needed(ids: Sequence[int]) -> int:
    """Frames a CTC alignment of `ids` needs: one per token plus a blank between repeated tokens."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


class CTCTask(Task):
    """Speech recognition with CTC over characters. Vocabulary from the training text (or the model source's
    tokenizer); zero_infinity in training; utterances whose transcript cannot fit their frames are skipped before
    training; validation WER / CER (our edit distance) and the blank ratio of the greedy path."""
    name = "ctc"
    metric = "wer"
    higher_is_better = False
    model_class = "WavLMForCTC"

    def __init__(self, tokenizer_source: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenizer_source = tokenizer_source
        self.tokenizer = None

    def prepare(self, train, valid):
        from wavlm.tokenizer import WavLMCTCTokenizer

        rule = lambda it: "no transcript" if not it.text else None  # noqa: E731
        train = filter_items(train, rule, "train", self.log)
        valid = filter_items(valid, rule, "valid", self.log)
        if self.tokenizer_source is not None:
            self.tokenizer = WavLMCTCTokenizer.from_pretrained(self.tokenizer_source)
        else:
            self.tokenizer = WavLMCTCTokenizer(vocab=build_vocab([it.text for it in train]))
        return train, valid

    def build_model(self, source, overrides):
        from wavlm.tokenizer import WavLMCTCTokenizer

        path = Path(source)
        if self.tokenizer_source is None and path.is_dir() and (path / "vocab.json").is_file():
            self.tokenizer = WavLMCTCTokenizer.from_pretrained(path)
        return super().build_model(source, overrides)

    def config_overrides(self):
        tok = self.tokenizer
        return {"vocab_size": len(tok), "pad_token_id": tok.pad_token_id, "ctc_zero_infinity": True,
                "ctc_loss_reduction": "sum"}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def check_fit(self, train: list[Item], valid: list[Item]) -> tuple[list[Item], list[Item]]:
        """After the model exists: drop items too long or whose transcript cannot fit their frames."""
        unk = self.tokenizer.unk_token_id
        low = {True: self.min_input_seconds(True), False: self.min_input_seconds(False)}

        def rule(item: Item, training: bool) -> str | None:
            if item.duration > self.max_seconds:
                return f"longer than max_seconds={self.max_seconds:g} s"
            short = self._length_rule(item, low[training])
            if short:
                return short
            ids = self.encode(item.text)
            frames = self.frame_count(int(round(item.duration * SAMPLE_RATE)))
            if ctc_frames_needed(ids) > frames:
                return "transcript longer than its frames allow (CTC needs one frame per character + repeats)"
            if unk is not None and unk in ids:
                self.log(f"{item.id}: characters outside the vocabulary map to {self.tokenizer.unk_token}")
            return None

        return (filter_items(train, lambda it: rule(it, True), "train", self.log),
                filter_items(valid, lambda it: rule(it, False), "valid", self.log))

    def frame_count(self, samples: int) -> int:
        from wavlm.frames import conv_output_lengths

        return int(conv_output_lengths(torch.tensor([samples]), self.config.conv_kernel, self.config.conv_stride)[0])

    def collate(self, items, rng):
        inputs = self.audio_batch([it.audio() for it in items])
        ids = [self.encode(it.text) for it in items]
        labels = torch.full((len(ids), max(len(i) for i in ids)), -100, dtype=torch.long)
        for row, seq in enumerate(ids):
            labels[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
        seconds = float(inputs["attention_mask"].sum()) / SAMPLE_RATE
        return Batch(inputs, {"labels": labels, "label_lengths": lengths}, float(lengths.sum()), seconds, items)

    def loss(self, model, batch):
        logits = model(**batch.inputs).logits
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V), float32
        frames = self.frame_lengths(batch.inputs["attention_mask"]).to(logits.device)
        labels, lengths = batch.targets["labels"], batch.targets["label_lengths"]
        targets = labels[labels != -100]
        blank = self.config.pad_token_id
        with torch.backends.cudnn.flags(enabled=False):
            per_utt = F.ctc_loss(log_probs, targets, frames, lengths, blank=blank, reduction="none",
                                 zero_infinity=True)
            with torch.no_grad():
                raw = F.ctc_loss(log_probs.detach(), targets, frames, lengths, blank=blank, reduction="none")
        with torch.no_grad():
            valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < frames[:, None]
            blanks = ((logits.argmax(-1) == blank) & valid).sum()
            blank_ratio = float(blanks) / max(float(valid.sum()), 1.0)
        # blank_ratio is logged per token of the normaliser so that the loop's count-average gives the ratio
        return per_utt.sum(), {"infinite": float(torch.isinf(raw).sum()), "blank_ratio": blank_ratio * batch.count}

    @torch.no_grad()
    def transcribe(self, model, items, device) -> list[str]:
        out = {}
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            logits = model(**batch.inputs).logits
            frames = self.frame_lengths(batch.inputs["attention_mask"])
            ids = logits.argmax(-1).cpu()
            for row, item in enumerate(group):
                out[item.id] = self.tokenizer.decode(ids[row, :int(frames[row])].tolist())
        return [out[it.id] for it in items]

    @torch.no_grad()
    def evaluate(self, model, items, device):
        hyps = self.transcribe(model, items, device)
        refs = [it.text for it in items]
        total = blank = 0
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            logits = model(**batch.inputs).logits
            frames = self.frame_lengths(batch.inputs["attention_mask"]).to(logits.device)
            valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < frames[:, None]
            blank += int(((logits.argmax(-1) == self.config.pad_token_id) & valid).sum())
            total += int(valid.sum())
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps), "blank_ratio": blank / max(total, 1),
                "exact": sum(r == h for r, h in zip(refs, hyps)) / len(refs)}

    def save(self, model, directory):
        super().save(model, directory)
        self.tokenizer.save_pretrained(directory)


# ----------------------------------------------------------------------------------------------- classify


class ClassifyTask(Task):
    """Utterance classification: cross-entropy over the training labels (mean squared error with
    `regression=True`, one output), masked mean pooling in the head, validation accuracy. Training takes random
    crops of crop_seconds."""
    name = "classify"
    metric = "accuracy"
    higher_is_better = True
    model_class = "WavLMForSequenceClassification"

    def __init__(self, regression: bool = False, label_field: str = "label", **kwargs: Any) -> None:
        kwargs.setdefault("crop_seconds", 3.0)
        super().__init__(**kwargs)
        self.regression, self.label_field = regression, label_field
        self.labels: list[str] = []
        if regression:
            self.metric, self.higher_is_better = "mse", False

    def _label(self, item: Item) -> Any:
        return getattr(item, self.label_field, None)

    def prepare(self, train, valid):
        def rule(item):
            value = self._label(item)
            if value is None:
                return f"no {self.label_field}"
            if self.regression:
                try:
                    float(value)
                except (TypeError, ValueError):
                    return f"{self.label_field} {value!r} is not a number (regression)"
            return self._length_rule(item)

        train = filter_items(train, rule, "train", self.log)
        if not self.regression:
            self.labels = sorted({str(self._label(it)) for it in train})
            if len(self.labels) < 2:
                raise ValueError(f"classification needs at least 2 distinct labels in the training data, got "
                                 f"{self.labels}")
            known = set(self.labels)
            valid = filter_items(valid, lambda it: rule(it) or (None if str(self._label(it)) in known else
                                                                "label not seen in training"), "valid", self.log)
        else:
            valid = filter_items(valid, rule, "valid", self.log)
        return train, valid

    def config_overrides(self):
        if self.regression:
            return {"num_labels": 1, "problem_type": "regression"}
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {label: i for i, label in enumerate(self.labels)}}

    def collate(self, items, rng):
        limit = self.crop_seconds if rng is not None and self.crop_seconds else self.max_seconds
        wavs = [crop(it.audio(), int(limit * SAMPLE_RATE), rng)[0] for it in items]
        inputs = self.audio_batch(wavs)
        if self.regression:
            labels = torch.tensor([float(self._label(it)) for it in items], dtype=torch.float32)
        else:
            index = {label: i for i, label in enumerate(self.labels)}
            labels = torch.tensor([index[str(self._label(it))] for it in items], dtype=torch.long)
        seconds = float(inputs["attention_mask"].sum()) / SAMPLE_RATE
        return Batch(inputs, {"labels": labels}, float(len(items)), seconds, items)

    def loss(self, model, batch):
        logits = model(**batch.inputs).logits.float()
        labels = batch.targets["labels"]
        if self.regression:
            return F.mse_loss(logits[:, 0], labels, reduction="sum"), {}
        loss = F.cross_entropy(logits, labels, reduction="sum")
        return loss, {"accuracy": float((logits.argmax(-1) == labels).sum())}

    @torch.no_grad()
    def predict(self, model, items, device) -> torch.Tensor:
        out = []
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            out.append((group, model(**batch.inputs).logits.float().cpu()))
        by_id = {it.id: row for group, logits in out for it, row in zip(group, logits)}
        return torch.stack([by_id[it.id] for it in items])

    def evaluate(self, model, items, device):
        logits = self.predict(model, items, device)
        if self.regression:
            target = torch.tensor([float(self._label(it)) for it in items])
            return {"mse": float(((logits[:, 0] - target) ** 2).mean())}
        index = {label: i for i, label in enumerate(self.labels)}
        target = torch.tensor([index[str(self._label(it))] for it in items])
        return {"accuracy": float((logits.argmax(-1) == target).float().mean())}


# ------------------------------------------------------------------------------------------------- frames


def frame_labels(turns: Sequence[tuple[float, float, str]], num_frames: int, speakers: Sequence[str],
                 frame_shift: float = 0.02) -> np.ndarray:
    """Speaker activity (num_frames, len(speakers)) float32 from turns (start_s, end_s, speaker): frame t is active
    for a speaker when a turn of theirs covers the frame's centre, (t + 0.5) * frame_shift seconds (frame t spans
    [t * shift, (t + 1) * shift), as `wavlm diarize` reads its outputs). Overlapping turns give several 1s."""
    column = {s: i for i, s in enumerate(speakers)}
    centres = (np.arange(num_frames) + 0.5) * frame_shift
    labels = np.zeros((num_frames, len(speakers)), dtype=np.float32)
    for start, end, speaker in turns:
        if speaker not in column:
            raise ValueError(f"turn of speaker {speaker!r} is not among the speakers {list(speakers)}")
        if end < start:
            raise ValueError(f"turn ({start}, {end}) of {speaker!r} ends before it starts")
        labels[(centres >= start) & (centres < end), column[speaker]] = 1.0
    return labels


class FramesTask(Task):
    """Speaker activity per frame for diarization: permutation-invariant BCE with a length mask (`loss="pit"`), or
    transformers' cross-entropy against argmax(labels) (`loss="argmax-ce"`, one speaker per frame; for
    compatibility). Training takes random crops of crop_seconds; validation DER (our scorer, no collar) after
    the same post-processing as `wavlm diarize` (median filter, 0.5 threshold)."""
    name = "frames"
    metric = "der"
    higher_is_better = False
    model_class = "WavLMForAudioFrameClassification"

    def __init__(self, num_speakers: int | None = None, loss: str = "pit", median_width: int = 11,
                 **kwargs: Any) -> None:
        kwargs.setdefault("crop_seconds", 8.0)
        super().__init__(**kwargs)
        if loss not in ("pit", "argmax-ce"):
            raise ValueError(f"frames loss must be 'pit' or 'argmax-ce', got {loss!r}")
        self.num_speakers, self.loss_kind, self.median_width = num_speakers, loss, median_width

    def prepare(self, train, valid):
        rule = lambda it: "no speaker turns (an rttm)" if not it.turns else self._length_rule(it)  # noqa: E731
        train = filter_items(train, rule, "train", self.log)
        valid = filter_items(valid, rule, "valid", self.log)
        most = max(len({s for _, _, s in it.turns}) for it in train)
        self.num_speakers = self.num_speakers or most
        limit = lambda it: (f"more than {self.num_speakers} speakers"  # noqa: E731
                            if len({s for _, _, s in it.turns}) > self.num_speakers else None)
        return filter_items(train, limit, "train", self.log), filter_items(valid, limit, "valid", self.log)

    def config_overrides(self):
        names = [f"spk{i:02d}" for i in range(self.num_speakers)]
        return {"num_labels": self.num_speakers, "id2label": dict(enumerate(names)),
                "label2id": {n: i for i, n in enumerate(names)}}

    def collate(self, items, rng):
        limit = self.crop_seconds if rng is not None and self.crop_seconds else self.max_seconds
        wavs, turns = [], []
        for it in items:
            wav, start = crop(it.audio(), int(limit * SAMPLE_RATE), rng)
            t0, t1 = start / SAMPLE_RATE, (start + len(wav)) / SAMPLE_RATE
            wavs.append(wav)
            turns.append([(max(s, t0) - t0, min(e, t1) - t0, spk) for s, e, spk in it.turns if e > t0 and s < t1])
        inputs = self.audio_batch(wavs)
        lengths = self.frame_lengths(inputs["attention_mask"])
        frames = int(lengths.max())
        shift = self.config.frame_stride / SAMPLE_RATE
        labels = torch.zeros(len(items), frames, self.num_speakers)
        for row, (it, tr) in enumerate(zip(items, turns)):
            speakers = list(dict.fromkeys(s for _, _, s in sorted(it.turns)))
            speakers += [f"<none{i}>" for i in range(self.num_speakers - len(speakers))]
            labels[row, :int(lengths[row])] = torch.from_numpy(frame_labels(tr, int(lengths[row]), speakers, shift))
        seconds = float(inputs["attention_mask"].sum()) / SAMPLE_RATE
        count = float(lengths.sum()) * (self.num_speakers if self.loss_kind == "pit" else 1)
        return Batch(inputs, {"labels": labels, "frames": lengths}, count, seconds, items)

    def loss(self, model, batch):
        logits = model(**batch.inputs).logits.float()
        labels, lengths = batch.targets["labels"], batch.targets["frames"].to(logits.device)
        if self.loss_kind == "pit":
            total, _ = pit_bce(logits, labels, lengths)
            return total, {}
        valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < lengths[:, None]
        ce = F.cross_entropy(logits.transpose(1, 2), labels.argmax(-1), reduction="none")
        return (ce * valid).sum(), {}

    @torch.no_grad()
    def diarize(self, model, items, device) -> dict[str, list[tuple[float, float, str]]]:
        from wavlm.tasks.segmentation import binarize, median_filter

        shift = self.config.frame_stride / SAMPLE_RATE
        out = {}
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            probs = model(**batch.inputs).logits.float().sigmoid().cpu().numpy()
            for row, it in enumerate(group):
                p = median_filter(probs[row, :int(batch.targets["frames"][row])], self.median_width)
                tracks = binarize(p, 0.5, frame_shift_s=shift)
                out[it.id] = [(s, e, f"spk{k:02d}") for k, segs in enumerate(tracks) for s, e in segs]
        return out

    def evaluate(self, model, items, device):
        from wavlm.tasks.rttm import Turn, diarization_error_rate

        hyp = self.diarize(model, items, device)
        limit = self.max_seconds
        ref_turns, hyp_turns = [], []
        for it in items:
            t1 = min(it.duration, limit)
            start = (it.duration - t1) / 2 if it.duration > limit else 0.0  # the centre crop collate takes
            for s, e, spk in it.turns:
                if e > start and s < start + t1:
                    ref_turns.append(Turn(max(s, start) - start, min(e, start + t1) - start, spk, it.id))
            hyp_turns += [Turn(s, e, spk, it.id) for s, e, spk in hyp[it.id]]
        return {"der": diarization_error_rate(ref_turns, hyp_turns)["der"]}


# ------------------------------------------------------------------------------------------------ xvector


class XVectorTask(Task):
    """Speaker embeddings: AM-softmax (scale 30, margin 0.4, as the head) over the training speakers on random
    crops; validation EER on trials made of every pair of the validation utterances (cosine scoring)."""
    name = "xvector"
    metric = "eer"
    higher_is_better = False
    model_class = "WavLMForXVector"

    def __init__(self, scale: float = 30.0, margin: float = 0.4, **kwargs: Any) -> None:
        kwargs.setdefault("crop_seconds", 3.0)
        super().__init__(**kwargs)
        self.scale, self.margin = scale, margin
        self.speakers: list[str] = []

    def prepare(self, train, valid):
        rule = lambda it: "no speaker" if it.speaker is None else self._length_rule(it)  # noqa: E731
        train = filter_items(train, rule, "train", self.log)
        valid = filter_items(valid, rule, "valid", self.log)
        self.speakers = sorted({it.speaker for it in train})
        if len(self.speakers) < 2:
            raise ValueError(f"x-vector training needs at least 2 training speakers, got {self.speakers}")
        if len({it.speaker for it in valid}) < 2:
            raise ValueError("x-vector validation needs utterances of at least 2 speakers (for trials)")
        return train, valid

    def config_overrides(self):
        return {"num_labels": len(self.speakers), "id2label": dict(enumerate(self.speakers)),
                "label2id": {s: i for i, s in enumerate(self.speakers)}}

    def check_fit(self, train, valid):
        from wavlm.heads import xvector_min_samples

        low = xvector_min_samples(self.config) / SAMPLE_RATE
        train_low = max(low, self.min_input_seconds(True))
        if self.crop_seconds is not None and self.crop_seconds < train_low:
            raise ValueError(f"crop_seconds={self.crop_seconds} is shorter than the x-vector model needs in training "
                             f"({train_low:.3f} s)")
        return (filter_items(train, lambda it: self._length_rule(it, train_low), "train", self.log),
                filter_items(valid, lambda it: self._length_rule(it, low), "valid", self.log))

    def collate(self, items, rng):
        limit = self.crop_seconds if rng is not None and self.crop_seconds else self.max_seconds
        inputs = self.audio_batch([crop(it.audio(), int(limit * SAMPLE_RATE), rng)[0] for it in items])
        index = {s: i for i, s in enumerate(self.speakers)}
        labels = torch.tensor([index.get(it.speaker, -1) for it in items], dtype=torch.long)
        seconds = float(inputs["attention_mask"].sum()) / SAMPLE_RATE
        return Batch(inputs, {"labels": labels}, float(len(items)), seconds, items)

    def loss(self, model, batch):
        logits = model(**batch.inputs).logits
        return am_softmax(logits, model.objective.weight, batch.targets["labels"], self.scale, self.margin), {}

    @torch.no_grad()
    def embed(self, model, items, device) -> torch.Tensor:
        by_id = {}
        for group in self.eval_batches(items, self.eval_seconds):
            batch = self.collate(group, None).to(device)
            emb = model(**batch.inputs).embeddings.float().cpu()
            by_id.update({it.id: row for it, row in zip(group, emb)})
        return torch.stack([by_id[it.id] for it in items])

    def evaluate(self, model, items, device):
        from wavlm.tasks.scoring import compute_eer

        emb = F.normalize(self.embed(model, items, device), dim=1).numpy()
        scores = emb @ emb.T  # numpy: float32 whatever autocast the loop evaluates under
        i, j = np.triu_indices(len(items), k=1)
        same = np.array([items[a].speaker == items[b].speaker for a, b in zip(i.tolist(), j.tolist())])
        if same.all() or not same.any():
            raise ValueError("x-vector validation trials need both same- and different-speaker pairs")
        eer, _ = compute_eer(scores[i, j], same.astype(int))
        return {"eer": float(eer)}


TASKS: dict[str, type[Task]] = {"ctc": CTCTask, "classify": ClassifyTask, "frames": FramesTask,
                                "xvector": XVectorTask}
