"""The training loop, top to bottom in one file: options, model and optimizer set-up, the step (gradient
accumulation, global-batch loss normalisation, non-finite skip, clipping, mixed precision), evaluation,
checkpoints, resume, logs. A Task (wavlm.train.tasks) supplies the model, batches, loss and metric.

    options = FinetuneOptions(task="ctc", model="config.json", train="train.jsonl", valid="valid.jsonl",
                              output_dir="runs/ctc", max_steps=500)
    result = finetune(options)          # or: train(task, source, train_items, valid_items, options)
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import checkpoint, distributed
from .data import Item, Sampler, load_items
from .schedule import SCHEDULES, lr_factor
from .tasks import TASKS, Task


@dataclass
class TrainOptions:
    """How to train (every task). Steps are optimizer steps; seconds are seconds of 16 kHz audio."""
    output_dir: str = "runs/wavlm"
    # length: max_steps wins over epochs; neither = 10 epochs
    max_steps: int | None = None
    epochs: int | None = None
    # optimizer: AdamW; the encoder (the wavlm. parameters) may take its own learning rate
    lr: float = 1e-4
    encoder_lr: float | None = None  # None = lr
    weight_decay: float = 0.01  # on matrices only (not biases, norms, embeddings of size 1-D)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    schedule: str = "linear"  # linear | cosine | tri-stage | constant
    warmup: float = 0.1  # < 1: fraction of the steps; >= 1: steps
    final_lr: float = 0.0  # factor of the peak at the last step (tri-stage: > 0, e.g. 0.05)
    # batches: bounded by padded seconds per micro-batch, accumulate micro-batches per step and rank
    batch_seconds: float = 60.0
    num_buckets: int = 10
    accumulate: int = 1
    clip_norm: float | None = 1.0
    precision: str = "auto"  # auto (bf16 where native, fp16 + scaler on CUDA without bf16, else fp32) | fp32 | bf16 | fp16
    # what trains: the conv feature encoder is frozen unless told; the whole encoder for the first N steps
    freeze_feature_encoder: bool | None = None  # None: frozen for a pretrained source, trained from a config.json
    freeze_encoder_steps: int = 0
    # regularisation written into the model's config (None keeps the source's value)
    mask_time_prob: float | None = None
    mask_time_length: int | None = None
    mask_feature_prob: float | None = None
    mask_feature_length: int | None = None
    layerdrop: float | None = None
    dropout: float | None = None  # hidden, attention, activation, feature-projection and final dropout at once
    config: dict[str, Any] = field(default_factory=dict)  # any other config values
    activation_checkpointing: bool = False
    # bookkeeping
    eval_every: int | None = None  # steps; None = once per epoch (and always at the end)
    save_every: int | None = None  # steps between `last` checkpoints; None = only at evaluations and the end
    log_every: int = 10
    seed: int = 0
    device: str | None = None
    resume: bool = False
    progress: bool = True
    plot: bool = True


@dataclass
class FinetuneOptions(TrainOptions):
    """A fine-tuning run: task, model source (a config.json trains from scratch), data, and task options."""
    task: str = "ctc"  # ctc | classify | frames | xvector
    model: str = ""
    train: str = ""  # JSONL manifest, lhotse CutSet file or folder
    valid: str = ""
    max_seconds: float = 20.0  # longer training items: ctc drops them, the others crop them
    crop_seconds: float | None = None  # random training crops (classify / xvector 3 s, frames 8 s by default)
    tokenizer: str | None = None  # ctc: a tokenizer directory instead of a vocabulary from the training text
    regression: bool = False  # classify: one output, mean squared error on numeric labels
    num_speakers: int | None = None  # frames: outputs (default: most speakers in a training recording)
    frames_loss: str = "pit"  # frames: pit | argmax-ce (transformers' loss)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    best: dict[str, float] | None
    last: dict[str, float] | None
    skipped_steps: int


def finetune(options: FinetuneOptions, callback: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Fine-tune `options.model` on `options.task`; writes best/, last/, metrics.jsonl and curves.png under
    options.output_dir. callback(step, record) runs after every step (raising KeyboardInterrupt there stops the
    run as Ctrl-C does: `last` is written and training can --resume)."""
    if options.task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {options.task!r}")
    for name in ("model", "train", "valid"):
        if not getattr(options, name):
            raise ValueError(f"finetune needs options.{name}")
    common = {"max_seconds": options.max_seconds}
    if options.crop_seconds is not None:
        common["crop_seconds"] = options.crop_seconds
    task: Task = {
        "ctc": lambda: TASKS["ctc"](tokenizer_source=options.tokenizer, **common),
        "classify": lambda: TASKS["classify"](regression=options.regression, **common),
        "frames": lambda: TASKS["frames"](num_speakers=options.num_speakers, loss=options.frames_loss, **common),
        "xvector": lambda: TASKS["xvector"](**common),
    }[options.task]()
    return train(task, options.model, load_items(options.train), load_items(options.valid), options, callback)


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = float32)."""
    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    if name == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs a CUDA device (it uses a gradient scaler); use bf16 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _config_overrides(o: TrainOptions) -> dict[str, Any]:
    values = {"mask_time_prob": o.mask_time_prob, "mask_time_length": o.mask_time_length,
              "mask_feature_prob": o.mask_feature_prob, "mask_feature_length": o.mask_feature_length,
              "layerdrop": o.layerdrop}
    if o.dropout is not None:
        values.update({k: o.dropout for k in ("hidden_dropout", "attention_dropout", "activation_dropout",
                                              "feat_proj_dropout", "final_dropout")})
    return {**{k: v for k, v in values.items() if v is not None}, **o.config}


def _param_groups(model: torch.nn.Module, o: TrainOptions) -> list[dict[str, Any]]:
    """AdamW groups: (encoder | head) x (decayed matrices | undecayed vectors), each with its peak `base_lr`."""
    prefix = getattr(model, "base_model_prefix", "wavlm") + "."
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith(prefix), p.dim() >= 2), []).append(p)
    lr_of = {True: o.encoder_lr if o.encoder_lr is not None else o.lr, False: o.lr}
    return [{"params": ps, "base_lr": lr_of[enc], "lr": lr_of[enc], "weight_decay": o.weight_decay if decay else 0.0,
             "encoder": enc} for (enc, decay), ps in sorted(groups.items())]


def _layerdrop_seed(seed: int, step: int, micro: int) -> int:
    """The same on every rank: all ranks skip the same layers at a micro-step."""
    return (seed * 1_000_003 + step * 101 + micro) % (2**63)


def train(task: Task, source: str, train_items: list[Item], valid_items: list[Item], o: TrainOptions,
          callback: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train task's model from `source` on train_items, validating on valid_items (see finetune)."""
    if o.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {o.schedule!r}")
    if o.accumulate < 1 or o.batch_seconds <= 0:
        raise ValueError(f"accumulate must be >= 1 and batch_seconds > 0, got {o.accumulate} and {o.batch_seconds}")
    ctx = distributed.setup(o.device)
    out = Path(o.output_dir)
    log = task.log if ctx.main else (lambda message: None)
    task.log = log
    try:
        return _run(task, source, train_items, valid_items, o, ctx, out, log, callback)
    finally:
        distributed.cleanup(ctx)


def _run(task, source, train_items, valid_items, o, ctx, out, log, callback) -> TrainResult:
    # ---- data and model (identical initialisation on every rank: the same seed before building)
    train_items, valid_items = task.prepare(train_items, valid_items)
    torch.manual_seed(o.seed)
    model = task.build_model(source, _config_overrides(o))
    train_items, valid_items = task.check_fit(train_items, valid_items)
    model.to(ctx.device)
    scratch = Path(source).suffix == ".json"
    if o.freeze_feature_encoder or (o.freeze_feature_encoder is None and not scratch):
        model.freeze_feature_encoder()
    if o.activation_checkpointing:
        model.gradient_checkpointing_enable()
    encoder = model.base_model.encoder
    encoder_params = [p for n, p in model.named_parameters() if n.startswith(model.base_model_prefix + ".")
                      and p.requires_grad]
    groups = _param_groups(model, o)
    optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)
    amp_dtype = _precision(o.precision, ctx.device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    autocast = (lambda: torch.autocast(ctx.device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext

    # ---- steps: a global batch order per epoch; each step takes world_size * accumulate batches of it
    sampler = Sampler([it.duration for it in train_items], o.batch_seconds, o.num_buckets, True, o.seed,
                      ctx.world_size, o.accumulate)
    if sampler.steps_per_epoch(0) == 0:
        raise ValueError(f"the training data gives {len(sampler.epoch_batches(0))} batches of {o.batch_seconds:g} s, "
                         f"fewer than one step needs ({ctx.world_size} ranks x {o.accumulate} accumulated); lower "
                         "batch_seconds or add data")
    epochs = o.epochs if o.epochs is not None else (None if o.max_steps is not None else 10)
    total = o.max_steps if o.max_steps is not None else sum(sampler.steps_per_epoch(e) for e in range(epochs))
    warmup = int(o.warmup * total) if o.warmup < 1 else int(o.warmup)
    eval_every = o.eval_every or sampler.steps_per_epoch(0)
    log(f"{task.name}: {len(train_items)} training / {len(valid_items)} validation items, {total} steps "
        f"({sampler.steps_per_epoch(0)} per epoch), {ctx.world_size} rank(s) on {ctx.device}, "
        f"precision {str(amp_dtype).replace('torch.', '') if amp_dtype else 'float32'}, "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters")

    # ---- random streams of this rank (dropout, SpecAugment): seeded per rank, restored on resume
    torch.manual_seed(o.seed + 1 + ctx.rank)
    np.random.seed((o.seed + 1 + ctx.rank) % 2**32)
    random.seed(o.seed + 1 + ctx.rank)

    # ---- state, possibly resumed
    state = {"step": 0, "epoch": 0, "epoch_step": 0, "best": None, "best_step": None, "skipped_steps": 0,
             "infinite": 0.0, "last_eval": None}
    if o.resume and (out / "last" / checkpoint.STATE_NAME).is_file():
        saved = checkpoint.load_state(out / "last")
        if saved["world_size"] != ctx.world_size:
            raise ValueError(f"--resume: the run was written by {saved['world_size']} rank(s); resume it with as many "
                             f"(this run has {ctx.world_size})")
        getattr(task, "load_weights", checkpoint.load_weights)(model, out / "last")  # pre-training: + head
        optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        state.update(saved["loop"])
        checkpoint.set_rng_state(saved["rng"][ctx.rank])
        log(f"resumed from {out / 'last'} at step {state['step']}")
        if ctx.main:
            _truncate_log(out / "metrics.jsonl", state["step"])
    elif o.resume:
        log(f"--resume: no checkpoint in {out / 'last'} yet; starting from the beginning")
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "options.json").write_text(json.dumps(asdict(o), indent=2, default=str) + "\n")
    rng_at_step = checkpoint.rng_state()  # the RNG as the next step will find it (what `last` records)

    def save_last() -> None:
        rngs = distributed.gather_objects(ctx, rng_at_step)
        if ctx.main:
            def write(d: Path) -> None:
                task.save(model, d)
                checkpoint.save_state(d, {"optimizer": optimizer.state_dict(), "loop": dict(state), "rng": rngs,
                                          "world_size": ctx.world_size,
                                          "scaler": scaler.state_dict() if scaler is not None else {}})
            checkpoint.write_atomically(out / "last", write)
        distributed.barrier(ctx)

    def evaluate() -> dict[str, float]:
        metrics = None
        if ctx.main:
            model.eval()
            with autocast():
                metrics = task.evaluate(model, valid_items, ctx.device)
            model.train()
            metric = metrics[task.metric]
            better = state["best"] is None or (metric > state["best"] if task.higher_is_better else
                                               metric < state["best"])
            if better:
                state["best"], state["best_step"] = metric, state["step"]
                checkpoint.write_atomically(out / "best", lambda d: task.save(model, d))
            _append(out / "metrics.jsonl", {"step": state["step"], "epoch": state["epoch"],
                                            **{f"valid_{k}": v for k, v in metrics.items()}})
            log(f"step {state['step']}: " + "  ".join(f"valid {k} {v:.4f}" for k, v in metrics.items())
                + ("  (best)" if better else ""))
        metrics = distributed.broadcast_object(ctx, metrics)
        state["last_eval"] = metrics
        state["best"] = distributed.broadcast_object(ctx, state["best"])
        return metrics

    bar = _progress(total, state["step"], o.progress and ctx.main)
    model.train()
    batches, batches_epoch = None, None
    try:
        while state["step"] < total:
            # ---- this step's micro-batches (a new epoch when this one is used up)
            if epochs is not None and state["epoch"] >= epochs:
                break
            if batches_epoch != state["epoch"]:
                batches, batches_epoch = sampler.epoch_batches(state["epoch"]), state["epoch"]
            if state["epoch_step"] >= len(batches) // (ctx.world_size * o.accumulate):
                state["epoch"], state["epoch_step"] = state["epoch"] + 1, 0
                continue
            started = time.perf_counter()
            step = state["step"]
            per_step = ctx.world_size * o.accumulate
            micro = []
            for a, indices in enumerate(sampler.step_batches(batches, state["epoch_step"], ctx.rank)):
                global_index = state["epoch_step"] * per_step + a * ctx.world_size + ctx.rank
                crops = np.random.default_rng([o.seed, state["epoch"], global_index])
                micro.append(task.collate([train_items[i] for i in indices], crops))
            count, seconds = distributed.sum_floats(ctx, [sum(b.count for b in micro), sum(b.seconds for b in micro)])

            # ---- learning rate and what is frozen
            factor = lr_factor(step, total, warmup, o.schedule, o.final_lr)
            frozen = step < o.freeze_encoder_steps
            for p in encoder_params:
                p.requires_grad_(not frozen)
            for g in optimizer.param_groups:
                g["lr"] = 0.0 if (frozen and g["encoder"]) else g["base_lr"] * factor

            # ---- forward / backward over the micro-batches; the loss is a sum over the global batch / count
            loss_sum, bad, extras = 0.0, 0, {}
            for a, batch in enumerate(micro):
                encoder.layerdrop_generator = torch.Generator().manual_seed(_layerdrop_seed(o.seed, step, a))
                with autocast():
                    loss, logs = task.loss(model, batch.to(ctx.device))
                if not torch.isfinite(loss):
                    bad += 1
                    continue
                scaled = loss / count
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                loss_sum += float(loss.detach())
                for k, v in logs.items():
                    extras[k] = extras.get(k, 0.0) + v
            keys = sorted(extras)
            totals = distributed.sum_floats(ctx, [loss_sum, float(bad)] + [extras[k] for k in keys])
            loss_sum, bad = totals[0], int(totals[1])
            extras = dict(zip(keys, totals[2:]))
            distributed.sum_gradients(ctx, model.parameters())

            # ---- optimizer step, unless some rank had a non-finite loss or the gradient is not finite
            grad_norm = float("nan")
            if bad == 0:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                params = [p for p in model.parameters() if p.grad is not None]
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, o.clip_norm if o.clip_norm else math.inf))
                if scaler is not None:
                    scaler.step(optimizer)  # skips the update itself when the unscaled gradient is not finite
                    scaler.update()
                elif math.isfinite(grad_norm):
                    optimizer.step()
                else:
                    bad = 1
            optimizer.zero_grad(set_to_none=True)
            if bad:
                state["skipped_steps"] += 1
            state["infinite"] += extras.pop("infinite", 0.0)
            state["step"] += 1
            state["epoch_step"] += 1
            rng_at_step = checkpoint.rng_state()

            # ---- log, evaluate, checkpoint
            elapsed = time.perf_counter() - started
            record = {"step": state["step"], "epoch": state["epoch"],
                      "loss": loss_sum / count if count and not bad else None,
                      "lr": optimizer.param_groups[-1]["lr"], "grad_norm": grad_norm if math.isfinite(grad_norm) else None,
                      "audio_seconds_per_second": seconds / max(elapsed, 1e-9),
                      "skipped_steps": state["skipped_steps"],
                      **{k: v / count for k, v in extras.items()}}
            if state["infinite"]:
                record["infinite_losses"] = state["infinite"]
            if ctx.main:
                _append(out / "metrics.jsonl", record)
            bar(record, state["step"] % o.log_every == 0 or state["step"] == total, log)
            done = state["step"] >= total
            if done or state["step"] % eval_every == 0:
                evaluate()
                save_last()
            elif o.save_every and state["step"] % o.save_every == 0:
                save_last()
            if callback is not None:
                callback(state["step"], record)
    except KeyboardInterrupt:
        log(f"interrupted at step {state['step']}: writing {out / 'last'} (continue with --resume)")
        save_last()
        raise
    if state["last_eval"] is None or state["step"] % eval_every != 0 and state["step"] < total:
        evaluate()
        save_last()
    bar.close()
    if ctx.main and o.plot:
        _plot(out / "metrics.jsonl", out / "curves.png", task.metric, log)
    best = {task.metric: state["best"], "step": state["best_step"]} if state["best"] is not None else None
    return TrainResult(out, state["step"], best, state["last_eval"], state["skipped_steps"])


# ------------------------------------------------------------------------------------------------ logs


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Keep the records up to `step` (those of a resumed run's lost steps would be written again)."""
    if path.is_file():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


class _progress:
    """tqdm on stderr when available (loss, lr, audio seconds per second), else a line every log_every steps."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=start, desc="train", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def __call__(self, record: dict[str, Any], line: bool, log: Callable[[str], None]) -> None:
        loss = "skipped" if record["loss"] is None else f"{record['loss']:.4f}"
        text = f"loss {loss}  lr {record['lr']:.2e}  {record['audio_seconds_per_second']:.1f} audio s/s"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.enabled and line:
            log(f"step {record['step']}: {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _plot(metrics: Path, png: Path, metric: str, log: Callable[[str], None]) -> None:
    """Training loss and the validation metric against the step, as a PNG (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no curves.png: matplotlib is not installed (pip install 'wavlm[train]')")
        return
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    valid = [(r["step"], r[f"valid_{metric}"]) for r in records if f"valid_{metric}" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        left.plot(*zip(*train))
    left.set(xlabel="step", ylabel="training loss", yscale="log" if train and min(v for _, v in train) > 0 else
             "linear")
    if valid:
        right.plot(*zip(*valid), marker="o")
    right.set(xlabel="step", ylabel=f"validation {metric}")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
