"""Learning-rate schedules as a factor of the peak rate at each optimizer step: linear warmup, then linear, cosine
or tri-stage decay (tri-stage as in fairseq's wav2vec 2.0 / HuBERT fine-tuning: warmup, hold, exponential decay)."""
from __future__ import annotations

import math

SCHEDULES = ("linear", "cosine", "tri-stage", "constant")


def lr_factor(step: int, total: int, warmup: int, schedule: str = "linear", final: float = 0.0,
              hold: float = 0.4, init: float = 0.0) -> float:
    """Factor in [0, 1] of the peak learning rate for optimizer step `step` (0-based) of `total`.

    warmup: steps of linear rise from `init` to 1. Then "linear" falls to `final` at `total`, "cosine" follows half a
    cosine down to `final`, "constant" stays at 1, and "tri-stage" holds 1 for `hold` of the steps after warmup and
    decays exponentially to `final` (which must then be > 0; fairseq uses 0.05) by `total`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if total < 1 or not 0 <= warmup <= total:
        raise ValueError(f"need total >= 1 and 0 <= warmup <= total steps, got total={total}, warmup={warmup}")
    if not 0.0 <= final <= 1.0 or not 0.0 <= hold <= 1.0 or not 0.0 <= init <= 1.0:
        raise ValueError(f"final, hold and init must be in [0, 1], got {final}, {hold}, {init}")
    if schedule == "tri-stage" and final <= 0.0:
        raise ValueError("the tri-stage schedule decays exponentially and needs final > 0 (e.g. 0.05)")
    if step < warmup:
        return init + (1.0 - init) * (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(total - warmup, 1)
    if schedule == "tri-stage":
        held = int(round(hold * span))
        if step < warmup + held:
            return 1.0
        decay = max(span - held, 1)
        progress = min((step - warmup - held) / decay, 1.0)
        return math.exp(math.log(final) * progress)
    progress = min((step - warmup) / span, 1.0)
    if schedule == "linear":
        return 1.0 - (1.0 - final) * progress
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
