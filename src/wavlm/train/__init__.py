"""Fine-tuning (and the loop pre-training shares): `finetune(FinetuneOptions(...))`, or `train(task, ...)` with a
Task of wavlm.train.tasks. Needs `pip install 'wavlm[train]'` (lhotse, matplotlib)."""
from __future__ import annotations

from .loop import FinetuneOptions, TrainOptions, TrainResult, finetune, train
from .tasks import TASKS, Batch, Task

__all__ = ["FinetuneOptions", "TrainOptions", "TrainResult", "finetune", "train", "TASKS", "Batch", "Task"]
