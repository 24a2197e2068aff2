"""Utterance mixing: the added segment is at most half the primary, inside it, at the drawn energy ratio, taken
from another utterance (or a noise recording) of the batch; the fraction mixed follows p; seeded runs repeat."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wavlm.pretrain.mixing import MixingConfig, energy_ratio_db, mix_batch


def speech_like(batch: int = 6, samples: int = 8000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    wavs = torch.randn(batch, samples, generator=g) * torch.linspace(0.05, 1.0, batch)[:, None]
    lengths = [samples - 700 * i for i in range(batch)]
    for i, n in enumerate(lengths):
        wavs[i, n:] = 0.0
    return wavs, lengths


def test_invariants_of_speech_mixing():
    wavs, lengths = speech_like()
    config = MixingConfig(prob=1.0)
    seen = 0
    for seed in range(20):
        mixed, mixes = mix_batch(wavs, lengths, config, np.random.default_rng(seed))
        for i, mix in enumerate(mixes):
            assert mix is not None and mix.kind == "speech"
            seen += 1
            assert mix.partner != i
            assert 1 <= mix.length <= lengths[i] // 2                       # at most half the primary
            assert 0 <= mix.start and mix.start + mix.length <= lengths[i]  # inside its real samples
            assert mix.source_start + mix.length <= lengths[mix.partner]
            assert -5.0 <= mix.ratio_db <= 5.0
            added = (mixed[i] - wavs[i]).double()
            outside = torch.ones(wavs.shape[1], dtype=torch.bool)
            outside[mix.start:mix.start + mix.length] = False
            assert added[outside].abs().max() == 0                          # nothing else changed (padding stays 0)
            segment = added[mix.start:mix.start + mix.length]
            source = wavs[mix.partner, mix.source_start:mix.source_start + mix.length].double()
            assert torch.allclose(segment, source * mix.scale, atol=1e-5)   # a scaled copy of the partner
            measured = energy_ratio_db(wavs[i, :lengths[i]], segment)
            assert measured == pytest.approx(mix.ratio_db, abs=1e-3)
    assert seen == 120


def test_probability_and_seed():
    wavs, lengths = speech_like(batch=8)
    config = MixingConfig(prob=0.2)
    count = sum(m is not None for seed in range(100) for m in mix_batch(wavs, lengths, config,
                                                                         np.random.default_rng(seed))[1])
    assert 0.14 < count / 800 < 0.26
    a, ma = mix_batch(wavs, lengths, config, np.random.default_rng(3))
    b, mb = mix_batch(wavs, lengths, config, np.random.default_rng(3))
    assert torch.equal(a, b) and ma == mb
    unmixed, none = mix_batch(wavs, lengths, MixingConfig(prob=0.0), np.random.default_rng(0))
    assert torch.equal(unmixed, wavs) and none == [None] * 8


def test_noise_branch_uses_its_range():
    wavs, lengths = speech_like(batch=4)
    noise = [np.random.default_rng(1).standard_normal(3000).astype(np.float32)]
    config = MixingConfig(prob=1.0, noise_prob=1.0)
    ratios = []
    for seed in range(30):
        mixed, mixes = mix_batch(wavs, lengths, config, np.random.default_rng(seed), noises=noise)
        for i, mix in enumerate(mixes):
            assert mix.kind == "noise" and mix.length <= min(lengths[i] // 2, 3000)
            segment = (mixed[i] - wavs[i])[mix.start:mix.start + mix.length]
            assert energy_ratio_db(wavs[i, :lengths[i]], segment) == pytest.approx(mix.ratio_db, abs=1e-3)
            ratios.append(mix.ratio_db)
    assert min(ratios) >= -5 and max(ratios) <= 20 and max(ratios) > 5  # noise goes beyond the speech range


def test_single_utterance_and_silence_are_left_alone():
    wavs, lengths = speech_like(batch=1)
    mixed, mixes = mix_batch(wavs, lengths, MixingConfig(prob=1.0), np.random.default_rng(0))
    assert mixes == [None] and torch.equal(mixed, wavs)
    silent = torch.zeros(2, 4000)
    mixed, mixes = mix_batch(silent, [4000, 4000], MixingConfig(prob=1.0), np.random.default_rng(0))
    assert mixes == [None, None] and torch.isfinite(mixed).all()


def test_bad_input_is_named():
    wavs, lengths = speech_like(batch=2)
    with pytest.raises(ValueError, match="prob must be in"):
        MixingConfig(prob=1.5)
    with pytest.raises(ValueError, match="speech_ratio_db"):
        MixingConfig(speech_ratio_db=(5, -5))
    with pytest.raises(ValueError, match="needs noise recordings"):
        mix_batch(wavs, lengths, MixingConfig(noise_prob=0.5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="lengths must give"):
        mix_batch(wavs, [9000, 10], MixingConfig(), np.random.default_rng(0))
