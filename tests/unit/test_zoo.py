"""The shipped models (wavlm.zoo) load by name, offline, through from_pretrained and the command line, and say
that they know only synthetic voices; a local folder of the same name wins; other names still mean the Hub."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import wavlm
from wavlm.zoo import MODELS, ZOO_DIR, notice, results, shipped_path

pytestmark = pytest.mark.skipif(not all(shipped_path(n) for n in MODELS), reason="shipped models not in checkout")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_loads_by_name_with_its_head_and_a_notice(name):
    import torch

    head = MODELS[name][0]
    with pytest.warns(UserWarning, match="only on synthetic voices"):
        model = getattr(wavlm, head).from_pretrained(name)
    assert type(model).__name__ == head and model.config.architectures == [head]
    assert (ZOO_DIR / name / "model.safetensors").stat().st_size < 4_000_000  # "a few MB each"
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 16000) * 0.1)
    assert all(torch.isfinite(v).all() for v in out.values() if isinstance(v, torch.Tensor))


def test_ctc_model_and_processor_transcribe_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no Hub: the name must not reach it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        processor = wavlm.WavLMProcessor.from_pretrained("tiny-synth-ctc")
        model = wavlm.WavLMForCTC.from_pretrained("tiny-synth-ctc").eval()
    import torch

    inputs = processor(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1,
                       sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model(**inputs).logits.argmax(-1)
    assert isinstance(processor.batch_decode(ids)[0], str)


def test_local_folder_of_the_same_name_wins(tmp_path, monkeypatch):
    config = wavlm.WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                               conv_dim=(16, 16), conv_kernel=(10, 32), conv_stride=(5, 64),
                               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    wavlm.WavLMModel(config).save_pretrained(tmp_path / "tiny-synth-ctc")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no shipped-model notice
        model = wavlm.WavLMModel.from_pretrained("tiny-synth-ctc")
    assert model.config.hidden_size == 32


def test_other_names_are_not_shipped():
    assert shipped_path("tiny-synth-nothing") is None and notice("microsoft/wavlm-base") is None
    assert notice("tiny-synth-ctc") is not None and "synthetic" in notice("tiny-synth-ctc")


def test_results_name_every_task_for_both_initialisations():
    tasks = results()["tasks"]
    assert set(tasks) == {"ctc", "xvector", "frames", "classify"}
    for task in tasks.values():
        assert set(task["test"]["synthetic test"]) == {"pretrained", "random"}


def test_cli_prints_the_notice(tmp_path):
    import soundfile

    soundfile.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    r = subprocess.run([sys.executable, "-m", "wavlm", "transcribe", "--model", "tiny-synth-ctc",
                        str(tmp_path / "a.wav"), "-q"], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "only on synthetic voices" in r.stderr and r.stderr.count("note:") == 1
