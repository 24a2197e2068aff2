"""WavLMForPreTraining: span-mask statistics, the loss at initialisation, gradients into the head, the feature
penalty and gradient scale, layerdrop seeding, and the checkpoint layout (a backbone transformers loads + the head)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_kwargs
from wavlm import WavLMConfig, WavLMModel
from wavlm.masking import compute_mask_indices
from wavlm.pretrain.model import PreTrainingConfig, WavLMForPreTraining, scale_gradient

K = 40


def make_model(variant: str = "base", clusters: int = K, **head) -> WavLMForPreTraining:
    torch.manual_seed(0)
    return WavLMForPreTraining(WavLMConfig(**tiny_kwargs(variant)), PreTrainingConfig(clusters, **head))


def batch(model: WavLMForPreTraining, size: int = 3, samples: int = 16000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = int(model.frames(samples))
    return torch.randn(size, samples, generator=g), torch.randint(0, model.head.num_clusters, (size, frames),
                                                                  generator=g)


def test_released_mask_statistics():
    """p = 0.8, L = 10, at least 2 spans: about 57 % of frames masked, spans of 10, only inside real frames."""
    rng = np.random.default_rng(0)
    lengths = np.array([500] * 30 + [250] * 30)
    valid = np.arange(500)[None] < lengths[:, None]
    mask = compute_mask_indices((60, 500), 0.8, 10, attention_mask=valid, min_masks=2, rng=rng)
    assert not (mask & ~valid).any()
    fraction = mask[:30].mean()
    assert 0.53 < fraction < 0.61, fraction
    assert 0.53 < mask[30:, :250].mean() < 0.61
    # every run of masked frames is a union of whole spans: at least 10 frames long (or it hits the row end)
    for row, n in zip(mask, lengths):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row[:n].astype(int), [0]])))
        runs = edges[1::2] - edges[::2]
        assert runs.min() >= 10
    # few frames: min_masks spans still
    short = compute_mask_indices((4, 25), 0.8, 10, min_masks=2, rng=np.random.default_rng(1))
    assert (short.sum(-1) >= 10).all()


def test_mask_rng_is_reproducible_and_leaves_global_state():
    state = np.random.get_state()[1].copy()
    a = compute_mask_indices((3, 200), 0.8, 10, min_masks=2, rng=np.random.default_rng(5))
    b = compute_mask_indices((3, 200), 0.8, 10, min_masks=2, rng=np.random.default_rng(5))
    assert (a == b).all()
    assert (np.random.get_state()[1] == state).all()


def test_compute_mask_refuses_short_rows():
    model = make_model()
    with pytest.raises(ValueError, match="shorter than mask_length"):
        model.compute_mask([8, 40], 40, np.random.default_rng(0))


@pytest.mark.parametrize("variant", ["base", "large"])
def test_loss_at_init_near_ln_k(variant):
    model = make_model(variant).train()
    wav, labels = batch(model, size=4)
    mask = model.compute_mask([labels.shape[1]] * 4, labels.shape[1], np.random.default_rng(0))
    out = model(wav, labels=labels, mask_time_indices=mask)
    ce = float(out.ce_masked / out.count_masked)
    assert abs(ce - math.log(K)) < 0.1, (ce, math.log(K))
    assert out.logits.abs().max() <= 1 / 0.1 + 1e-4  # cosine / temperature
    assert int(out.count_masked) == int(mask.sum()) and int(out.sample_size) == int(mask.sum())
    assert int(out.count_unmasked) == mask.numel() - int(mask.sum())
    expected = float(out.ce_masked / out.count_masked) + 10 * float(out.features_pen.detach())
    assert float(out.loss) == pytest.approx(expected, rel=1e-5)


def test_gradients_reach_head_and_mask_embedding():
    model = make_model().train()
    wav, labels = batch(model)
    out = model(wav, labels=labels, mask_time_indices=model.compute_mask([labels.shape[1]] * 3, labels.shape[1],
                                                                         np.random.default_rng(0)))
    out.loss.backward()
    for name in ("final_proj.weight", "final_proj.bias", "label_embeddings", "wavlm.masked_spec_embed",
                 "wavlm.feature_extractor.conv_layers.0.conv.weight", "wavlm.encoder.layers.1.feed_forward."
                 "output_dense.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # only the labels of the batch get an embedding gradient... all K embeddings enter the softmax denominator
    assert (model.label_embeddings.grad.abs().sum(-1) > 0).all()


def test_unmasked_weight_and_ignored_frames():
    model = make_model(unmasked_weight=0.5, feature_penalty=0.0).train()
    wav, labels = batch(model, size=2)
    labels[1, 20:] = -100
    mask = model.compute_mask([labels.shape[1]] * 2, labels.shape[1], np.random.default_rng(0))
    out = model(wav, labels=labels, mask_time_indices=mask)
    scored = labels != -100
    assert int(out.count_masked) == int((mask & scored).sum())
    assert int(out.count_unmasked) == int((~mask & scored).sum())
    assert float(out.loss_sum) == pytest.approx(float(out.ce_masked + 0.5 * out.ce_unmasked), rel=1e-5)


def test_bad_labels_are_named():
    model = make_model()
    wav, labels = batch(model, size=1)
    with pytest.raises(ValueError, match=r"labels have shape \(1, 48\)"):
        model(wav, labels=labels[:, 1:])
    labels[0, 3] = K
    with pytest.raises(ValueError, match=r"cluster ids in \[0, 40\)"):
        model(wav, labels=labels)
    with pytest.raises(ValueError, match="num_clusters must be at least 2"):
        PreTrainingConfig(1)


def test_padding_is_never_scored():
    model = make_model().eval()
    wav, labels = batch(model, size=2)
    attention = torch.ones_like(wav, dtype=torch.long)
    attention[1, 8000:] = 0
    frames = labels.shape[1]
    mask = torch.ones(2, frames, dtype=torch.bool)
    out = model(wav, attention, labels, mask_time_indices=mask)
    real = int(model.frames(8000))
    assert int(out.count_masked) == frames + real
    assert not out.mask_time_indices[1, real:].any()


def test_feature_gradient_is_scaled():
    x = torch.randn(5, requires_grad=True)
    y = scale_gradient(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((5,), 0.1))

    def conv_grad(mult: float) -> torch.Tensor:
        model = make_model(feature_grad_mult=mult, feature_penalty=0.0).train()
        wav, labels = batch(model)
        mask = model.compute_mask([labels.shape[1]] * 3, labels.shape[1], np.random.default_rng(0))
        model(wav, labels=labels, mask_time_indices=mask).loss.backward()
        return model.wavlm.feature_extractor.conv_layers[-1].conv.weight.grad

    assert torch.allclose(conv_grad(0.1), 0.1 * conv_grad(1.0), rtol=1e-4, atol=1e-9)


def test_feature_penalty_is_mean_square_of_conv_features():
    model = make_model().eval()
    wav, labels = batch(model, size=2)
    out = model(wav, labels=labels)
    conv = model.wavlm.feature_extractor(wav)
    assert float(out.features_pen) == pytest.approx(float(conv.pow(2).mean()), rel=1e-5)


def test_layerdrop_seed_is_shared():
    config = WavLMConfig(**tiny_kwargs(num_hidden_layers=4, layerdrop=0.5))
    torch.manual_seed(0)
    model = WavLMForPreTraining(config, PreTrainingConfig(K, final_dim=16)).train()
    wav, labels = batch(model, size=1)
    mask = model.compute_mask([labels.shape[1]], labels.shape[1], np.random.default_rng(0))

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)  # the global RNG differs, as on two ranks; the layerdrop generator does not
        model.set_layerdrop_seed(123)
        return model(wav, labels=labels, mask_time_indices=mask).loss

    assert torch.equal(run(0), run(1))
    drops = set()
    for seed in range(12):
        model.set_layerdrop_seed(seed)
        drops.add(round(float(model(wav, labels=labels, mask_time_indices=mask).loss), 5))
    assert len(drops) > 1  # layerdrop is really drawn from the seed


def test_save_is_a_wavlm_model_directory(tmp_path):
    model = make_model()
    with torch.no_grad():
        model.label_embeddings.mul_(2.0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "pretraining_head.json").is_file() and (tmp_path / "pretraining_head.safetensors").is_file()
    from transformers import WavLMModel as HFWavLMModel

    wav, _ = batch(model, size=1)
    theirs = HFWavLMModel.from_pretrained(tmp_path).eval()
    ours = WavLMModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a = theirs(wav).last_hidden_state
        b = ours(wav).last_hidden_state
        c = model.eval().wavlm(wav).last_hidden_state
    assert torch.allclose(a, c, atol=1e-5) and torch.allclose(b, c, atol=1e-6)

    again = WavLMForPreTraining.from_pretrained(tmp_path)
    assert torch.equal(again.label_embeddings, model.label_embeddings)
    assert torch.equal(again.final_proj.weight, model.final_proj.weight)
    assert again.head == model.head
    with pytest.warns(UserWarning, match="head starts afresh"):
        fresh = WavLMForPreTraining.from_pretrained(tmp_path, head=PreTrainingConfig(7, final_dim=16))
    assert fresh.label_embeddings.shape == (7, 16)


def test_continue_from_a_plain_backbone_keeps_its_architecture(tmp_path):
    config = WavLMConfig(**tiny_kwargs("large", mask_time_prob=0.0))
    WavLMModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no pre-training head"):
        WavLMForPreTraining.from_pretrained(tmp_path)
    model = WavLMForPreTraining.from_pretrained(tmp_path, head=PreTrainingConfig(K, final_dim=16))
    assert model.config.do_stable_layer_norm and model.config.hidden_size == 32
    assert hasattr(model.wavlm, "masked_spec_embed")
    wav, labels = batch(model, size=1)
    assert torch.isfinite(model.train()(wav, labels=labels).loss)
