"""`wavlm finetune`: train a CTC, classification, frame (diarization) or x-vector head (wavlm.train.loop); under
`torchrun --nproc-per-node N -m wavlm finetune ...` every rank trains on its share of each global batch."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "fine-tune a model: ctc (speech recognition), classify, frames (diarization) or xvector (speakers)"
DESCRIPTION = ("Fine-tune --model (a directory, Hub id, original .pt, or a config.json to train from scratch) on "
               "TRAIN, choosing the best checkpoint on VALID. TRAIN and VALID are JSONL manifests (\"audio\" and "
               "\"text\" / \"label\" / \"speaker\" / \"rttm\" as the task needs), lhotse CutSet files or folders of "
               "audio (x.txt beside x.wav = its transcript, the sub-folder name = its label). Writes DIR/best and "
               "DIR/last (transformers format: from_pretrained and the other wavlm commands load them), "
               "DIR/metrics.jsonl and DIR/curves.png; prints a JSON summary on stdout. Under torchrun every rank "
               "takes its share of each global batch (gloo on CPU, nccl on GPU).")
RUNS_MODEL = False
EPILOG = """examples:
  wavlm finetune --task ctc --model microsoft/wavlm-base-plus --train train.jsonl --valid valid.jsonl -o runs/asr
  torchrun --nproc-per-node 2 -m wavlm finetune --task classify --model DIR --train T --valid V -o runs/cls"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wavlm.cli.options import positive_int
    from wavlm.train.schedule import SCHEDULES

    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--task", required=True, choices=["ctc", "classify", "frames", "xvector"])
    p.add_argument("--model", "-m", required=True, help="directory, Hub id, original .pt, or config.json (scratch)")
    p.add_argument("--train", required=True, help="JSONL manifest, lhotse CutSet file or folder")
    p.add_argument("--valid", required=True, help="JSONL manifest, lhotse CutSet file or folder")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="run folder (best/, last/, metrics.jsonl)")
    g = p.add_argument_group("length and optimizer")
    g.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (wins over --epochs)")
    g.add_argument("--epochs", type=positive_int, default=None, help="default 10 when --max-steps is not given")
    g.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of the head (default 1e-4)")
    g.add_argument("--encoder-lr", type=float, default=None, help="peak learning rate of the encoder (default --lr)")
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--schedule", choices=SCHEDULES, default="linear")
    g.add_argument("--warmup", type=float, default=0.1, help="< 1: fraction of the steps, else steps (default 0.1)")
    g.add_argument("--final-lr", type=float, default=0.0, help="factor of the peak at the end (tri-stage: 0.05)")
    g.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch (default 60)")
    g.add_argument("--accumulate", type=positive_int, default=1, help="batches per optimizer step and rank")
    g.add_argument("--clip-norm", type=float, default=1.0, help="gradient norm clip, 0 = none (default 1)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 where the hardware has it, fp16 with a scaler on older CUDA, else fp32")
    g = p.add_argument_group("what trains, regularisation")
    g.add_argument("--train-feature-encoder", action="store_true",
                   help="also train the conv feature encoder (always trained from a config.json)")
    g.add_argument("--freeze-encoder-steps", type=int, default=0, help="train only the head for the first N steps")
    g.add_argument("--mask-time-prob", type=float, default=None, help="SpecAugment time masking (default: config)")
    g.add_argument("--mask-time-length", type=positive_int, default=None)
    g.add_argument("--mask-feature-prob", type=float, default=None)
    g.add_argument("--mask-feature-length", type=positive_int, default=None)
    g.add_argument("--layerdrop", type=float, default=None, help="default: the config's")
    g.add_argument("--dropout", type=float, default=None, help="all dropouts at once (default: the config's)")
    g.add_argument("--activation-checkpointing", action="store_true", help="recompute layers in backward")
    g = p.add_argument_group("data and tasks")
    g.add_argument("--max-seconds", type=float, default=20.0,
                   help="ctc drops longer utterances, the other tasks crop them (default 20)")
    g.add_argument("--crop-seconds", type=float, default=None,
                   help="random training crops (default: classify / xvector 3 s, frames 8 s)")
    g.add_argument("--tokenizer", default=None, help="ctc: a tokenizer directory (default: built from TRAIN text)")
    g.add_argument("--regression", action="store_true", help="classify: numeric labels, mean squared error")
    g.add_argument("--num-speakers", type=positive_int, default=None, help="frames: outputs (default: from TRAIN)")
    g.add_argument("--frames-loss", choices=["pit", "argmax-ce"], default="pit",
                   help="frames: permutation-invariant BCE, or transformers' argmax cross-entropy")
    g = p.add_argument_group("run")
    g.add_argument("--eval-every", type=positive_int, default=None, help="steps (default: once per epoch)")
    g.add_argument("--save-every", type=positive_int, default=None, help="steps between last/ checkpoints")
    g.add_argument("--resume", action="store_true", help="continue from DIR/last exactly where it stopped")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    g.add_argument("--no-plot", action="store_true", help="no curves.png")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from wavlm.cli.report import UsageError
    from wavlm.train import FinetuneOptions, finetune

    options = FinetuneOptions(
        task=args.task, model=args.model, train=args.train, valid=args.valid, output_dir=args.output,
        max_steps=args.max_steps, epochs=args.epochs, lr=args.lr, encoder_lr=args.encoder_lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup=args.warmup, final_lr=args.final_lr,
        batch_seconds=args.batch_seconds, accumulate=args.accumulate, clip_norm=args.clip_norm or None,
        precision=args.precision, freeze_feature_encoder=False if args.train_feature_encoder else None,
        freeze_encoder_steps=args.freeze_encoder_steps, mask_time_prob=args.mask_time_prob,
        mask_time_length=args.mask_time_length, mask_feature_prob=args.mask_feature_prob,
        mask_feature_length=args.mask_feature_length, layerdrop=args.layerdrop, dropout=args.dropout,
        activation_checkpointing=args.activation_checkpointing, eval_every=args.eval_every,
        save_every=args.save_every, seed=args.seed, device=None if args.device in (None, "auto") else args.device,
        resume=args.resume, progress=not args.quiet, plot=not args.no_plot, max_seconds=args.max_seconds,
        crop_seconds=args.crop_seconds, tokenizer=args.tokenizer, regression=args.regression,
        num_speakers=args.num_speakers, frames_loss=args.frames_loss)
    try:
        result = finetune(options)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise UsageError(str(e)) from None
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        summary = {"output": str(result.output_dir), "steps": result.steps, "best": result.best,
                   "last": result.last, "skipped_steps": result.skipped_steps}
        print(json.dumps(summary), file=sys.stdout, flush=True)
    return 0
