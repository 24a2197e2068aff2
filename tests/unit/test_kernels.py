"""The kernel plan and its override: every fast path against the plain-PyTorch reference on this machine, the
bfloat16 fallback where the CPU has no native bfloat16, and errors for a bad WAVLM_KERNELS."""
from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import wavlm
from wavlm import kernels
from wavlm.cli import main
from wavlm.inference import to_bfloat16
from wavlm.kernels import dispatch
from conftest import tiny_kwargs


def _batch():
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 6400, generator=g)
    mask = torch.ones(2, 6400, dtype=torch.long)
    mask[1, 4000:] = 0
    return wav, mask


def _hidden(model, wav, mask, monkeypatch, override):
    if override is None:
        monkeypatch.delenv(kernels.ENV, raising=False)
    else:
        monkeypatch.setenv(kernels.ENV, override)
    with torch.inference_mode():
        return model(wav, attention_mask=mask, attention_block_size=None).last_hidden_state


@pytest.mark.parametrize("variant", ["base", "large"])
@pytest.mark.parametrize("override", [None, "attention=sdpa", "attention=onednn", "linear=onednn,conv=onednn"])
def test_each_fast_path_equals_the_reference(variant, override, monkeypatch):
    torch.manual_seed(0)
    model = wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs(variant))).eval()
    wav, mask = _batch()
    reference = _hidden(model, wav, mask, monkeypatch, "reference")
    fast = _hidden(model, wav, mask, monkeypatch, override)
    assert (fast - reference).abs().max().item() <= 1e-5


def test_the_override_changes_the_plan_and_reference_means_plain_pytorch(monkeypatch):
    monkeypatch.setenv(kernels.ENV, "reference")
    assert {c.kernel for c in kernels.plan("cpu", torch.float32)} <= set(kernels.REFERENCE.values())
    monkeypatch.setenv(kernels.ENV, "attention=sdpa")
    assert kernels.plan("cpu", torch.float32).kernel("attention") == "sdpa"


@pytest.mark.parametrize("value", ["bogus", "attention=nope", "matmul=onednn"])
def test_bad_override_names_the_variable(value, monkeypatch, capsys):
    monkeypatch.setenv(kernels.ENV, value)
    with pytest.raises(kernels.KernelConfigError, match=kernels.ENV):
        kernels.plan("cpu", torch.float32)
    assert main(["info", "--system"]) == 2
    assert kernels.ENV in capsys.readouterr().err


def test_without_native_bfloat16_a_request_warns_once_and_keeps_float32(monkeypatch):
    fake = dataclasses.replace(dispatch.detect(), isa="AVX2", bf16=False,
                               bf16_reason="CPU capability AVX2 has no native bfloat16 arithmetic")
    monkeypatch.setattr(dispatch, "detect", lambda: fake)
    dispatch._plan.cache_clear()
    dispatch._warned.clear()
    try:
        assert not kernels.bfloat16_native("cpu")
        model = wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs("base"))).eval()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            to_bfloat16(model)
            to_bfloat16(model)
        assert next(model.parameters()).dtype == torch.float32
        assert sum("bfloat16 requested" in str(w.message) for w in caught) == 1
    finally:
        dispatch._plan.cache_clear()
        dispatch._warned.clear()


def test_info_system_prints_the_machine_and_the_plan(capsys):
    assert main(["info", "--system"]) == 0
    out = capsys.readouterr().out
    assert "cpu_capability: " + torch.backends.cpu.get_cpu_capability() in out
    assert "kernels for cpu float32:" in out and "attention" in out
