"""Inference options against fp32 on the tiny config: length-bucketed batching, bfloat16 with fp32 norms,
int8 dynamic quantisation, and the fast path against plain PyTorch (torch.compile is in tests/slow)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import wavlm
from wavlm import kernels
from wavlm.inference import (Fp32GroupNorm, Fp32LayerNorm, batched_forward, compile_model, length_buckets, pad_batch,
                             quantize_int8, to_bfloat16)
from wavlm.kernels import dispatch
from conftest import tiny_kwargs


def model(variant: str = "base", **overrides) -> wavlm.WavLMModel:
    torch.manual_seed(0)
    return wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs(variant, **overrides))).eval()


def waves(lengths=(12000, 4000, 30000, 4000, 17777)) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(n, generator=generator) for n in lengths]


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.float(), b.float(), dim=-1).min().item()


def test_length_buckets_sorts_and_respects_budget():
    lengths = [5, 30, 10, 30, 7, 100]
    batches = length_buckets(lengths, max_batch_samples=60, max_batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [5]  # longer than the budget: alone
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 60
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_pad_batch():
    values, mask = pad_batch([torch.ones(3), torch.ones(5)])
    assert values.shape == mask.shape == (2, 5)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert values[0, 3:].abs().sum() == 0


@pytest.mark.parametrize("budget", [16000, 40000, 10**7])
def test_batched_forward_returns_each_utterance_in_order(variant, budget):
    m = model(variant, mask_padding_in_group_norm=True)  # padding-invariant, so alone == in a batch
    inputs = waves()
    results = batched_forward(m, inputs, max_batch_samples=budget)
    assert len(results) == len(inputs)
    with torch.no_grad():
        for wave, result in zip(inputs, results):
            alone = m(wave[None]).last_hidden_state[0]
            assert result.shape == alone.shape
            assert (result - alone).abs().max() <= 1e-5


def test_batched_forward_on_a_head_returns_rows():
    torch.manual_seed(0)
    head = wavlm.WavLMForSequenceClassification(wavlm.WavLMConfig(**tiny_kwargs())).eval()
    results = batched_forward(head, waves(), max_batch_samples=40000, output="logits")
    assert [r.shape for r in results] == [torch.Size([3])] * 5


def test_bfloat16_keeps_norms_fp32_and_stays_close(variant, monkeypatch):
    """Where bfloat16 is native this runs the plan's fast kernels; elsewhere the capability is simulated and the
    reference kernels run bfloat16 (slow but exact), so the cast itself is checked on every CPU kind."""
    if not kernels.bfloat16_native():
        native = dispatch.Capability("AVX512", True, True, "simulated native bfloat16")
        monkeypatch.setattr(dispatch, "detect", lambda: native)
        monkeypatch.setenv("WAVLM_KERNELS", "reference")
    m = model(variant)
    fast = to_bfloat16(copy.deepcopy(m))
    norms = [x for x in fast.modules() if isinstance(x, (torch.nn.LayerNorm, torch.nn.GroupNorm))]
    assert norms and all(type(n) in (Fp32LayerNorm, Fp32GroupNorm) for n in norms)
    assert all(n.weight.dtype == torch.float32 for n in norms)
    assert not any(n._forward_hooks or n._forward_pre_hooks for n in norms)
    # the norms keep their float32 weights as they were, not rounded through bfloat16
    reference_norm = m.encoder.layers[0].final_layer_norm.weight
    assert torch.equal(fast.encoder.layers[0].final_layer_norm.weight, reference_norm)
    assert fast.encoder.layers[0].attention.q_proj.weight.dtype == torch.bfloat16
    assert {k for k in fast.state_dict()} == {k for k in m.state_dict()}
    values = torch.randn(2, 32000)
    mask = torch.ones(2, 32000, dtype=torch.long)
    mask[1, 20000:] = 0
    with torch.no_grad():
        reference = m(values, attention_mask=mask).last_hidden_state
        out = fast(values, attention_mask=mask).last_hidden_state
    assert out.dtype == torch.bfloat16
    assert min_cosine(out[0], reference[0]) >= 0.999
    assert min_cosine(out[1, :60], reference[1, :60]) >= 0.999


def test_fp32_norms_compute_in_fp32_for_bfloat16_input():
    norm = torch.nn.LayerNorm(16)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 16).bfloat16()
    fp32 = Fp32LayerNorm(16)
    fp32.load_state_dict(norm.state_dict())
    out = fp32(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, norm(x.float()).bfloat16())
    group = Fp32GroupNorm(4, 4)
    y = torch.randn(2, 4, 50).bfloat16()
    assert torch.equal(group(y), torch.nn.GroupNorm(4, 4)(y.float()).bfloat16())


def test_int8_quantisation_stays_close(variant):
    m = model(variant)
    quantised = quantize_int8(m)
    assert type(quantised.encoder.layers[0].attention.q_proj) is not torch.nn.Linear
    assert type(m.encoder.layers[0].attention.q_proj) is torch.nn.Linear  # the original is untouched
    values = torch.randn(1, 32000)
    with torch.no_grad():
        reference = m(values).last_hidden_state
        out = quantised(values).last_hidden_state
    assert min_cosine(out[0], reference[0]) >= 0.99


def test_onednn_path_matches_plain_pytorch(variant):
    """Inference (oneDNN products, fused q/k/v, cached weights) against the same model with gradients enabled,
    which takes the plain PyTorch ops."""
    m = model(variant)
    values = torch.randn(2, 24000)
    mask = torch.ones(2, 24000, dtype=torch.long)
    mask[1, 15000:] = 0
    with torch.no_grad():
        fast = m(values, attention_mask=mask).last_hidden_state
    plain = m(values, attention_mask=mask).last_hidden_state.detach()
    assert (fast - plain).abs().max() <= 1e-5


def test_fast_path_follows_weight_updates():
    """No derived copy of the weights is kept: updating a weight in place changes the next inference call."""
    m = model()
    values = torch.randn(1, 16000)
    before_params = sum(t.numel() for t in m.state_dict().values())
    with torch.no_grad():
        before = m(values).last_hidden_state
        for layer in m.encoder.layers:
            layer.attention.v_proj.weight.mul_(0.5)
        m.encoder.pos_conv_embed.conv.parametrizations.weight.original1.mul_(2.0)  # weight norm: g stays, v moves
        after = m(values).last_hidden_state
    plain = m(values).last_hidden_state.detach()
    assert (after - before).abs().max() > 1e-3
    assert (after - plain).abs().max() <= 1e-5
    assert sum(t.numel() for t in m.state_dict().values()) == before_params
