"""Pre-training collate: crops on frame boundaries keep labels aligned, mixing leaves the labels untouched,
evaluation batches pad with unscored frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wavlm.pretrain.data import collate_pretrain
from wavlm.pretrain.mixing import MixingConfig
from wavlm.pretrain.targets import FrameGeometry

GEOMETRY = FrameGeometry()


def no_mask(lengths, frames, rng):
    return torch.zeros(len(lengths), frames, dtype=torch.bool)


def ramp_batch(lengths=(16000, 12000, 20000)):
    """Audio whose sample value is its index, and labels equal to the frame index: any misalignment shows."""
    wavs = [np.arange(n, dtype=np.float32) for n in lengths]
    labels = [np.arange(GEOMETRY.frames(n)) for n in lengths]
    return wavs, labels


def test_training_crop_keeps_labels_aligned():
    wavs, labels = ramp_batch()
    for seed in range(10):
        batch = collate_pretrain(wavs, labels, GEOMETRY, no_mask, np.random.default_rng(seed), max_samples=10000)
        assert batch.input_values.shape == (3, 10000) and batch.labels.shape == (3, GEOMETRY.frames(10000))
        assert (batch.attention_mask == 1).all()
        starts = batch.input_values[:, 0].long()
        assert (starts % 320 == 0).all()
        assert torch.equal(batch.labels, starts[:, None] // 320 + torch.arange(batch.labels.shape[1]))
    short = collate_pretrain(wavs, labels, GEOMETRY, no_mask, np.random.default_rng(0))
    assert short.input_values.shape == (3, 12000)  # the shortest utterance


def test_mixing_leaves_targets_untouched():
    rng = np.random.default_rng(0)
    wavs = [rng.standard_normal(n).astype(np.float32) for n in (16000, 16000, 16000, 16000)]
    labels = [rng.integers(0, 50, GEOMETRY.frames(16000)) for _ in wavs]
    plain = collate_pretrain(wavs, labels, GEOMETRY, no_mask, np.random.default_rng(4))
    mixed = collate_pretrain(wavs, labels, GEOMETRY, no_mask, np.random.default_rng(4), mixing=MixingConfig(prob=1.0))
    assert all(m is not None for m in mixed.mixes)
    assert not torch.equal(plain.input_values, mixed.input_values)
    assert torch.equal(plain.labels, mixed.labels)
    assert torch.equal(plain.labels, torch.from_numpy(np.stack(labels)))


def test_evaluation_pads_with_unscored_frames():
    wavs, labels = ramp_batch()
    batch = collate_pretrain(wavs, labels, GEOMETRY, no_mask, None, mixing=MixingConfig(prob=1.0))
    assert batch.input_values.shape == (3, 20000) and batch.mixes == [None] * 3
    assert batch.attention_mask.sum(-1).tolist() == [16000, 12000, 20000]
    assert (batch.labels[1, GEOMETRY.frames(12000):] == -100).all()
    assert (batch.labels[1, :GEOMETRY.frames(12000)] >= 0).all()


def test_normalised_rows_and_masks():
    rng = np.random.default_rng(0)
    wavs = [rng.standard_normal(8000).astype(np.float32) * 3 + 1 for _ in range(2)]
    labels = [np.zeros(GEOMETRY.frames(8000), dtype=np.int64)] * 2

    def mask(lengths, frames, rng):
        return torch.ones(len(lengths), frames, dtype=torch.bool)

    batch = collate_pretrain(wavs, labels, GEOMETRY, mask, np.random.default_rng(0), normalize=True)
    assert torch.allclose(batch.input_values.mean(-1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(batch.input_values.std(-1, unbiased=False), torch.ones(2), atol=1e-4)
    assert batch.masked_frames == 2 * GEOMETRY.frames(8000)


def test_label_count_is_checked():
    wavs, labels = ramp_batch()
    labels[1] = labels[1][:-1]
    with pytest.raises(ValueError, match="utterance 1: 36 labels for 37 frames"):
        collate_pretrain(wavs, labels, GEOMETRY, no_mask, None)
