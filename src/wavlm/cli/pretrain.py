"""`wavlm pretrain targets ...` (k-means frame labels of a corpus) and `wavlm pretrain ...` (masked prediction of
them with utterance mixing, from a config.json or continued from any model source) on the fine-tuning loop
(wavlm.pretrain, wavlm.train)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from wavlm.cli.options import positive_int
from wavlm.cli.report import UsageError, log

HELP = "pre-train WavLM: k-means targets, then masked prediction with utterance mixing"
DESCRIPTION = """Two steps (WavLM / HuBERT pre-training):
  wavlm pretrain targets --train TRAIN [--model SOURCE --layer L] --clusters K [-o TARGETS]
      MFCC + deltas (or layer L of a model) -> k-means over a sample -> one label per model frame, stored in a
      folder beside the manifest (default TRAIN_DIR/targets-km<K>[-L<L>]). Under torchrun each rank extracts a share.
  wavlm pretrain --model SOURCE|config.json --train TRAIN --targets TARGETS -o DIR [--max-steps N] [--mix-prob P]
      [--resume]
      from scratch (a config.json) or continued from any model source, keeping its architecture. DIR/best and
      DIR/last are WavLMModel directories (transformers loads them) with the prediction head beside them.
Under torchrun the global batch is shared over the ranks (same result as one process accumulating)."""
RUNS_MODEL = False


def _targets_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help="JSONL manifest, lhotse cuts file or audio folder")
    p.add_argument("--model", default=None, help="features from this model's layer --layer (any model source); "
                   "default: 39-dim MFCC with deltas")
    p.add_argument("--layer", type=int, default=None, help="hidden-state layer of --model (0 = encoder input)")
    p.add_argument("--config", default=None, help="MFCC targets: config.json of the model to be trained (its conv "
                   "stack sets the frame count; default: the released 320-sample stack)")
    p.add_argument("--clusters", "-k", type=positive_int, required=True, help="k-means clusters (100 for MFCC, "
                   "500 for layers, in the released recipes)")
    p.add_argument("-o", "--output", default=None, help="targets folder (default: beside the manifest)")
    p.add_argument("--sample-fraction", type=float, default=0.1, help="utterances the k-means is fitted on "
                   "(default 0.1, as fairseq)")
    p.add_argument("--min-sample-seconds", type=float, default=600.0,
                   help="fit on at least this much audio when the corpus has it (default 600)")
    p.add_argument("--kmeans", choices=["sklearn", "torch"], default="sklearn",
                   help="sklearn MiniBatchKMeans (CPU) or the torch k-means (any --device)")
    p.add_argument("--n-init", type=positive_int, default=20, help="sklearn k-means++ restarts (default 20)")
    p.add_argument("--max-iter", type=positive_int, default=100)
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="layer features: normalise the audio (default: the source's preprocessor_config.json)")
    p.add_argument("--device", default="cpu", help="model and torch k-means device (default cpu)")
    p.add_argument("--seed", type=int, default=0)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and model")
    g.add_argument("--model", "-m", help="config.json (from scratch) or any model source (continued pre-training)")
    g.add_argument("--train", help="JSONL manifest, lhotse cuts file or audio folder")
    g.add_argument("--valid", default=None, help="validation data (default: up to 64 training items, fresh masks)")
    g.add_argument("--targets", help="targets folder from `wavlm pretrain targets`")
    g.add_argument("-o", "--output", help="run folder: best/, last/, metrics.jsonl, curves.png")
    g.add_argument("--noise", nargs="*", default=[], help="noise recordings (files or folders) for noise mixing")
    g = p.add_argument_group("training")
    g.add_argument("--max-steps", type=positive_int, default=None)
    g.add_argument("--epochs", type=positive_int, default=None)
    g.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4, HuBERT Base)")
    g.add_argument("--warmup", type=float, default=0.08, help="fraction of steps (< 1) or steps (default 0.08)")
    g.add_argument("--schedule", default="linear", choices=["linear", "cosine", "tri-stage", "constant"])
    g.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per micro-batch")
    g.add_argument("--accumulate", type=positive_int, default=1)
    g.add_argument("--clip-norm", type=float, default=10.0)
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--max-crop-seconds", type=float, default=15.625, help="longest training crop (default 250k "
                   "samples)")
    g.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="zero-mean unit-variance audio (default: the source's preprocessor_config.json, else off)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default=None)
    g.add_argument("--eval-every", type=positive_int, default=None)
    g.add_argument("--save-every", type=positive_int, default=None)
    g.add_argument("--log-every", type=positive_int, default=10)
    g.add_argument("--resume", action="store_true", help="continue the run in -o from last/ exactly")
    g.add_argument("-q", "--quiet", action="store_true")
    g.add_argument("--no-plot", action="store_true")
    g = p.add_argument_group("method (defaults: the released WavLM Base recipe)")
    g.add_argument("--mix-prob", type=float, default=0.2, help="utterance mixing probability (0 = HuBERT)")
    g.add_argument("--noise-prob", type=float, default=0.0, help="share of mixed utterances that get noise")
    g.add_argument("--mask-prob", type=float, default=0.8)
    g.add_argument("--mask-length", type=positive_int, default=10)
    g.add_argument("--final-dim", type=positive_int, default=256)
    g.add_argument("--unmasked-weight", type=float, default=0.0)
    g.add_argument("--feature-penalty", type=float, default=10.0)
    g.add_argument("--feature-grad-mult", type=float, default=0.1)
    g.add_argument("--layerdrop", type=float, default=None, help="default: the model's config")
    g.add_argument("--dropout", type=float, default=None, help="all dropouts at once (default: the config's)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    _train_arguments(p)
    sub = p.add_subparsers(dest="pretrain_command", metavar="targets")
    t = sub.add_parser("targets", help="k-means frame labels of a corpus", description=DESCRIPTION.split("\n")[1])
    _targets_arguments(t)


def run(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "pretrain_command", None) == "targets":
            return run_targets(args)
        return run_train(args)
    except (OSError, ValueError, KeyError, ImportError) as e:
        raise UsageError(str(e)) from None


def _default_targets_dir(train: str, clusters: int, layer: int | None) -> Path:
    path = Path(train)
    folder = path if path.is_dir() else path.parent
    return folder / f"targets-km{clusters}{'' if layer is None else f'-L{layer}'}"


def run_targets(args: argparse.Namespace) -> int:
    from wavlm.pretrain.targets import FrameGeometry, LayerExtractor, MfccExtractor, compute_targets

    if args.clusters < 2:
        raise UsageError("--clusters must be at least 2")
    if (args.model is None) != (args.layer is None):
        raise UsageError("--model and --layer go together (layer features); without both, MFCC targets")
    if args.model is not None and args.config is not None:
        raise UsageError("--config sets the frames of MFCC targets; layer targets take them from --model")
    if args.model is not None:
        import torch

        from wavlm import WavLMModel
        from wavlm.cli.loader import resolve_device

        model = WavLMModel.from_pretrained(args.model).to(resolve_device(args.device))
        normalize = args.normalize
        if normalize is None:
            pre = Path(args.model) / "preprocessor_config.json"
            if pre.is_file():
                import json

                normalize = bool(json.loads(pre.read_text(encoding="utf-8")).get("do_normalize", False))
            else:
                normalize = False
        extractor = LayerExtractor(model, args.layer, normalize=normalize, source=args.model)
        torch.set_grad_enabled(False)
    else:
        geometry = FrameGeometry()
        if args.config is not None:
            from wavlm import WavLMConfig

            geometry = FrameGeometry.of(WavLMConfig.from_json_file(args.config))
        extractor = MfccExtractor(geometry)
    out = Path(args.output) if args.output else _default_targets_dir(args.train, args.clusters, args.layer)
    compute_targets(args.train, out, args.clusters, extractor, sample_fraction=args.sample_fraction,
                    min_sample_seconds=args.min_sample_seconds, backend=args.kmeans, seed=args.seed,
                    n_init=args.n_init, max_iter=args.max_iter, device=args.device if args.kmeans == "torch" else
                    "cpu", log=log)
    print(out)
    return 0


def _noise_files(paths: list[str]) -> list:
    from wavlm.audio import load_audio

    files = []
    for p in map(Path, paths):
        files += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".wav", ".flac", ".ogg")) if p.is_dir() \
            else [p]
    if paths and not files:
        raise UsageError(f"--noise {' '.join(paths)}: no audio files")
    return [load_audio(f, sampling_rate=16000)[0] for f in files]


def run_train(args: argparse.Namespace) -> int:
    from wavlm.pretrain.mixing import MixingConfig
    from wavlm.pretrain.targets import load_targets
    from wavlm.pretrain.task import PretrainTask
    from wavlm.train import TrainOptions, train
    from wavlm.train.data import load_items

    missing = [f"--{n}" for n in ("model", "train", "targets", "output") if not getattr(args, n)]
    if missing:
        raise UsageError(f"pre-training needs {', '.join(missing)} (or `wavlm pretrain targets ...` first)")
    noises = _noise_files(args.noise)
    if args.noise_prob > 0 and not noises:
        raise UsageError("--noise-prob needs --noise recordings")
    mixing = MixingConfig(prob=args.mix_prob, noise_prob=args.noise_prob) if args.mix_prob > 0 else None
    head = {"final_dim": args.final_dim, "mask_prob": args.mask_prob, "mask_length": args.mask_length,
            "unmasked_weight": args.unmasked_weight, "feature_penalty": args.feature_penalty,
            "feature_grad_mult": args.feature_grad_mult}
    task = PretrainTask(load_targets(args.targets), head=head, mixing=mixing, noises=noises,
                        normalize=args.normalize, max_crop_samples=int(args.max_crop_seconds * 16000),
                        eval_seed=args.seed, log=log)
    train_items = load_items(args.train)
    if args.valid:
        valid_items = load_items(args.valid)
    else:
        step = max(1, len(train_items) // 64)
        valid_items = train_items[::step][:64]
        log(f"no --valid: validating on {len(valid_items)} training items (fresh masks)")
    options = TrainOptions(
        output_dir=args.output, max_steps=args.max_steps, epochs=args.epochs, lr=args.lr, betas=(0.9, 0.98),
        eps=1e-6, weight_decay=0.01, schedule=args.schedule, warmup=args.warmup, batch_seconds=args.batch_seconds,
        accumulate=args.accumulate, clip_norm=args.clip_norm, precision=args.precision,
        freeze_feature_encoder=False, layerdrop=args.layerdrop, dropout=args.dropout, eval_every=args.eval_every,
        save_every=args.save_every, log_every=args.log_every, seed=args.seed, device=args.device,
        resume=args.resume, progress=False, plot=not args.no_plot)
    main = os.environ.get("RANK", "0") in ("", "0")

    def report(step: int, record: dict) -> None:
        if main and not args.quiet and step % args.log_every == 0:
            loss = "skipped" if record["loss"] is None else f"{record['loss']:.4f}"
            log(f"step {step}: loss {loss}  masked acc {record.get('masked_accuracy', 0):.4f}  unmasked acc "
                f"{record.get('unmasked_accuracy', 0):.4f}  mixed {record.get('mixed_fraction', 0):.2f}  "
                f"{record['audio_seconds_per_second']:.1f} audio s/s")

    result = train(task, args.model, train_items, valid_items, options, callback=report)
    if result.last is not None:
        print("  ".join(f"{k} {v:.4f}" for k, v in result.last.items()))
    return 0
