"""Shared fixtures for the front-end tests: a character vocabulary as written by wav2vec2 CTC fine-tuning."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

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
