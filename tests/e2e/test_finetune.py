"""`wavlm finetune` end to end on speech generated at test time (wavlm.synth: espeak-ng, flite, sox): a tiny model
fits a CTC set, a 3-class command set, a 2-speaker diarization mix and an x-vector set; the saved directories run in
`wavlm transcribe/classify/diarize/verify` and load in transformers; 2 torchrun processes (gloo) give the weights
of 1 process accumulating the same global batch, and skip the same layers."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_support import REPO, run_cli, tiny_kwargs  # noqa: E402

pytest.importorskip("lhotse")
if any(shutil.which(t) is None for t in ("espeak-ng", "flite", "sox")):
    pytest.skip("needs espeak-ng, flite and sox", allow_module_level=True)

from wavlm.synth import make_corpus  # noqa: E402
from wavlm.train import FinetuneOptions, finetune  # noqa: E402

# big enough to learn in a few hundred CPU steps, small enough for 2 shared cores
LEARNER = dict(hidden_size=64, intermediate_size=128, conv_dim=(32, 48, 64), classifier_proj_size=32,
               tdnn_dim=(32, 32, 64), tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1), xvector_output_dim=32,
               mask_time_prob=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    from wavlm import WavLMConfig

    root = tmp_path_factory.mktemp("finetune")
    make_corpus("asr", root / "asr", 12, seed=1, digit_fraction=1.0)
    make_corpus("commands", root / "commands", 30, seed=1, words=("yes", "no", "stop"))
    make_corpus("conversations", root / "conv", 6, seed=1, speakers_per_conversation=(2, 2), turns=(4, 6))
    make_corpus("speakers", root / "speakers", 48, seed=1, num_speakers=8)
    WavLMConfig(**tiny_kwargs("large", **LEARNER)).save_pretrained(root / "learner")
    WavLMConfig(**tiny_kwargs("large", mask_time_prob=0.0)).save_pretrained(root / "tiny")
    return root


def _options(root: Path, task: str, corpus: str, out: str, **kw) -> FinetuneOptions:
    base = dict(task=task, model=str(root / "learner" / "config.json"), train=str(root / corpus / "train.jsonl"),
                valid=str(root / corpus / "train.jsonl"), output_dir=str(root / out), precision="fp32",
                progress=False, warmup=0.05, batch_seconds=8.0)
    return FinetuneOptions(**{**base, **kw})


def _manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ctc_from_scratch_fits_its_training_set_and_transcribes_with_the_cli(root):
    out = root / "ctc"
    r = run_cli("finetune", "--task", "ctc", "--model", str(root / "learner" / "config.json"),
                "--train", str(root / "asr" / "train.jsonl"), "--valid", str(root / "asr" / "train.jsonl"),
                "-o", str(out), "--max-steps", "400", "--lr", "5e-3", "--warmup", "0.05", "--batch-seconds", "8",
                "--precision", "fp32", "--eval-every", "100", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 400 and summary["best"]["wer"] == 0.0, summary
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("blank_ratio" in rec for rec in records if "loss" in rec)
    assert (out / "curves.png").is_file() and (out / "last" / "trainer_state.pt").is_file()
    # the best directory runs in `wavlm transcribe`: greedy transcripts equal the labels
    r = run_cli("transcribe", "--model", str(out / "best"), str(root / "asr" / "train.jsonl"))
    assert r.returncode == 0, r.stderr
    got = dict(line.split("\t", 1) for line in r.stdout.strip().splitlines())
    want = {rec["id"]: rec["text"] for rec in _manifest(root / "asr" / "train.jsonl")}
    assert got == want
    # and transformers reads it, tokenizer included
    transformers = pytest.importorskip("transformers")
    processor = transformers.Wav2Vec2Processor.from_pretrained(out / "best")
    model = transformers.WavLMForCTC.from_pretrained(out / "best").eval()
    rec = _manifest(root / "asr" / "train.jsonl")[0]
    import soundfile

    wav, _ = soundfile.read(root / "asr" / rec["audio"], dtype="float32")
    with torch.no_grad():
        ids = model(**processor(wav, sampling_rate=16000, return_tensors="pt")).logits.argmax(-1)
    assert processor.batch_decode(ids)[0] == rec["text"]


def test_three_commands_reach_full_training_accuracy(root):
    result = finetune(_options(root, "classify", "commands", "cls", max_steps=200, lr=2e-3, eval_every=100))
    assert result.last["accuracy"] == 1.0
    r = run_cli("classify", "--model", str(root / "cls" / "best"), str(root / "commands" / "train.jsonl"))
    assert r.returncode == 0, r.stderr
    top = {line.split("\t")[0]: line.split("\t")[1].split(":")[0] for line in r.stdout.strip().splitlines()}
    assert top == {rec["id"]: rec["label"] for rec in _manifest(root / "commands" / "train.jsonl")}


def test_two_speaker_frames_der_falls_below_ten_percent_on_the_training_mix(root):
    result = finetune(_options(root, "frames", "conv", "frames", max_steps=300, lr=3e-3, batch_seconds=40.0,
                               eval_every=75))
    assert result.best["der"] < 0.10, result
    records = [json.loads(line) for line in (root / "frames" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["loss"] > 2 * [r for r in records if r.get("loss")][-1]["loss"]
    # `wavlm diarize` reads the frame model (sigmoid activity per output)
    audio = root / "conv" / _manifest(root / "conv" / "train.jsonl")[0]["audio"]
    r = run_cli("diarize", "--model", str(root / "frames" / "best"), str(audio))
    assert r.returncode == 0, r.stderr
    speakers = {line.split()[7] for line in r.stdout.splitlines() if line.startswith("SPEAKER")}
    assert speakers == {"spk00", "spk01"}


def test_xvector_training_lowers_the_training_speaker_eer(root):
    from wavlm.train.data import load_items
    from wavlm.train.tasks import XVectorTask

    result = finetune(_options(root, "xvector", "speakers", "xvector", max_steps=200, lr=3e-3, batch_seconds=16.0,
                               valid=str(root / "speakers" / "valid.jsonl"), eval_every=100))
    assert result.best is not None
    task = XVectorTask(log=lambda m: None)
    items, held_out = task.prepare(load_items(root / "speakers" / "train.jsonl"),
                                   load_items(root / "speakers" / "valid.jsonl"))
    torch.manual_seed(0)
    before = task.evaluate(task.build_model(str(root / "learner" / "config.json"), {}).eval(), items, "cpu")
    after = task.evaluate(task.build_model(str(root / "xvector" / "last"), {}).eval(), items, "cpu")
    assert after["eer"] < before["eer"] - 0.05, (before, after)
    r = run_cli("verify", "--model", str(root / "xvector" / "best"), "--trials",
                str(root / "speakers" / "trials_valid.txt"), cwd=root / "speakers")
    assert r.returncode == 0, r.stderr
    assert "EER" in r.stdout + r.stderr


def test_bad_inputs_are_usage_errors(root):
    r = run_cli("finetune", "--task", "ctc", "--model", str(root / "tiny" / "config.json"), "--train",
                str(root / "missing.jsonl"), "--valid", str(root / "missing.jsonl"), "-o", str(root / "bad"))
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "does not exist" in r.stderr
    r = run_cli("finetune", "--task", "classify", "--model", str(root / "tiny" / "config.json"), "--train",
                str(root / "asr" / "train.jsonl"), "--valid", str(root / "asr" / "valid.jsonl"), "-o",
                str(root / "bad"))
    assert r.returncode == 2 and "no label" in r.stderr


DRIVER = textwrap.dedent("""
    import json, os, sys, torch
    torch.set_num_threads(1)
    from wavlm.train import FinetuneOptions, finetune
    from wavlm.train.tasks import ClassifyTask
    ran = []
    build = ClassifyTask.build_model
    def build_and_hook(self, source, overrides):
        model = build(self, source, overrides)
        for i, layer in enumerate(model.wavlm.encoder.layers):
            layer.register_forward_hook(lambda m, a, o, i=i: ran.append(i) if m.training else None)
        return model
    ClassifyTask.build_model = build_and_hook
    steps = []
    def record(step, _):
        steps.append(list(ran)); ran.clear()
    args = json.loads(sys.argv[1])
    finetune(FinetuneOptions(**args), callback=record)
    with open(os.path.join(args["output_dir"], f"layers-{os.environ.get('RANK', '0')}.json"), "w") as f:
        json.dump(steps, f)
""")


def _torchrun(root: Path, nproc: int, args: dict) -> None:
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    import socket

    with socket.socket() as sock:  # a free port (torchrun's --master-port 0 hangs the rendezvous here)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port", str(port),
           str(driver), json.dumps(args)] if nproc > 1 else [sys.executable, str(driver), json.dumps(args)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_two_gloo_processes_give_the_weights_of_one_accumulating_the_global_batch(root):
    from safetensors.torch import load_file

    base = dict(task="classify", model=str(root / "tiny" / "config.json"), train=str(root / "commands" / "train.jsonl"),
                valid=str(root / "commands" / "valid.jsonl"), precision="fp32", progress=False, plot=False,
                max_steps=4, lr=3e-3, batch_seconds=4.0, eval_every=4, device="cpu")
    _torchrun(root, 1, {**base, "output_dir": str(root / "ddp1"), "accumulate": 2})
    _torchrun(root, 2, {**base, "output_dir": str(root / "ddp2"), "accumulate": 1})
    one = load_file(str(root / "ddp1" / "last" / "model.safetensors"))
    two = load_file(str(root / "ddp2" / "last" / "model.safetensors"))
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-5, rtol=0, msg=k)
    losses = [[json.loads(line).get("loss") for line in (root / d / "metrics.jsonl").read_text().splitlines()]
              for d in ("ddp1", "ddp2")]
    np.testing.assert_allclose([x for x in losses[0] if x], [x for x in losses[1] if x], rtol=1e-5)

    # layerdrop under DDP: both ranks run the same layers at every step (and some are skipped)
    _torchrun(root, 2, {**base, "output_dir": str(root / "ddp-layerdrop"), "accumulate": 1,
                        "config": {"num_hidden_layers": 4}, "layerdrop": 0.5})
    r0, r1 = (json.loads((root / "ddp-layerdrop" / f"layers-{r}.json").read_text()) for r in (0, 1))
    train_steps = [s for s in r0 if s]
    assert r0 == r1 and len(r0) == 4
    assert any(len(set(s)) < 4 for s in train_steps)
