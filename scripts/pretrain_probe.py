"""Does `wavlm pretrain` learn something useful? One command, on speech generated here:

    .venv/bin/python scripts/pretrain_probe.py [--work DIR] [--steps 3000] [--seed 0]

1. corpora (wavlm.synth): `asr` utterances to pre-train on, `commands` (10 words) and `speakers` to probe with;
   the probes are scored on held-out voices only (the test splits), which pre-training never heard;
2. MFCC k-means targets and `wavlm pretrain` of a small WavLM (hidden 64, 4 layers) with utterance mixing;
3. frozen features of three kinds, each pooled per utterance (mean and standard deviation over frames):
   39-dim MFCC, the same WavLM at random initialisation, and the pre-trained WavLM; for a WavLM the layer is chosen
   on the validation split;
4. two linear probes per kind: command-word classification (logistic regression on train, accuracy on test voices)
   and speaker verification (cosine scoring of mean-normalised embeddings, EER on the held-out speakers' trials).

Prints a table and writes `probe.json` in the work folder. Steps that already ran (corpora, targets, the
pre-training run) are reused when the folder is given again; `--steps` changes force a fresh run. Needs `wavlm[train]`
(scikit-learn) and espeak-ng/flite/sox (scripts/system_packages.sh).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16000


def wavlm_cli(*args: str) -> str:
    """Run `python -m wavlm ...`; stop with its stderr when it fails."""
    command = [sys.executable, "-m", "wavlm", *args]
    print("$ wavlm " + " ".join(args), flush=True)
    r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"`wavlm {' '.join(args)}` failed (exit {r.returncode}):\n{r.stderr}")
    return r.stdout.strip()


def small_config(path: Path) -> None:
    from wavlm import WavLMConfig

    WavLMConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                conv_dim=(64,) * 7, num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=8,
                layerdrop=0.0, mask_time_prob=0.0).to_json_file(path)


def records(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def load(folder: Path, record: dict) -> np.ndarray:
    from wavlm.audio import load_audio

    return load_audio(folder / record["audio"], sampling_rate=SAMPLE_RATE)[0]


def pooled(frames: torch.Tensor) -> np.ndarray:
    """(T, D) -> (2D,): mean and standard deviation over frames."""
    return torch.cat([frames.mean(0), frames.std(0)]).numpy()


class Features:
    """Per-utterance pooled features of one kind, per layer (MFCC has one 'layer')."""

    def __init__(self, kind: str, model=None, extractor=None) -> None:
        self.kind, self.model, self.extractor = kind, model, extractor

    @torch.no_grad()
    def __call__(self, wav: np.ndarray) -> list[np.ndarray]:
        if self.model is None:
            from wavlm.pretrain.targets import mfcc_features

            return [pooled(torch.as_tensor(mfcc_features(wav)).float())]
        x = self.extractor(wav, sampling_rate=SAMPLE_RATE, return_tensors="pt")["input_values"]
        hidden = self.model(x, output_hidden_states=True).hidden_states
        return [pooled(h[0]) for h in hidden[1:]]  # the transformer layers' outputs


def embed(features: Features, folder: Path, items: list[dict]) -> np.ndarray:
    """(layers, N, dim) pooled features of the items."""
    return np.stack([np.stack(features(load(folder, r))) for r in items], axis=1)


def command_probe(features: Features, folder: Path) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = {s: records(folder / f"{s}.jsonl") for s in ("train", "valid", "test")}
    x = {s: embed(features, folder, items) for s, items in split.items()}
    y = {s: np.array([r["label"] for r in items]) for s, items in split.items()}
    best = None
    for layer in range(x["train"].shape[0]):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=1.0))
        probe.fit(x["train"][layer], y["train"])
        valid = float((probe.predict(x["valid"][layer]) == y["valid"]).mean())
        if best is None or valid > best[0]:
            test = float((probe.predict(x["test"][layer]) == y["test"]).mean())
            best = (valid, layer, test)
    return {"valid_accuracy": best[0], "layer": best[1] + (features.model is not None), "test_accuracy": best[2]}


def speaker_probe(features: Features, folder: Path) -> dict:
    from wavlm.tasks.scoring import compute_eer, read_trials

    train = records(folder / "train.jsonl")
    centre = embed(features, folder, train).mean(axis=1)  # (layers, dim): removes what every voice shares

    def eer(trials_file: str) -> list[float]:
        trials = read_trials(folder / trials_file)
        paths = sorted({t.enroll for t in trials} | {t.test for t in trials})
        vectors = embed(features, folder, [{"audio": p} for p in paths]) - centre[:, None]
        index = {p: i for i, p in enumerate(paths)}
        labels = np.array([t.label for t in trials])
        out = []
        for layer in range(vectors.shape[0]):
            v = vectors[layer] / np.linalg.norm(vectors[layer], axis=1, keepdims=True)
            scores = np.array([v[index[t.enroll]] @ v[index[t.test]] for t in trials])
            out.append(compute_eer(scores, labels)[0])
        return out

    valid, test = eer("trials_valid.txt"), eer("trials_test.txt")
    layer = int(np.argmin(valid))
    return {"valid_eer": valid[layer], "layer": layer + (features.model is not None), "test_eer": test[layer]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/wavlm-probe", help="work folder (default: %(default)s)")
    p.add_argument("--steps", type=int, default=3000, help="pre-training steps (default: %(default)s)")
    p.add_argument("--pretrain-utterances", type=int, default=600)
    p.add_argument("--clusters", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    corpora = {"asr": args.pretrain_utterances, "commands": 300, "speakers": 192}
    for kind, n in corpora.items():
        if not (work / kind / "train.jsonl").is_file():
            wavlm_cli("synth", kind, "-o", str(work / kind), "-n", str(n), "--seed", str(args.seed + 1))
    config = work / "config.json"
    small_config(config)
    # targets for the train and valid splits (the test split holds the held-out voices: never used here)
    both = work / "asr" / "train+valid.jsonl"
    both.write_text((work / "asr" / "train.jsonl").read_text() + (work / "asr" / "valid.jsonl").read_text())
    targets = work / "asr" / f"targets-km{args.clusters}"
    if not (targets / "targets.json").is_file():
        wavlm_cli("pretrain", "targets", "--train", str(both), "--clusters",
                  str(args.clusters), "--config", str(config), "-o", str(targets))
    run = work / f"pretrain-{args.steps}"
    if not (run / "last" / "config.json").is_file():
        wavlm_cli("pretrain", "--model", str(config), "--train", str(work / "asr" / "train.jsonl"),
                  "--valid", str(work / "asr" / "valid.jsonl"), "--targets", str(targets), "-o", str(run),
                  "--max-steps", str(args.steps), "--lr", "2e-3", "--batch-seconds", "16", "--final-dim", "64",
                  "--precision", "fp32", "--mix-prob", "0.2", "--eval-every", str(max(args.steps // 5, 1)),
                  "--seed", str(args.seed), "-q")
    pretrain_log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    valid_log = [r for r in pretrain_log if "valid_masked_accuracy" in r]

    from wavlm import WavLMConfig, WavLMModel
    from wavlm.features import WavLMFeatureExtractor

    extractor = WavLMFeatureExtractor(do_normalize=True)
    torch.manual_seed(args.seed)
    random_model = WavLMModel(WavLMConfig.from_json_file(config)).eval()
    trained = WavLMModel.from_pretrained(run / "last").eval()
    kinds = {"MFCC (39-dim)": Features("mfcc"),
             "WavLM, random initialisation": Features("random", random_model, extractor),
             f"WavLM, pre-trained {args.steps} steps": Features("pretrained", trained, extractor)}
    results = {}
    for name, features in kinds.items():
        results[name] = {"commands": command_probe(features, work / "commands"),
                         "speakers": speaker_probe(features, work / "speakers")}
        print(f"{name}: {json.dumps(results[name])}", flush=True)

    summary = {"steps": args.steps, "pretrain_utterances": args.pretrain_utterances, "clusters": args.clusters,
               "seed": args.seed, "pretrain_valid": valid_log, "probes": results,
               "cpu": _cpu(), "seconds": round(time.perf_counter() - started, 1)}
    (work / "probe.json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n| features | commands: test accuracy (held-out voices) | speakers: test EER (held-out speakers) |")
    print("|---|---|---|")
    for name, r in results.items():
        c, s = r["commands"], r["speakers"]
        layer = lambda x: f", layer {x['layer']}" if "WavLM" in name else ""  # noqa: E731
        print(f"| {name} | {100 * c['test_accuracy']:.1f} %{layer(c)} | {100 * s['test_eer']:.1f} %{layer(s)} |")
    if valid_log:
        first, last = valid_log[0], valid_log[-1]
        print(f"\npre-training: valid masked accuracy {first['valid_masked_accuracy']:.3f} -> "
              f"{last['valid_masked_accuracy']:.3f} (majority class {last['valid_majority_rate']:.3f}); "
              f"{summary['seconds']:.0f} s in all, {work / 'probe.json'}")


def _cpu() -> str:
    import torch
    from wavlm.kernels.dispatch import cpu_model

    return f"{cpu_model()}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
