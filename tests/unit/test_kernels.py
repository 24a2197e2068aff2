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


def _attention_inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    batch, heads, frames, dim = 2, 3, 9, 4
    q, k, v = (torch.randn(batch, heads, frames, dim, dtype=dtype, generator=g).requires_grad_() for _ in range(3))
    gate = torch.rand(batch, heads, frames, 1, dtype=dtype, generator=g).add_(0.5).requires_grad_()
    bias = torch.randn(1, heads, frames, frames, dtype=dtype, generator=g).requires_grad_()
    padding = torch.zeros(batch, 1, 1, frames, dtype=dtype)
    padding[1, ..., 6:] = float("-inf")
    return q, k, v, gate, bias, padding


def test_recomputed_training_attention_has_exact_gradients():
    """The training kernel's hand-written backward, against numerical gradients (float64), with and without
    padding; gradients reach q, k, v, the gate and the bias."""
    q, k, v, gate, bias, padding = _attention_inputs()
    for pad in (padding, None):
        assert torch.autograd.gradcheck(lambda *a: kernels.RecomputedAttention.apply(*a, pad, 0.0),
                                        (q, k, v, gate, bias))


def test_recomputed_training_attention_with_dropout_equals_autograd_of_the_formula():
    """With dropout: the same output and gradients as autograd through the formula with the same keep-mask (drawn
    from the same generator state), so the mask kept for backward is the one forward used."""
    q, k, v, gate, bias, padding = _attention_inputs()
    p = 0.3
    torch.manual_seed(5)
    out = kernels.RecomputedAttention.apply(q, k, v, gate, bias, padding, p)
    torch.manual_seed(5)
    keep, scale = kernels.dropout_keep_mask((q.shape[0] * q.shape[1], q.shape[2], q.shape[2]), p, q.device)
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + gate * bias + padding, dim=-1)
    expected = (weights * keep.view_as(weights) * scale) @ v
    assert 0.1 < 1 - keep.float().mean().item() < 0.5  # dropout did drop
    assert torch.allclose(out, expected, atol=1e-12)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (q, k, v, gate, bias), grad)
    theirs = torch.autograd.grad(expected, (q, k, v, gate, bias), grad)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_dropout_keep_mask_rate_and_scale(p):
    """The mask drops p of the values (to 1/65536) and the scale keeps the expectation: E[keep * scale] = 1."""
    torch.manual_seed(0)
    keep, scale = kernels.dropout_keep_mask((1000, 1001), p, torch.device("cpu"))
    assert keep.shape == (1000, 1001) and keep.dtype == torch.bool
    dropped = 1 - keep.double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / keep.numel()) ** 0.5 + 1 / 65536
    assert (scale == 0.0) if p == 1.0 else scale == pytest.approx(1 / (1 - round(p * 65536) / 65536), rel=1e-12)
    if 0 < p < 1:
        assert keep.double().mean().item() * scale == pytest.approx(1.0, abs=5e-3)
        # the bits of one 64-bit draw are independent: neighbours are kept together at the rate of chance
        both = (keep[:, 1:] & keep[:, :-1]).double().mean().item()
        assert both == pytest.approx((1 - p) ** 2, abs=5e-3)


def test_training_attention_runs_only_where_it_is_meant_to(monkeypatch):
    """Eager fp32/fp64 training on the CPU takes it; inference, autocast and WAVLM_KERNELS=reference take SDPA; a
    model trained with either gives the same gradients."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    assert kernels.kernel("training_attention", x) == "recompute"
    assert kernels.kernel("training_attention", x.detach()) == "sdpa"
    with torch.no_grad():
        assert kernels.kernel("training_attention", x) == "sdpa"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert kernels.kernel("training_attention", x) == "sdpa"
    assert kernels.kernel("training_attention", x.half()) == "sdpa"
    model = wavlm.WavLMForCTC(wavlm.WavLMConfig(**tiny_kwargs("base", mask_time_prob=0.0))).train()
    wav, mask = _batch()
    labels = torch.randint(1, model.config.vocab_size, (2, 5))

    def gradients(override):
        monkeypatch.setenv(kernels.ENV, override)
        model.zero_grad()
        model(wav, attention_mask=mask, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    fast, reference = gradients("auto"), gradients("reference")
    assert sorted(fast) == sorted(reference)
    for name, g in reference.items():
        assert (fast[name] - g).abs().max() <= 1e-5 * g.abs().max() + 1e-9, name


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
