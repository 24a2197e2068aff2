"""The tiny recipe: small WavLM models trained here, on speech generated here, for the models wavlm ships.

    .venv/bin/python recipes/tiny/recipe.py [--work DIR] [--quick] [--ship]

1. corpora (`wavlm synth`, fixed seeds): read sentences and digit strings (asr), 48 speakers (speakers),
   2-3 voice conversations with RTTM (conversations), ten command words (commands); every test split holds
   voices that no training split has (wavlm.synth.HELD_OUT_VOICES);
2. `wavlm pretrain`: MFCC k-means targets and WavLM pre-training with utterance mixing, on the asr and speakers
   training audio;
3. `wavlm finetune` of the CTC, x-vector, frame-classification and sequence-classification heads, each twice under
   the same options: from the pre-trained encoder and from a random initialisation of the same config;
4. evaluation of every fine-tuned model on the held-out test splits (CER/WER, EER, DER, accuracy) and on real
   recordings (wavlm.synth.real: LibriVox utterances of pocketsphinx-testdata, the alsa-utils phrases, the
   pyannote.audio two-speaker sample), written to results.json, results.md and curves.png.

Every stage is skipped when its output exists, and an interrupted fine-tuning run resumes from its last/ folder:
run the same command again after a stop. `--quick` is the short version the test suite runs (smaller corpora,
a few dozen steps); `--ship` copies the models fine-tuned from the pre-trained encoder, with results.json, into
src/wavlm/zoo/ (the models `--model tiny-synth-ctc` etc. name). Needs wavlm[train] and espeak-ng, flite, sox.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ZOO = HERE.parents[1] / "src" / "wavlm" / "zoo"


@dataclass(frozen=True)
class Scale:
    """Corpus sizes and step counts of one version of the recipe."""
    asr: int
    speakers: int
    num_speakers: int
    conversations: int
    commands: int
    pretrain_steps: int
    steps: dict[str, int]


FULL = Scale(asr=2000, speakers=480, num_speakers=48, conversations=160, commands=600, pretrain_steps=1500,
             steps={"ctc": 3000, "xvector": 400, "frames": 800, "classify": 600})
QUICK = Scale(asr=120, speakers=96, num_speakers=12, conversations=24, commands=120, pretrain_steps=40,
              steps={"ctc": 40, "xvector": 30, "frames": 30, "classify": 30})
SEED = 7
# The encoder: hidden 64, 4 layers (0.3 M parameters), trained in minutes on 2 CPU cores.
ENCODER = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256, conv_dim=(64,) * 7,
               num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=8, layerdrop=0.0, mask_time_prob=0.05,
               classifier_proj_size=64, tdnn_dim=(128, 128, 128, 128, 256), xvector_output_dim=64)
# task -> (corpus, fine-tuning options); the same for both initialisations.
TASKS = {
    "xvector": ("speakers", ["--lr", "1e-3", "--batch-seconds", "32"]),
    "frames": ("conversations", ["--lr", "1e-3", "--batch-seconds", "32"]),
    # words are 20-40 frames: SpecAugment's two 10-frame spans (mask_time_min_masks) would hide half of one
    "classify": ("commands", ["--lr", "3e-3", "--batch-seconds", "32", "--mask-time-prob", "0"]),
    "ctc": ("asr", ["--lr", "3e-3", "--batch-seconds", "32"]),
}
REAL = {"ctc": ["pocketsphinx", "alsa"], "frames": ["pyannote"]}


def zoo_name(task: str) -> str:
    """The name the model of `task` is shipped under (wavlm.zoo.MODELS, by its head class)."""
    from wavlm.train.tasks import TASKS as TASK_CLASSES
    from wavlm.zoo import MODELS

    return next(name for name, (head, _) in MODELS.items() if head == TASK_CLASSES[task].model_class)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wavlm_cli(*args: str) -> str:
    """Run `python -m wavlm ...`; stop with its stderr when it fails."""
    log("$ wavlm " + " ".join(args))
    r = subprocess.run([sys.executable, "-m", "wavlm", *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"`wavlm {' '.join(args)}` failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
    return r.stdout.strip()


def make_corpora(work: Path, scale: Scale) -> dict[str, Path]:
    kinds = {"asr": ["-n", str(scale.asr), "--noise-prob", "0.2", "--snr", "10,30"],
             "speakers": ["-n", str(scale.speakers), "--num-speakers", str(scale.num_speakers)],
             "conversations": ["-n", str(scale.conversations)],
             "commands": ["-n", str(scale.commands), "--noise-prob", "0.2", "--snr", "10,30"]}
    out = {}
    for kind, extra in kinds.items():
        folder = work / "corpora" / kind
        if not (folder / "corpus.json").is_file():
            wavlm_cli("synth", kind, "-o", str(folder), "--seed", str(SEED), "--overwrite", "-q", *extra)
        out[kind] = folder
    return out


def joined(path: Path, manifests: list[Path]) -> Path:
    """One manifest of several, with absolute audio paths."""
    lines = []
    for manifest in manifests:
        for line in manifest.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                record["audio"] = str((manifest.parent / record["audio"]).resolve())
                lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def pretrain(work: Path, corpora: dict[str, Path], scale: Scale) -> Path:
    from wavlm import WavLMConfig

    config = work / "config.json"
    WavLMConfig(**ENCODER).to_json_file(config)
    data = work / "pretrain"
    data.mkdir(parents=True, exist_ok=True)
    train = joined(data / "train.jsonl", [corpora["asr"] / "train.jsonl", corpora["speakers"] / "train.jsonl"])
    valid = corpora["asr"] / "valid.jsonl"
    targets = data / "targets"
    if not (targets / "targets.json").is_file():
        joined(data / "train+valid.jsonl", [train, valid])
        wavlm_cli("pretrain", "targets", "--train", str(data / "train+valid.jsonl"), "--clusters", "50",
                  "--config", str(config), "-o", str(targets), "--seed", str(SEED))
    run = data / "run"
    if not (run / "done").is_file():
        resume = ["--resume"] if (run / "last" / "config.json").is_file() else []
        wavlm_cli("pretrain", "--model", str(config), "--train", str(train), "--valid", str(valid),
                  "--targets", str(targets), "-o", str(run), "--max-steps", str(scale.pretrain_steps),
                  "--lr", "2e-3", "--batch-seconds", "16", "--final-dim", "64", "--precision", "fp32",
                  "--mix-prob", "0.2", "--eval-every", str(max(scale.pretrain_steps // 5, 1)),
                  "--seed", str(SEED), "-q", *resume)
        (run / "done").write_text("")
    return run / "last"


def finetune(work: Path, corpora: dict[str, Path], task: str, init: str, source: Path, scale: Scale) -> Path:
    corpus, options = TASKS[task]
    run = work / "finetune" / f"{task}-{init}"
    if not (run / "summary.json").is_file():
        resume = ["--resume"] if (run / "last" / "config.json").is_file() else []
        steps = scale.steps[task]
        out = wavlm_cli("finetune", "--task", task, "-m", str(source), "--train", str(corpora[corpus] / "train.jsonl"),
                        "--valid", str(corpora[corpus] / "valid.jsonl"), "-o", str(run), "--max-steps", str(steps),
                        "--eval-every", str(max(steps // 4, 1)), "--precision", "fp32", "--seed", str(SEED), "-q",
                        *options, *resume)
        (run / "summary.json").write_text(out + "\n")
    return run / "best"


def evaluate(task: str, model_dir: Path, train: Path, test: Path) -> dict[str, float]:
    """The fine-tuning task's own validation metric on `test`, with the model saved in `model_dir`."""
    import torch
    from wavlm.train.data import load_items
    from wavlm.train.tasks import TASKS as TASK_CLASSES

    kwargs = {"tokenizer_source": model_dir} if task == "ctc" else {}
    if task == "frames":
        kwargs["num_speakers"] = len(json.loads((model_dir / "config.json").read_text())["id2label"])
    # whole recordings (the 30 s pyannote call too): fine-tuning's 20 s limit would score a centre crop
    runner = TASK_CLASSES[task](log=lambda message: None, max_seconds=600.0, **kwargs)
    _, items = runner.prepare(load_items(train), load_items(test))
    model = runner.build_model(model_dir, {}).eval()
    _, items = runner.check_fit(items, items)  # (its train half is not used)
    with torch.no_grad():
        metrics = runner.evaluate(model, items, torch.device("cpu"))
    return {**{k: round(float(v), 4) for k, v in metrics.items()}, "items": len(items)}


def real_manifests(names: list[str]) -> dict[str, Path | str]:
    from wavlm.synth.real import fetch_real

    out: dict[str, Path | str] = {}
    for name in names:
        try:
            out[name] = fetch_real(name)
        except Exception as e:  # noqa: BLE001 - reported in the table, the recipe goes on
            out[name] = f"not available: {e}"
    return out


def write_curves(work: Path, tasks: list[str], path: Path) -> None:
    """Training loss per step: pre-training, then each head from the pre-trained (solid) and random (dashed) encoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"pretrain": [("masked prediction", "-", work / "pretrain" / "run")]}
    panels.update({task: [(init, style, work / "finetune" / f"{task}-{init}")
                          for init, style in (("pretrained", "-"), ("random", "--"))] for task in tasks})
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (title, lines) in zip(axes, panels.items()):
        for label, style, folder in lines:
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
            rows = [r for r in rows if "loss" in r]
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style, lw=0.8, label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


METRIC = {"ctc": "cer", "xvector": "eer", "frames": "der", "classify": "accuracy"}
TARGET = {"ctc": ("<=", 0.10), "xvector": ("<=", 0.10), "frames": ("<=", 0.20), "classify": (">=", 0.90)}


def table(results: dict) -> str:
    rows = ["| task | held-out data | metric | pre-trained | random init | target |", "|---|---|---|---|---|---|"]
    pct = lambda v: f"{100 * v:.1f} %" if isinstance(v, float) else str(v)  # noqa: E731
    for task, r in results["tasks"].items():
        for data, m in r["test"].items():
            metrics = [METRIC[task], "wer"] if task == "ctc" else [METRIC[task]]
            for metric in metrics:
                p, q = m["pretrained"], m["random"]
                target = f"{TARGET[task][0]} {pct(TARGET[task][1])}" if data == "synthetic test" and \
                    metric == METRIC[task] else ""
                cell = lambda x: pct(x[metric]) if isinstance(x, dict) else x  # noqa: E731
                rows.append(f"| {task} | {data} | {metric.upper()} | {cell(p)} | {cell(q)} | {target} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/wavlm-tiny", help="work folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="the short version (tests): small corpora, few steps")
    p.add_argument("--ship", action="store_true", help="copy the pre-trained models and results into src/wavlm/zoo")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of %(default)s")
    p.add_argument("--check-shipped", action="store_true",
                   help="only regenerate the corpora and evaluate the shipped models on their synthetic test splits; "
                        "exit 1 when a figure is more than --tolerance from src/wavlm/zoo/results.json")
    p.add_argument("--tolerance", type=float, default=0.02, help="with --check-shipped (default %(default)s)")
    args = p.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or set(tasks) - set(TASKS):
        p.error(f"--tasks takes a comma-separated subset of {', '.join(TASKS)}, got {args.tasks!r}")
    if args.ship and (set(tasks) != set(TASKS) or args.quick):
        p.error("--ship replaces every shipped model and results.json: the full recipe, with all tasks")
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    scale = QUICK if args.quick else FULL
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpora = make_corpora(work, scale)
    if args.check_shipped:
        sys.exit(check_shipped(corpora, args.tolerance, "quick" if args.quick else "full"))
    encoder = pretrain(work, corpora, scale)
    results: dict = {"scale": "quick" if args.quick else "full", "seed": SEED, "encoder": ENCODER,
                     "pretrain_steps": scale.pretrain_steps, "steps": scale.steps, "tasks": {}}
    for task in tasks:
        corpus = corpora[TASKS[task][0]]
        models = {init: finetune(work, corpora, task, init, source, scale)
                  for init, source in (("pretrained", encoder), ("random", work / "config.json"))}
        test = {"synthetic test": corpus / "test.jsonl"}
        if not args.quick:
            test.update(real_manifests(REAL.get(task, [])))
        scores: dict = {}
        for data, manifest in test.items():
            scores[data] = {init: evaluate(task, model, corpus / "train.jsonl", manifest)
                            if isinstance(manifest, Path) else manifest for init, model in models.items()}
            log(f"{task} on {data}: {json.dumps(scores[data])}")
        results["tasks"][task] = {"corpus": corpus.name, "options": TASKS[task][1], "test": scores}
    results["cpu"] = _cpu()
    results["seconds"] = round(time.perf_counter() - started, 1)
    (work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (work / "results.md").write_text(table(results))
    write_curves(work, tasks, work / "curves.png")
    print(table(results))
    log(f"done in {results['seconds']:.0f} s: {work / 'results.json'}, {work / 'curves.png'}")
    if args.ship:
        ship(work, tasks, results)


def ship(work: Path, tasks: list[str], results: dict) -> None:
    """Copy the models fine-tuned from the pre-trained encoder into src/wavlm/zoo/<name>/, with results."""
    ZOO.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        dest = ZOO / zoo_name(task)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(work / "finetune" / f"{task}-pretrained" / "best", dest)
        log(f"shipped {dest}")
    (ZOO / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    shutil.copy(work / "curves.png", HERE / "curves.png")


def check_shipped(corpora: dict[str, Path], tolerance: float, scale: str) -> int:
    """Evaluate the shipped models again on the regenerated synthetic test splits; 1 when a figure moved."""
    from wavlm.zoo import ZOO_DIR, results

    recorded = results()
    shipped = recorded.get("tasks", {})
    if not shipped:
        print(f"no results.json in {ZOO_DIR}: nothing shipped to check")
        return 1
    if recorded.get("scale") != scale:
        print(f"the shipped models come from the {recorded.get('scale')} recipe; this is the {scale} one")
        return 1
    moved = []
    for task in TASKS:
        name = zoo_name(task)
        corpus = corpora[TASKS[task][0]]
        now = evaluate(task, ZOO_DIR / name, corpus / "train.jsonl", corpus / "test.jsonl")
        then = shipped[task]["test"]["synthetic test"]["pretrained"]
        for metric, value in then.items():
            if metric == "items":
                ok = now[metric] == value
            else:
                ok = abs(now[metric] - value) <= tolerance
            log(f"{name} {metric}: shipped {value}, now {now[metric]}{'' if ok else '  <- MOVED'}")
            if not ok:
                moved.append(f"{name} {metric}")
    if moved:
        print(f"differ from results.json by more than {tolerance}: {', '.join(moved)}")
    return 1 if moved else 0


def _cpu() -> str:
    import torch
    from wavlm.kernels.dispatch import cpu_model

    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
