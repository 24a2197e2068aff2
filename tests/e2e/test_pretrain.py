"""`wavlm pretrain` end to end on generated speech: MFCC k-means targets, then a tiny model learns to predict masked
frames (loss falls, masked accuracy clearly above the majority class); the saved backbone loads in transformers;
--resume is exact; a 2-process torchrun run equals a 1-process run accumulating the same global batch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_support import run_cli
from conftest import tiny_kwargs

pytestmark = pytest.mark.slow
K = 25


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from wavlm import WavLMConfig
    from wavlm.synth import make_corpus

    root = tmp_path_factory.mktemp("pretrain")
    make_corpus("asr", root / "corpus", 30, seed=1, engines=("espeak",))
    config = root / "config.json"
    WavLMConfig(**tiny_kwargs(hidden_size=64, intermediate_size=128, conv_dim=(32, 32, 32))).to_json_file(config)
    r = run_cli("pretrain", "targets", "--train", str(root / "corpus" / "train.jsonl"), "--clusters", str(K),
                "--config", str(config), "--n-init", "3", "--sample-fraction", "1", "--min-sample-seconds", "0")
    assert r.returncode == 0, r.stderr
    targets = Path(r.stdout.strip())
    assert targets == root / "corpus" / f"targets-km{K}"  # beside the manifest
    return root, config, targets


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_targets_folder(corpus):
    _, _, targets = corpus
    info = json.loads((targets / "targets.json").read_text())
    assert info["clusters"] == K and info["used_clusters"] == K and info["utterances"] == 24
    assert info["features"]["kind"] == "mfcc"


def test_pretraining_learns(corpus):
    root, config, targets = corpus
    run = root / "run"
    r = run_cli("pretrain", "--model", str(config), "--train", str(root / "corpus" / "train.jsonl"), "--targets",
                str(targets), "-o", str(run), "--max-steps", "400", "--lr", "2e-3", "--final-dim", "64",
                "--batch-seconds", "8", "--precision", "fp32", "--schedule", "constant", "--warmup", "20",
                "--eval-every", "100", "--log-every", "100", "--mix-prob", "0.2", timeout=900)
    assert r.returncode == 0, r.stderr
    assert "masked acc" in r.stderr and "valid masked_accuracy" in r.stderr
    valid = [x for x in records(run) if "valid_loss" in x]
    steps = [x for x in records(run) if "loss" in x and x["loss"] is not None]
    first, last = valid[0], valid[-1]
    majority = last["valid_majority_rate"]
    assert last["valid_loss"] < first["valid_loss"] - 0.3, (first, last)
    assert last["valid_masked_accuracy"] > majority + 0.08, (last, majority)
    assert np.mean([x["loss"] for x in steps[:20]]) > np.mean([x["loss"] for x in steps[-20:]]) + 0.3
    assert 0.05 < np.mean([x["mixed_fraction"] for x in steps]) < 0.4  # about 20 % of utterances are mixed
    # the backbone is a WavLMModel directory transformers loads; the head sits beside it
    from transformers import WavLMModel as HFWavLMModel

    from wavlm.pretrain.model import WavLMForPreTraining

    hf = HFWavLMModel.from_pretrained(run / "best").eval()
    ours = WavLMForPreTraining.from_pretrained(run / "best").eval()
    wav = torch.randn(1, 16000)
    with torch.no_grad():
        assert torch.allclose(hf(wav).last_hidden_state, ours.wavlm(wav).last_hidden_state, atol=2e-4)
    # continued pre-training from the result keeps its architecture (and its head)
    again = root / "again"
    r = run_cli("pretrain", "--model", str(run / "best"), "--train", str(root / "corpus" / "train.jsonl"),
                "--targets", str(targets), "-o", str(again), "--max-steps", "5", "--batch-seconds", "8",
                "--precision", "fp32", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((again / "last" / "config.json").read_text())["hidden_size"] == 64


def _options(out: Path, **kw):
    from wavlm.train import TrainOptions

    base = dict(output_dir=str(out), max_steps=12, lr=2e-3, warmup=2, batch_seconds=6.0, freeze_feature_encoder=False,
                precision="fp32", eval_every=100, save_every=100, log_every=100, progress=False, plot=False, seed=3)
    return TrainOptions(**{**base, **kw})


def _task(targets):
    from wavlm.pretrain.mixing import MixingConfig
    from wavlm.pretrain.targets import load_targets
    from wavlm.pretrain.task import PretrainTask

    return PretrainTask(load_targets(targets), head={"final_dim": 32}, mixing=MixingConfig(prob=0.5),
                        log=lambda m: None)


def test_resume_is_exact(corpus, tmp_path):
    from safetensors.torch import load_file

    from wavlm.train import train
    from wavlm.train.data import load_items

    root, config, targets = corpus
    items = load_items(root / "corpus" / "train.jsonl")
    drop = {"layerdrop": 0.3, "dropout": 0.1}
    config4 = tmp_path / "config.json"
    cfg = json.loads(config.read_text())
    cfg["num_hidden_layers"] = 3
    config4.write_text(json.dumps(cfg))
    train(_task(targets), str(config4), items, items[:6], _options(tmp_path / "whole", **drop))

    def stop(step, record):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_task(targets), str(config4), items, items[:6], _options(tmp_path / "split", **drop), callback=stop)
    train(_task(targets), str(config4), items, items[:6], _options(tmp_path / "split", resume=True, **drop))
    a = [x["loss"] for x in records(tmp_path / "whole") if "loss" in x]
    b = [x["loss"] for x in records(tmp_path / "split") if "loss" in x]
    assert len(a) == len(b) == 12 and a == b
    for name in ("model.safetensors", "pretraining_head.safetensors"):
        wa, wb = load_file(tmp_path / "whole" / "last" / name), load_file(tmp_path / "split" / "last" / name)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not found")
def test_two_processes_equal_one(corpus, tmp_path):
    from safetensors.torch import load_file

    root, config, targets = corpus
    common = ["pretrain", "--model", str(config), "--train", str(root / "corpus" / "train.jsonl"), "--targets",
              str(targets), "--max-steps", "6", "--lr", "2e-3", "--final-dim", "32", "--batch-seconds", "6",
              "--precision", "fp32", "--dropout", "0", "--layerdrop", "0", "--mix-prob", "0.5", "-q", "--no-plot"]
    one = run_cli(*common, "-o", str(tmp_path / "one"), "--accumulate", "2")
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    two = run_cli(torchrun, "--nproc_per_node", "2", "--master_port", "29611", "-m", "wavlm", *common, "-o",
                  str(tmp_path / "two"), module=False, timeout=600)
    assert two.returncode == 0, two.stderr
    a = [x["loss"] for x in records(tmp_path / "one") if "loss" in x]
    b = [x["loss"] for x in records(tmp_path / "two") if "loss" in x]
    assert len(a) == len(b) == 6 and np.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)
    wa, wb = load_file(tmp_path / "one" / "last" / "model.safetensors"), \
        load_file(tmp_path / "two" / "last" / "model.safetensors")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
