"""Fine-tuning (and the loop pre-training shares): `finetune(FinetuneOptions(...))`, or `train(task, ...)` with a
Task of wavlm.train.tasks. Needs `pip install 'wavlm[train]'` (lhotse, matplotlib).

Names are resolved lazily, so that `wavlm --help` (which reads wavlm.train.schedule) does not import torch."""
from __future__ import annotations

from wavlm._lazy import lazy_getattr

_EXPORTS = {"FinetuneOptions": "loop", "TrainOptions": "loop", "TrainResult": "loop", "finetune": "loop",
            "train": "loop", "TASKS": "tasks", "Batch": "tasks", "Task": "tasks"}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
