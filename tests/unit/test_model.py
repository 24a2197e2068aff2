"""Behaviour of the model classes beyond transformers parity: input validation, the padding-invariant option,
layerdrop, freezing, the shared position bias, the attention paths, heads' own choices."""
from __future__ import annotations

import math

import pytest
import torch

import wavlm
from conftest import tiny_kwargs
from wavlm.attention import position_bias_rows, position_bias_table, relative_position_buckets
from wavlm.kernels.attention import reversed_bias_rows


def tiny(name: str = "WavLMModel", variant: str = "base", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return getattr(wavlm, name)(wavlm.WavLMConfig(**tiny_kwargs(variant, **overrides))).eval()


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value, error, words", [
    (torch.randn(4000), ValueError, "2-D (batch, samples)"),
    (torch.randn(1, 2, 4000), ValueError, "mix channels down"),
    (torch.zeros(1, 4000, dtype=torch.int16), TypeError, "floating-point"),
    ([0.0] * 4000, TypeError, "torch.Tensor"),
    (torch.randn(1, 399), ValueError, "shorter than the model's receptive field of 400 samples"),
    (torch.zeros(1, 0), ValueError, "shorter than the model's receptive field"),
])
def test_bad_input_values_are_named(value, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        tiny()(value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_samples_are_rejected_with_their_batch_index(bad):
    x = torch.randn(3, 4000)
    x[2, 100] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite samples in batch item\(s\) \[2\]"):
        tiny()(x)


def test_attention_mask_of_wrong_shape_or_too_short():
    model, x = tiny(), torch.randn(2, 4000)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 3999\)"):
        model(x, attention_mask=torch.ones(2, 3999, dtype=torch.long))
    mask = torch.ones(2, 4000, dtype=torch.long)
    mask[1, 300:] = 0
    with pytest.raises(ValueError, match=r"batch item\(s\) \[1\] have fewer valid samples \(\[300\]\)"):
        model(x, attention_mask=mask)


def test_xvector_on_audio_too_short_for_the_tdnn_explains():
    model = tiny("WavLMForXVector", tdnn_kernel=(5, 3, 3), tdnn_dilation=(1, 2, 3))
    with pytest.raises(ValueError, match="x-vector TDNN needs at least 2 output frames"):
        model(torch.randn(1, 2000))


def test_unknown_activation_and_config_type():
    with pytest.raises(ValueError, match="hidden_act"):
        wavlm.WavLMConfig(**tiny_kwargs(hidden_act="nope"))
    with pytest.raises(TypeError, match="needs a wavlm.WavLMConfig"):
        wavlm.WavLMModel({"hidden_size": 32})


# ------------------------------------------------------------------------------------------------- outputs
def test_output_record_access_styles():
    out = tiny()(torch.randn(2, 4000), output_hidden_states=True)
    assert out.last_hidden_state is out[0] is out["last_hidden_state"]
    assert out.extract_features is out[1]
    assert len(out.hidden_states) == 3 and out[2] is out.hidden_states
    assert out.attentions is None and "attentions" not in out
    assert list(out.keys()) == ["last_hidden_state", "extract_features", "hidden_states"]
    assert out.last_hidden_state.shape == (2, (4000 - 400) // 320 + 1, 32)
    assert out.extract_features.shape == (2, 12, 20)


def test_real_per_head_attention_weights():
    model, x = tiny(), torch.randn(2, 6000)
    mask = torch.ones_like(x, dtype=torch.long)
    mask[1, 3000:] = 0
    out = model(x, attention_mask=mask, output_attentions=True)
    frames = out.last_hidden_state.shape[1]
    valid = model._get_feature_vector_attention_mask(frames, mask)
    for weights in out.attentions:
        assert weights.shape == (2, 4, frames, frames)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, frames))
        assert weights[1][..., ~valid[1]].abs().max() == 0  # padded keys get no weight
    # the weights path and the SDPA path agree
    plain = model(x, attention_mask=mask)
    assert (plain.last_hidden_state - out.last_hidden_state).abs().max() < 1e-5


# --------------------------------------------------------------------------------------------- attention
def test_bucket_anchors_for_320_buckets_and_800_distance():
    rel = torch.tensor([-2000, -800, -500, -200, -100, -81, -80, -79, -1, 0, 1, 79, 80, 100, 200, 500, 799])
    expected = [159, 159, 143, 111, 87, 80, 80, 79, 1, 0, 161, 239, 240, 247, 271, 303, 319]
    assert relative_position_buckets(rel, 320, 800).tolist() == expected


def test_bias_rows_equal_the_full_bucket_matrix():
    embedding = torch.nn.Embedding(32, 4)
    frames = 37
    table = position_bias_table(embedding, frames, 32, 64)
    positions = torch.arange(frames)
    full = embedding(relative_position_buckets(positions[None, :] - positions[:, None], 32, 64)).permute(2, 0, 1)
    torch.testing.assert_close(position_bias_rows(table, 0, frames)[0], full, rtol=0, atol=0)
    torch.testing.assert_close(position_bias_rows(table, 5, 17)[0], full[:, 5:17], rtol=0, atol=0)
    # the blockwise path's view lists a block's rows last to first
    torch.testing.assert_close(reversed_bias_rows(table, 5, 17)[0], full[:, 5:17].flip(1), rtol=0, atol=0)


def test_position_bias_is_built_once_per_forward_and_attention_runs_through_sdpa(monkeypatch):
    model = tiny(num_hidden_layers=3)
    lookups = []
    model.encoder.layers[0].attention.rel_attn_embed.register_forward_hook(lambda *a: lookups.append(a[2].shape))
    calls = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def counting_sdpa(q, k, v, attn_mask=None, **kw):
        calls.append(attn_mask.shape)
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kw)

    monkeypatch.setattr(wavlm.attention.F, "scaled_dot_product_attention", counting_sdpa)
    # the reference kernels (a gradient-enabled call would take RecomputedAttention)
    monkeypatch.setenv(wavlm.kernels.ENV, "reference")
    model(torch.randn(4, 6000))
    frames = (6000 - 400) // 320 + 1
    assert lookups == [(2 * frames - 1, 4)]  # one lookup of the (2T-1) offsets, not a (B*H, T, T) copy
    assert calls == [(4, 4, frames, frames)] * 3


@pytest.mark.parametrize("block", [1, 5, 16])
def test_blockwise_attention_equals_full_attention(variant, block):
    model = tiny(variant=variant)
    x = torch.randn(3, 12000)
    mask = torch.ones_like(x, dtype=torch.long)
    mask[1, 7000:] = 0
    mask[2, 2500:] = 0
    full = model(x, attention_mask=mask, output_hidden_states=True, attention_block_size=10**6)
    blocks = model(x, attention_mask=mask, output_hidden_states=True, attention_block_size=block)
    for a, b in zip(full.hidden_states + (full.last_hidden_state,), blocks.hidden_states + (blocks.last_hidden_state,)):
        assert (a - b).abs().max() <= 1e-5


# ------------------------------------------------------------------------------------------------ padding
def test_group_norm_padding_changes_outputs_by_default_like_transformers():
    model = tiny("WavLMModel", "base")
    short = torch.randn(1, 5000)
    padded = torch.cat([short, torch.zeros(1, 7000)], dim=1)
    mask = torch.cat([torch.ones(1, 5000), torch.zeros(1, 7000)], dim=1).long()
    alone = model(short).last_hidden_state
    batched = model(padded, attention_mask=mask).last_hidden_state[:, :alone.shape[1]]
    assert (alone - batched).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["WavLMModel", "WavLMForSequenceClassification", "WavLMForXVector"])
def test_padding_invariant_option_gives_single_utterance_results(name):
    model = tiny(name, "base", mask_padding_in_group_norm=True, xvector_exact_pooling=True)
    lengths = (12000, 5000, 3300)
    x = torch.zeros(3, max(lengths))
    mask = torch.zeros(3, max(lengths), dtype=torch.long)
    singles = []
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randn(n)
        mask[i, :n] = 1
        singles.append(model(x[i:i + 1, :n]))
    batched = model(x, attention_mask=mask)
    for i, single in enumerate(singles):
        if name == "WavLMModel":
            frames = single.last_hidden_state.shape[1]
            diff = (batched.last_hidden_state[i, :frames] - single.last_hidden_state[0]).abs().max()
        elif name == "WavLMForXVector":
            diff = (batched.embeddings[i] - single.embeddings[0]).abs().max()
        else:
            diff = (batched.logits[i] - single.logits[0]).abs().max()
        assert diff <= 1e-5, (i, float(diff))


def test_layer_norm_models_are_padding_invariant_without_the_option():
    model = tiny("WavLMModel", "large")
    short = torch.randn(1, 5000)
    padded = torch.cat([short, torch.zeros(1, 7000)], dim=1)
    mask = torch.cat([torch.ones(1, 5000), torch.zeros(1, 7000)], dim=1).long()
    alone = model(short).last_hidden_state
    batched = model(padded, attention_mask=mask).last_hidden_state[:, :alone.shape[1]]
    assert (alone - batched).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------- training
def test_layerdrop_with_weighted_layer_sum_keeps_all_hidden_states():
    model = tiny("WavLMForSequenceClassification", num_hidden_layers=4, layerdrop=0.9, use_weighted_layer_sum=True,
                 mask_time_prob=0.0).train()
    for seed in range(10):
        torch.manual_seed(seed)
        out = model(torch.randn(2, 6000), labels=torch.tensor([0, 1]), output_hidden_states=True)
        assert len(out.hidden_states) == 5
        out.loss.backward()


def test_layerdrop_never_drops_layer_zero():
    full = tiny(num_hidden_layers=3, layerdrop=1.0, mask_time_prob=0.0).train()
    one = tiny(num_hidden_layers=1, mask_time_prob=0.0).train()
    one.load_state_dict({k: v for k, v in full.state_dict().items()
                        if not k.startswith(("encoder.layers.1.", "encoder.layers.2."))})
    x = torch.randn(2, 6000)
    assert (full(x).last_hidden_state - one(x).last_hidden_state).abs().max() < 1e-6


def test_freezing():
    model = tiny("WavLMForCTC").train()
    model.freeze_feature_encoder()
    model(torch.randn(2, 6000), labels=torch.tensor([[1, 2], [3, 4]])).loss.backward()
    assert all(p.grad is None for p in model.wavlm.feature_extractor.parameters())
    assert model.wavlm.encoder.layers[0].attention.q_proj.weight.grad is not None
    model.zero_grad()
    model.freeze_base_model()
    model(torch.randn(2, 6000), labels=torch.tensor([[1, 2], [3, 4]])).loss.backward()
    assert all(p.grad is None for p in model.wavlm.parameters())
    assert model.lm_head.weight.grad is not None


def test_ctc_label_out_of_vocabulary():
    with pytest.raises(ValueError, match=r"labels contain id\(s\) \[11\] outside \[0, vocab_size=11\)"):
        tiny("WavLMForCTC")(torch.randn(1, 6000), labels=torch.tensor([[1, 11]]))


def test_regression_when_one_label():
    model = tiny("WavLMForSequenceClassification", num_labels=1)
    out = model(torch.randn(2, 6000), labels=torch.tensor([0.5, -1.0]))
    expected = torch.nn.functional.mse_loss(out.logits.squeeze(-1), torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(out.loss, expected)
    model.config.problem_type = "multi_label_classification"
    model = tiny("WavLMForSequenceClassification", num_labels=3, problem_type="multi_label_classification")
    out = model(torch.randn(2, 6000), labels=torch.tensor([[1, 0, 1], [0, 0, 1]]))
    assert out.loss.shape == () and torch.isfinite(out.loss)


def test_heads_reject_the_adapter():
    for name in ("WavLMForSequenceClassification", "WavLMForAudioFrameClassification"):
        with pytest.raises(ValueError, match="does not support the adapter"):
            tiny(name, add_adapter=True)


def test_length_helpers():
    model = tiny("WavLMForCTC", add_adapter=True, num_adapter_layers=2, adapter_stride=2)
    assert model._get_feat_extract_output_lengths(16000, add_adapter=False) == 49
    assert model._get_feat_extract_output_lengths(16000) == math.floor((math.floor((49 - 1) / 2) + 1 - 1) / 2) + 1
    mask = torch.zeros(2, 16000, dtype=torch.long)
    mask[0] = 1
    mask[1, :8000] = 1
    frame_mask = model._get_feature_vector_attention_mask(49, mask, add_adapter=False)
    assert frame_mask.dtype == torch.bool and frame_mask.sum(-1).tolist() == [49, 24]


def test_parameter_count_and_fresh_init_statistics():
    model = wavlm.WavLMModel(wavlm.WavLMConfig())
    assert model.num_parameters() == 94_381_936  # microsoft/wavlm-base as counted by transformers
    std = model.encoder.layers[3].attention.q_proj.weight.std().item()
    assert abs(std - 0.02) < 0.002
    assert model.encoder.layers[3].attention.q_proj.bias.abs().max() == 0


@pytest.mark.skipif(not wavlm.kernels.detect().onednn, reason="torch built without oneDNN")
def test_onednn_inference_path_equals_the_sdpa_path(variant, monkeypatch):
    """Under no_grad on CPU with the oneDNN attention kernel (forced, so on every CPU kind), attention runs as
    oneDNN products in query blocks; with gradients, through SDPA."""
    import wavlm.kernels.attention as attention

    monkeypatch.setenv("WAVLM_KERNELS", "attention=onednn")
    monkeypatch.setattr(attention, "ONEDNN_BLOCK_ROWS", 5)
    model = tiny(variant=variant)
    x = torch.randn(3, 12000)
    mask = torch.ones_like(x, dtype=torch.long)
    mask[1, 7000:] = 0
    calls = []
    real = attention.onednn_attention
    monkeypatch.setattr(attention, "onednn_attention", lambda *a: calls.append(1) or real(*a))
    with torch.no_grad():
        fast = model(x, attention_mask=mask).last_hidden_state
    assert len(calls) == model.config.num_hidden_layers
    reference = model(x, attention_mask=mask).last_hidden_state  # gradients on: the SDPA path
    assert len(calls) == model.config.num_hidden_layers
    assert (fast - reference).abs().max() <= 1e-5
