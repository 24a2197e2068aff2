"""Shared fixtures: tiny WavLM configurations (hidden 32, 2 layers, conv strides multiplying to 320) that keep the
whole suite fast on 2 CPU cores, and a character vocabulary as written by wav2vec2 CTC fine-tuning."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask and attn_mask.*")

# strides 5*4*16 = 320 and kernels (10, 3, 20) giving a 400-sample receptive field, as in the real models
TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    conv_dim=(16, 24, 20), conv_kernel=(10, 3, 20), conv_stride=(5, 4, 16), conv_bias=False,
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64,
    vocab_size=11, num_labels=3, classifier_proj_size=7,
    tdnn_dim=(8, 8, 12), tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1), xvector_output_dim=6,
    hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
    final_dropout=0.0, layerdrop=0.0,
)
# base: group-norm feature encoder + post-LN encoder; large ("stable"): layer-norm encoder + pre-LN encoder
VARIANTS = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True),
}


def tiny_kwargs(variant: str = "base", **overrides) -> dict:
    return {**TINY, **VARIANTS[variant], **overrides}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request) -> str:
    return request.param

LETTERS = list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")


def make_vocab() -> dict[str, int]:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for i, c in enumerate(LETTERS):
        vocab[c] = 5 + i
    return vocab


@pytest.fixture
def vocab() -> dict[str, int]:
    return make_vocab()


@pytest.fixture
def vocab_file(tmp_path: Path, vocab: dict[str, int]) -> Path:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(vocab))
    return path
