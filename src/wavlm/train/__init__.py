"""Fine-tuning (and the loop pre-training shares): `finetune(FinetuneOptions(...))`, or `train(task, ...)` with a
Task of wavlm.train.tasks. Needs `pip install 'wavlm[train]'` (lhotse, matplotlib).

Names are resolved lazily, so that `wavlm --help` (which reads wavlm.train.schedule) does not import torch."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"FinetuneOptions": "loop", "TrainOptions": "loop", "TrainResult": "loop", "finetune": "loop",
            "train": "loop", "TASKS": "tasks", "Batch": "tasks", "Task": "tasks"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wavlm.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"wavlm.train.{module}"), name)
    globals()[name] = value
    return value
