"""Issue 14, the model's side: what a careless user hands the model classes gives the right numbers or an error
that names the problem, never a silently wrong result. Reduced-precision statistics, attention masks that are not
right-padded 0/1, padded x-vector rows too short for the TDNN, NaN outputs, labels a loss cannot use, masks of the
wrong shape, checkpoints of the wrong size or dtype."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import wavlm
from conftest import tiny_kwargs
from wavlm.config import ConfigError
from wavlm.features import WavLMFeatureExtractor
from wavlm.model import masked_group_norm


def tiny(name: str = "WavLMModel", variant: str = "base", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return getattr(wavlm, name)(wavlm.WavLMConfig(**tiny_kwargs(variant, **overrides))).eval()


# ------------------------------------------------------------------------- item 1: float16/bfloat16 statistics
def test_float16_padding_invariant_group_norm_matches_float32_at_30_seconds():
    """The padding-invariant GroupNorm summed 96000 first-layer frames in float16: the features came out unrelated
    to float32's (per-frame cosine -0.02 with the tiny model at 30 s; NaN with the real one)."""
    model = tiny(mask_padding_in_group_norm=True)
    wav = torch.randn(1, 16000 * 30, generator=torch.Generator().manual_seed(1)) * 0.1
    lengths = torch.tensor([wav.shape[1]])
    with torch.no_grad():
        reference = model.feature_extractor(wav, lengths)
        model.half()
        half = model.feature_extractor(wav.half(), lengths).float()
    assert torch.isfinite(half).all()
    cosine = F.cosine_similarity(reference, half, dim=1)  # per frame, over channels
    assert cosine.min() > 0.999, float(cosine.min())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_group_norm_computes_its_statistics_in_float32(dtype):
    """A channel with a large offset over many frames: its float16 sum overflows, its bfloat16 sum loses the
    variance. In float32 statistics the result equals the float32 computation to the output's rounding."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 100_000, generator=gen) * 2 + 30
    valid = torch.ones(2, 1, 100_000, dtype=torch.bool)
    valid[1, :, 60_000:] = False
    norm = torch.nn.GroupNorm(4, 4)
    reference = masked_group_norm(x, valid, norm)
    low = masked_group_norm(x.to(dtype), valid, norm.to(dtype)).float()
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    tolerance = 0.02 if dtype == torch.float16 else 0.1  # the rounding of the input and output alone
    assert (low - reference)[valid.expand_as(x)].abs().max() < tolerance


def test_float16_chunked_conv_statistics_match_float32():
    """The chunked conv stack (long inputs) gathers the first layer's statistics in float64 and applies them in
    float32, also for a float16 model."""
    model = tiny()
    wav = torch.randn(1, 16000 * 4, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        reference = model.feature_extractor(wav, chunk_frames=0)
        model.half()
        chunked = model.feature_extractor(wav.half(), chunk_frames=40).float()
    assert F.cosine_similarity(reference, chunked, dim=1).min() > 0.999


def test_float16_sequence_pooling_does_not_overflow():
    """Masked mean pooling summed in float16 overflows past 65504: 99 frames of values near 1000 did."""
    model = tiny("WavLMForSequenceClassification")
    with torch.no_grad():
        model.projector.bias.fill_(1000.0)
    wav = torch.randn(2, 16000 * 2, generator=torch.Generator().manual_seed(3)) * 0.1
    mask = torch.ones_like(wav, dtype=torch.long)
    mask[1, 16000:] = 0
    with torch.no_grad():
        reference = model(wav, mask).logits
        half = model.half()(wav.half(), mask).logits.float()
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half, reference, rtol=0.05, atol=0.05 * reference.abs().max().item())


# ------------------------------------------------------------------------------- item 7: attention_mask values
def test_left_padded_batch_is_refused_with_a_hint():
    """Our own extractor pads on the left when asked; the model would read the padding as audio (4.4 off)."""
    extractor = WavLMFeatureExtractor(padding_side="left", return_attention_mask=True)
    gen = torch.Generator().manual_seed(0)
    batch = extractor([torch.randn(6000, generator=gen).numpy(), torch.randn(4000, generator=gen).numpy()],
                      padding=True, return_tensors="pt", sampling_rate=16000)
    with pytest.raises(ValueError, match=r"batch item\(s\) \[1\] is not right-padded.*padding_side='right'"):
        tiny()(**batch)


def test_mask_with_a_hole_is_refused():
    mask = torch.ones(1, 6000, dtype=torch.long)
    mask[0, 1000:1100] = 0
    with pytest.raises(ValueError, match="not right-padded"):
        tiny()(torch.randn(1, 6000), attention_mask=mask)


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_mask_values_other_than_0_and_1_are_refused(value):
    mask = torch.ones(2, 6000)
    mask[1, :10] = value
    with pytest.raises(ValueError, match=r"only 0 \(padding\) and 1 \(real sample\); batch item\(s\) \[1\]"):
        tiny()(torch.randn(2, 6000), attention_mask=mask)


def test_right_padded_masks_of_any_dtype_give_the_same_output():
    model, wav = tiny(), torch.randn(2, 6000, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 6000, dtype=torch.long)
    mask[1, 4000:] = 0
    with torch.no_grad():
        reference = model(wav, mask).last_hidden_state
        for dtype in (torch.bool, torch.int32, torch.float32):
            torch.testing.assert_close(model(wav, mask.to(dtype)).last_hidden_state, reference, rtol=0, atol=0)


# -------------------------------------------------------------------------------- item 8: short x-vector rows
def test_padded_xvector_row_too_short_for_the_tdnn_gets_the_single_row_error():
    model = tiny("WavLMForXVector", tdnn_kernel=(5, 3, 3), tdnn_dilation=(1, 2, 3), xvector_exact_pooling=True)
    alone = torch.randn(1, 2000)
    with pytest.raises(ValueError, match="x-vector TDNN needs at least 2 output frames"):
        model(alone)
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :2000] = torch.randn(16000), alone[0]
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 2000:] = 0
    with pytest.raises(ValueError, match=r"x-vector TDNN needs at least 2 output frames.*batch item\(s\) \[1\]"):
        model(batch, mask)


def test_padded_xvector_rows_long_enough_match_each_row_alone():
    model = tiny("WavLMForXVector", mask_padding_in_group_norm=True, xvector_exact_pooling=True)
    needed = wavlm.heads.frames_needed(model.config)
    samples = (needed - 1) * 320 + 400  # the fewest samples the TDNN takes
    gen = torch.Generator().manual_seed(5)
    batch = torch.zeros(2, 8000)
    batch[0], batch[1, :samples] = torch.randn(8000, generator=gen), torch.randn(samples, generator=gen)
    mask = torch.ones(2, 8000, dtype=torch.long)
    mask[1, samples:] = 0
    with torch.no_grad():
        padded = model(batch, mask).embeddings
        alone = model(batch[1:, :samples]).embeddings
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded[1:], alone, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------ item 4: NaN outputs in inference
def test_loud_unnormalised_audio_raises_instead_of_a_nan_embedding():
    wav = torch.randn(1, 8000).clamp(-1, 1) * 3e38
    with pytest.raises(ValueError, match=r"batch item\(s\) \[0\].*far outside \[-1, 1\].*do_normalize"):
        tiny()(wav)
    with pytest.raises(ValueError, match="far outside"):
        tiny("WavLMForXVector")(wav)


def test_weights_with_nan_are_named_at_the_first_forward():
    model = tiny()
    with torch.no_grad():
        model.encoder.layers[1].feed_forward.output_dense.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"weights are not finite.*encoder\.layers\.1\.feed_forward\.output_dense"):
        model(torch.randn(1, 4000))


def test_training_forward_is_not_checked_for_finite_output():
    """Training keeps plain PyTorch behaviour (no extra device sync per step): a NaN weight gives a NaN loss."""
    model = tiny("WavLMForCTC").train()
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
        model.wavlm.encoder.layers[1].feed_forward.output_dense.weight[0, 0] = float("nan")
    out = model(torch.randn(1, 6000), labels=torch.tensor([[5, 6]]))
    assert torch.isnan(out.loss)


# ----------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize("labels, error, words", [
    (torch.tensor([[1.0, 2.0]]), TypeError, "integer tensor of token ids"),
    (torch.tensor([1, 2]), ValueError, r"shape \(batch, label_length\) with batch 1"),
    (torch.tensor([[5, -3]]), ValueError, r"id\(s\) \[-3\] outside \[0, vocab_size=11\)"),
    (torch.tensor([[5, 11]]), ValueError, r"id\(s\) \[11\] outside"),
])
def test_ctc_labels_the_loss_cannot_use(labels, error, words):
    with pytest.raises(error, match=words):
        tiny("WavLMForCTC")(torch.randn(1, 6000), labels=labels)


def test_ctc_labels_padded_with_minus_100_still_work():
    loss = tiny("WavLMForCTC")(torch.randn(2, 6000), labels=torch.tensor([[5, 6, 7], [5, -100, -100]])).loss
    assert torch.isfinite(loss)


def test_ctc_blank_outside_the_vocabulary_is_named():
    with pytest.raises(ValueError, match=r"pad_token_id \(the blank\)"):
        tiny("WavLMForCTC", pad_token_id=11)(torch.randn(1, 6000), labels=torch.tensor([[5, 6]]))


@pytest.mark.parametrize("labels, error, words", [
    (torch.tensor([0, 3]), ValueError, r"class id\(s\) \[3\] outside \[0, num_labels=3\)"),
    (torch.tensor([0, -1]), ValueError, r"class id\(s\) \[-1\]"),
    (torch.tensor([0.0, 1.0]), TypeError, "integer tensor of class ids"),
    (torch.tensor([0, 1, 2]), ValueError, r"one class id per batch item \(2\)"),
])
@pytest.mark.parametrize("name", ["WavLMForSequenceClassification", "WavLMForXVector"])
def test_class_labels_the_loss_cannot_use(name, labels, error, words):
    with pytest.raises(error, match=words):
        tiny(name)(torch.randn(2, 6000), labels=labels)


@pytest.mark.parametrize("labels, words", [
    (torch.tensor([0.5, float("nan")]), "NaN or infinite"),
    (torch.tensor([[0.5], [0.1], [0.2]]), r"shape \(2,\)"),
])
def test_regression_labels_are_checked(labels, words):
    with pytest.raises(ValueError, match=words):
        tiny("WavLMForSequenceClassification", num_labels=1)(torch.randn(2, 6000), labels=labels)


def test_regression_labels_of_shape_batch_by_one_are_one_value_per_item():
    model = tiny("WavLMForSequenceClassification", num_labels=1)
    wav, target = torch.randn(2, 6000), torch.tensor([0.5, -1.0])
    assert torch.allclose(model(wav, labels=target[:, None]).loss, model(wav, labels=target).loss)


def test_multi_label_targets_must_be_probabilities():
    model = tiny("WavLMForSequenceClassification", problem_type="multi_label_classification")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        model(torch.randn(2, 6000), labels=torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 0.0]]))


def test_frame_labels_of_the_wrong_shape_are_named():
    model = tiny("WavLMForAudioFrameClassification")
    with pytest.raises(ValueError, match=r"must have shape \(1, 18, 3\).*got \(1, 18\)"):
        model(torch.randn(1, 6000), labels=torch.zeros(1, 18, dtype=torch.long))


# ------------------------------------------------------------------------------------- mask_time_indices
def test_mask_time_indices_of_the_wrong_shape_are_named():
    model = tiny()
    with pytest.raises(ValueError, match=r"mask_time_indices has shape \(1, 1\).*\(1, 18\)"):
        model(torch.randn(1, 6000), mask_time_indices=torch.ones(1, 1, dtype=torch.bool))


def test_mask_time_indices_without_a_mask_embedding_are_named():
    model = tiny(mask_time_prob=0.0)
    with pytest.raises(ValueError, match="mask_time_prob > 0"):
        model(torch.randn(1, 6000), mask_time_indices=torch.zeros(1, 18, dtype=torch.bool))


def test_mask_feature_length_error_speaks_of_channels():
    model = tiny(mask_feature_prob=0.5, mask_feature_length=40).train()
    with pytest.raises(ValueError, match=r"mask_feature_length=40\) must not exceed the number of channels \(32\)"):
        model(torch.randn(1, 6000))


# ------------------------------------------------------------------------------------------ configs given
def test_a_transformers_config_object_is_refused_with_the_conversion():
    tf = pytest.importorskip("transformers")
    theirs = tf.WavLMConfig(**tiny_kwargs())
    with pytest.raises(TypeError, match=r"got transformers\..*WavLMConfig.*WavLMConfig\.from_dict") as info:
        wavlm.WavLMModel(theirs)
    hint = wavlm.WavLMConfig.from_dict(theirs.to_dict())  # the conversion the message names works
    assert wavlm.WavLMModel(hint).config.hidden_size == 32
    assert "transformers" in str(info.value)


def test_a_field_of_the_wrong_type_set_after_construction_is_caught_by_the_model():
    config = wavlm.WavLMConfig(**tiny_kwargs())
    config.do_stable_layer_norm = "false"
    with pytest.raises(ConfigError, match="do_stable_layer_norm must be true or false"):
        wavlm.WavLMModel(config)


def test_from_pretrained_of_another_model_type_names_it(tmp_path):
    tiny().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "model_type": "hubert"}))
    with pytest.raises(ConfigError, match=r"config\.json: config has model_type 'hubert'"):
        wavlm.WavLMModel.from_pretrained(tmp_path)


# --------------------------------------------------------------------------- item 19: checkpoint messages
def test_too_many_layers_gives_a_short_message_that_names_the_cause(tmp_path):
    tiny().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "num_hidden_layers": 200}))
    with pytest.raises(wavlm.CheckpointError) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert len(message) < 3000, len(message)  # 180 KB before (920 KB at 1000 layers)
    assert "the checkpoint has 2 layers where config.num_hidden_layers is 200" in message
    missing = 198 * 19  # 19 tensors per layer past the first
    assert f"missing keys: {missing} [" in message and f"and {missing - 20} more" in message


def test_integer_weights_are_named_as_a_dtype_problem(tmp_path):
    tiny().save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({k: (v * 100).to(torch.int32) for k, v in state.items()}, tmp_path / "model.safetensors")
    with pytest.raises(wavlm.CheckpointError) as info:
        wavlm.WavLMModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert len(message) < 3000, len(message)  # 16 KB of torch's per-key errors before
    assert f"holds {len(state)} weight(s) of non-floating-point dtype int32" in message


@pytest.mark.parametrize("size", [-1, 2.5, True])
def test_attention_block_size_that_is_no_size_is_refused(size):
    """-1 returned NaN hidden states (caught since by the output check, but the cause is the argument)."""
    with pytest.raises(ValueError, match="attention_block_size must be None"):
        tiny()(torch.randn(1, 6000), attention_block_size=size)
