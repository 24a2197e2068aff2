"""Targets: MFCC with deltas (properties of the Kaldi recipe), k-means on separable data (both backends), frame
labels at the model's frame rate for a whole corpus, and the targets folder."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_kwargs
from wavlm import WavLMConfig, WavLMModel
from wavlm.frames import num_frames
from wavlm.pretrain.targets import (FrameGeometry, LayerExtractor, assign, compute_targets, dct_matrix, deltas,
                                    fit_kmeans, load_targets, mel_filterbank, mfcc, mfcc_features)


def tone(freq: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mfcc_shape_and_frame_count():
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats = mfcc_features(wav)
    assert feats.shape == (1 + (16000 - 400) // 160, 39) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    with pytest.raises(ValueError, match="shorter than one 25 ms"):
        mfcc(np.zeros(300))
    with pytest.raises(ValueError, match="16000 Hz"):
        mfcc(wav, sample_rate=8000)


def test_mel_bank_and_dct():
    bank = mel_filterbank()
    assert bank.shape == (23, 257) and (bank >= 0).all() and bank.max() <= 1
    peaks = bank.argmax(-1)
    assert (peaks[1:] > peaks[:-1]).all()                 # increasing centre frequencies
    assert (bank[:, :1] == 0).all()                       # nothing below 20 Hz (bin 0 is DC)
    d = dct_matrix(23, 23)
    assert torch.allclose(d.t() @ d, torch.eye(23, dtype=d.dtype), atol=1e-10)  # orthonormal


def test_mfcc_tells_tones_apart_and_ignores_gain_in_higher_coefficients():
    low, high = mfcc(tone(300)), mfcc(tone(3000))
    assert (low[:, 1:] - high[:, 1:]).abs().mean() > 5
    noise = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    quiet, louder = mfcc(noise), mfcc(noise * 4)
    # a gain changes every log mel energy by the same amount (no bin at the floor): only c0 moves
    assert torch.allclose(louder[:, 1:], quiet[:, 1:], atol=1e-3)
    assert torch.allclose(louder[:, 0] - quiet[:, 0], torch.tensor(math.log(16) * math.sqrt(23)), atol=1e-3)


def test_deltas_of_a_ramp_are_its_slope():
    ramp = torch.arange(20, dtype=torch.float32)[:, None] * torch.tensor([[1.0, -2.0]])
    d = deltas(ramp)
    assert torch.allclose(d[2:-2], torch.tensor([[1.0, -2.0]]).expand(16, 2))
    assert torch.allclose(deltas(d)[4:-4], torch.zeros(12, 2), atol=1e-6)
    assert torch.allclose(deltas(torch.ones(7, 3)), torch.zeros(7, 3))


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_kmeans_recovers_separable_clusters(backend):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 5)) * 10
    truth = rng.integers(0, 6, 3000)
    x = (centres[truth] + rng.standard_normal((3000, 5)) * 0.3).astype(np.float32)
    centroids = fit_kmeans(x, 6, backend=backend, seed=0, n_init=3)
    labels = assign(x, centroids)
    # a perfect clustering: one cluster per true centre, up to renaming
    pairs = set(zip(truth.tolist(), labels.tolist()))
    assert len(pairs) == 6 and len({a for a, _ in pairs}) == 6 and len({b for _, b in pairs}) == 6
    assert np.abs(np.sort(centroids, axis=0) - np.sort(centres, axis=0)).max() < 0.2


def test_kmeans_bad_input():
    with pytest.raises(ValueError, match="at least 5 frames"):
        fit_kmeans(np.zeros((3, 2), np.float32), 5)
    with pytest.raises(ValueError, match="NaN"):
        fit_kmeans(np.full((10, 2), np.nan, np.float32), 2)
    with pytest.raises(ValueError, match="backend"):
        fit_kmeans(np.random.rand(10, 2).astype(np.float32), 2, backend="faiss")
    with pytest.raises(ValueError, match="3 dimensions but the centroids 2"):
        assign(np.zeros((4, 3)), np.zeros((2, 2)))


def tone_corpus(root, n: int = 8):
    """Utterances of two alternating tones: frames fall in two MFCC clusters (and the silence between)."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        parts = [tone(300 + 100 * (i % 3), 0.2), np.zeros(1600, np.float32), tone(2500, 0.2 + 0.04 * i)]
        wav = np.concatenate(parts) + np.random.default_rng(i).standard_normal(1).astype(np.float32) * 1e-3
        sf.write(root / f"u{i}.wav", wav, 16000)
        records.append({"audio": f"u{i}.wav", "id": f"u{i}", "duration": len(wav) / 16000})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root / "manifest.jsonl", records


def test_corpus_labels_at_the_model_frame_rate(tmp_path):
    manifest, records = tone_corpus(tmp_path / "corpus")
    out = compute_targets(manifest, tmp_path / "targets", 3, n_init=2, sample_fraction=0.5, min_sample_seconds=0)
    targets = load_targets(out)
    from wavlm.train.data import load_items

    ids = [it.id for it in load_items(manifest)]
    assert targets.clusters == 3 and set(targets.labels) == set(ids)
    records = [{**r, "id": uid} for r, uid in zip(records, ids)]  # the loop's item ids, as the labels are keyed
    info = targets.info
    assert info["features"]["kind"] == "mfcc" and info["conv_stride"] == [5, 2, 2, 2, 2, 2, 2]
    assert info["sample_utterances"] == 4 and info["utterances"] == 8
    for r in records:
        samples = int(round(r["duration"] * 16000))
        labels = targets.labels[r["id"]]
        assert len(labels) == num_frames(samples)
    # the tone parts of every utterance get one label each, and the two tones different ones
    first = {int(np.bincount(targets.labels[r["id"]][2:8]).argmax()) for r in records}
    last = {int(np.bincount(targets.labels[r["id"]][-6:]).argmax()) for r in records}
    assert len(last) == 1 and not first & last
    assert sum(info["counts"]) == info["frames"] and 0 < info["majority_rate"] < 1
    assert not list(out.glob(".*"))  # no rank parts left behind
    # another receptive field: same starts, cut or padded with -100
    labels = targets.for_frames(ids[0], len(targets.labels[ids[0]]) + 2)
    assert (labels[-2:] == -100).all()
    with pytest.raises(KeyError, match="no targets for utterance 'nope'"):
        targets.for_frames("nope", 3)


def test_layer_targets_use_the_models_frames(tmp_path):
    manifest, records = tone_corpus(tmp_path / "corpus", n=4)
    from wavlm.train.data import load_items

    items = load_items(manifest)
    records = [{**r, "id": it.id} for r, it in zip(records, items)]
    torch.manual_seed(0)
    model = WavLMModel(WavLMConfig(**tiny_kwargs(num_hidden_layers=3)))
    extractor = LayerExtractor(model, layer=2, source="tiny")
    wav = tone(440, 0.5)
    full = model.eval()(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[2][0]
    assert np.allclose(extractor(wav), full.detach().numpy(), atol=1e-5)  # the truncated stack gives the same
    assert len(model.encoder.layers) == 3
    out = compute_targets(items, tmp_path / "t", 4, extractor, n_init=2, min_sample_seconds=0, backend="torch")
    targets = load_targets(out)
    assert targets.info["features"] == {"kind": "layer", "model": "tiny", "layer": 2, "normalize": False, "dim": 32}
    for r in records:
        assert len(targets.labels[r["id"]]) == model._get_feat_extract_output_lengths(int(r["duration"] * 16000))
    with pytest.raises(ValueError, match="layer must be in 0..3"):
        LayerExtractor(model, layer=4)


def test_not_a_targets_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a targets folder"):
        load_targets(tmp_path)


def test_frame_geometry():
    g = FrameGeometry.of(WavLMConfig(**tiny_kwargs()))
    assert g.stride == 320 and g.frames(16000) == 49 and math.isclose(g.frames(400), 1)
