"""`wavlm classify`: the top-k labels of an utterance classification model, with their probabilities."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wavlm.cli import executor
from wavlm.cli.options import add_inputs, positive_int
from wavlm.cli.report import UsageError
from wavlm.tasks.manifest import Input

HELP = "utterance labels with probabilities"
DESCRIPTION = ("Top-k labels of a sequence-classification model. Formats: json per input; txt (id, then "
               "label:probability pairs, tab-separated) or jsonl for the run.")
RUNS_MODEL = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
    p.add_argument("--top-k", type=positive_int, default=5)
    p.add_argument("--format", choices=["txt", "json", "jsonl"], default=None)


@dataclass(frozen=True)
class ClassifyOptions:
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {self.top_k}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ClassifyOptions":
        return cls(args.top_k)


def run(args: argparse.Namespace) -> int:
    return executor.run(ClassifyTask(ClassifyOptions.from_args(args)), args)


class ClassifyTask(executor.Task):
    """Utterance classification: the top-k labels with their probabilities (softmax; sigmoid for multi-label
    models; the raw value for regression)."""
    name = "classify"
    model_class = "WavLMForSequenceClassification"
    item_formats = ("json",)
    run_formats = ("txt", "jsonl")
    default_run_format = "txt"

    def __init__(self, options: ClassifyOptions = ClassifyOptions()) -> None:
        super().__init__(options)

    def run_batch(self, wavs: list[Any]) -> list[dict[str, Any]]:
        config = self.rt.config
        values, mask = self.rt.inputs(wavs)
        logits = self.rt.forward(values, attention_mask=mask).logits.float()
        if config.problem_type == "regression" or (config.problem_type is None and config.num_labels == 1):
            return [{"labels": [{"label": config.id2label[0], "score": round(float(v), 6)}]} for v in logits[:, 0]]
        probs = logits.sigmoid() if config.problem_type == "multi_label_classification" else logits.softmax(-1)
        k = min(self.options.top_k, probs.shape[-1])
        top = probs.topk(k, dim=-1)
        return [{"labels": [{"label": config.id2label[int(i)], "score": round(float(p), 6)}
                            for p, i in zip(ps, ids)]} for ps, ids in zip(top.values, top.indices)]

    def write_item(self, file: IO[bytes], item: Input, result: dict[str, Any], fmt: str) -> None:
        file.write((json.dumps({"id": item.id, **result}, ensure_ascii=False) + "\n").encode("utf-8"))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "txt":
            return "".join(f"{i.id}\t" + "\t".join(f"{x['label']}:{x['score']:.4f}" for x in r["labels"]) + "\n"
                           for i, r in pairs)
        return super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "txt":
            out = {}
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                uid, *fields = line.split("\t")
                labels = []
                for f in fields:
                    label, colon, score = f.rpartition(":")
                    try:
                        value = float(score) if colon else float("nan")
                    except ValueError:
                        value = float("nan")
                    if not value == value:
                        raise ValueError(f"line {n}: {f!r} is not label:score")
                    labels.append({"label": label, "score": value})
                if not uid or not labels:
                    raise ValueError(f"line {n}: expected an id and label:score fields, tab-separated")
                out[uid] = {"labels": labels}
            return out
        return super().load_run(path, fmt)
