"""The training loop on in-memory tones (no audio files, no espeak-ng): exact resume, non-finite steps, frozen
parts and learning-rate groups, checkpoints that wavlm and transformers load."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import tiny_kwargs  # noqa: E402

pytest.importorskip("lhotse")

from wavlm import WavLMConfig, WavLMForSequenceClassification  # noqa: E402
from wavlm.train import TrainOptions, train  # noqa: E402
from wavlm.train.data import Item  # noqa: E402
from wavlm.train.tasks import ClassifyTask  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


class _Cut:
    def __init__(self, wav):
        self.wav, self.sampling_rate = wav, 16000

    def load_audio(self):
        return self.wav[None, :]


def tones(n: int = 12, seed: int = 0) -> list[Item]:
    """Three classes of noisy tones (200, 500, 1100 Hz), 0.6-1.4 s."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = i % 3
        samples = int(rng.uniform(0.6, 1.4) * 16000)
        t = np.arange(samples) / 16000
        wav = (0.5 * np.sin(2 * np.pi * (200, 500, 1100)[label] * t) + 0.05 * rng.normal(size=samples))
        items.append(Item(f"tone{i:02d}", samples / 16000, _Cut(wav.astype(np.float32)), label=f"c{label}"))
    return items


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("config")
    # dropout, SpecAugment and layerdrop on: resume must restore every random stream
    WavLMConfig(**tiny_kwargs("large", hidden_dropout=0.1, attention_dropout=0.1, final_dropout=0.1,
                              mask_time_prob=0.2, mask_time_length=4, layerdrop=0.3)).save_pretrained(folder)
    return str(folder / "config.json")


def options(out: Path, **kw) -> TrainOptions:
    base = dict(output_dir=str(out), max_steps=8, lr=2e-3, batch_seconds=3.0, precision="fp32", progress=False,
                plot=False, eval_every=4, seed=3)
    return TrainOptions(**{**base, **kw})


def losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def quiet_task(**kw) -> ClassifyTask:
    return ClassifyTask(log=lambda m: None, crop_seconds=0.8, **kw)


def test_resume_after_an_interruption_gives_the_same_losses_exactly(tmp_path, config_file):
    items = tones()
    straight = tmp_path / "straight"
    train(quiet_task(), config_file, items, items[:3], options(straight))

    def interrupt(step, record):
        if step == 3:
            raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(quiet_task(), config_file, items, items[:3], options(cut), callback=interrupt)
    assert (cut / "last" / "trainer_state.pt").is_file() and max(losses(cut)) == 3
    result = train(quiet_task(), config_file, items, items[:3], options(cut, resume=True))
    assert result.steps == 8
    a, b = losses(straight), losses(cut)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert all(a[s] == b[s] for s in a), (a, b)  # exact, float32
    for name in ("last", "best"):
        one = WavLMForSequenceClassification.from_pretrained(straight / name).state_dict()
        two = WavLMForSequenceClassification.from_pretrained(cut / name).state_dict()
        assert all(torch.equal(one[k], two[k]) for k in one)


def test_non_finite_losses_skip_the_step_and_are_counted(tmp_path, config_file):
    class Flaky(ClassifyTask):
        calls = 0

        def loss(self, model, batch):
            Flaky.calls += 1
            total, logs = super().loss(model, batch)
            return (total * float("nan") if Flaky.calls == 3 else total), logs

    seen = {}

    def snapshot(step, record):
        seen[step] = {k: v.clone() for k, v in model_ref[0].state_dict().items()}

    model_ref = []
    task = Flaky(log=lambda m: None, crop_seconds=0.8)
    original = task.build_model

    def build(source, overrides):
        model_ref.append(original(source, overrides))
        return model_ref[0]

    task.build_model = build
    result = train(task, config_file, tones(), tones()[:3], options(tmp_path / "run", max_steps=5), snapshot)
    assert result.skipped_steps == 1
    record = losses(tmp_path / "run")
    assert record[3] is None and all(math.isfinite(record[s]) for s in (1, 2, 4, 5))
    assert all(torch.equal(seen[2][k], seen[3][k]) for k in seen[2])  # step 3 changed nothing
    assert not all(torch.equal(seen[3][k], seen[4][k]) for k in seen[3])
    assert all(torch.isfinite(v).all() for v in seen[5].values())


def test_encoder_frozen_for_the_first_steps_and_its_own_learning_rate(tmp_path, config_file):
    seen = {}
    model_ref = []
    task = quiet_task()
    original = task.build_model
    task.build_model = lambda s, o: model_ref.append(original(s, o)) or model_ref[0]

    def snapshot(step, record):
        seen[step] = {k: v.clone() for k, v in model_ref[0].state_dict().items()}

    train(task, config_file, tones(), tones()[:3], options(tmp_path / "a", max_steps=4, freeze_encoder_steps=2,
                                                              warmup=0), snapshot)
    enc = [k for k in seen[1] if k.startswith("wavlm.encoder.layers")]
    head = [k for k in seen[1] if k.startswith("classifier")]
    assert all(torch.equal(seen[1][k], seen[2][k]) for k in enc)
    assert not all(torch.equal(seen[1][k], seen[2][k]) for k in head)
    assert not all(torch.equal(seen[2][k], seen[3][k]) for k in enc)  # trains after step 2

    seen.clear()
    model_ref.clear()
    train(task, config_file, tones(), tones()[:3], options(tmp_path / "b", max_steps=3, encoder_lr=0.0,
                                                              warmup=0, weight_decay=0.0), snapshot)
    assert all(torch.equal(seen[1][k], seen[3][k]) for k in enc)
    assert not all(torch.equal(seen[1][k], seen[3][k]) for k in head)


def test_checkpoints_load_in_wavlm_and_transformers_with_the_same_outputs(tmp_path, config_file):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "run"
    result = train(quiet_task(), config_file, tones(), tones()[:3], options(out, max_steps=4, plot=True))
    assert result.best is not None and set(result.last) == {"accuracy"}
    assert (out / "curves.png").stat().st_size > 1000
    for name in ("best", "last"):
        files = {p.name for p in (out / name).iterdir()}
        assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary directories left
    ours = WavLMForSequenceClassification.from_pretrained(out / "best").eval()
    theirs = transformers.WavLMForSequenceClassification.from_pretrained(out / "best").eval()
    assert ours.config.id2label == {0: "c0", 1: "c1", 2: "c2"} == theirs.config.id2label
    x = torch.randn(2, 16000)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, theirs(x).logits, atol=1e-4, rtol=1e-4)


def test_bad_options_are_refused_with_the_field_named(tmp_path, config_file):
    with pytest.raises(ValueError, match="schedule must be one of"):
        train(quiet_task(), config_file, tones(), tones()[:3], options(tmp_path, schedule="steps"))
    with pytest.raises(ValueError, match="precision must be"):
        train(quiet_task(), config_file, tones(), tones()[:3], options(tmp_path, precision="fp8"))
    with pytest.raises(ValueError, match="fewer than one step needs"):
        train(quiet_task(), config_file, tones(3), tones(3), options(tmp_path, accumulate=8))
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        train(quiet_task(), config_file, tones()[:1], tones()[:1], options(tmp_path))
