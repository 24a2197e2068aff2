"""Exact long-audio paths on the tiny config: blockwise attention (query blocks with bias rows cut from the bucket
table) and the chunked conv feature encoder agree with the one-piece computation."""
from __future__ import annotations

import pytest
import torch

import wavlm
from wavlm.attention import position_bias_rows, position_bias_table, relative_position_buckets
from wavlm.kernels.attention import block_size
from conftest import tiny_kwargs


def model(variant: str, **overrides) -> wavlm.WavLMModel:
    torch.manual_seed(0)
    return wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs(variant, **overrides))).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    values = torch.randn(3, 40000)
    mask = torch.ones(3, 40000, dtype=torch.long)
    for row, length in ((1, 25000), (2, 9000)):
        values[row, length:] = 0
        mask[row, length:] = 0
    return values, mask


def test_bias_rows_match_the_bucketed_matrix():
    embedding = torch.nn.Embedding(32, 4)
    frames = 37
    table = position_bias_table(embedding, frames, 32, 64)
    positions = torch.arange(frames)
    full = embedding(relative_position_buckets(positions[None, :] - positions[:, None], 32, 64)).permute(2, 0, 1)
    assert torch.equal(position_bias_rows(table, 0, frames)[0], full)
    assert torch.equal(position_bias_rows(table, 5, 19)[0], full[:, 5:19])


@pytest.mark.parametrize("block", [1, 7, 16, 64])
def test_blockwise_attention_equals_full(variant, block):
    m = model(variant)
    values, mask = padded_batch()
    with torch.no_grad():
        full = m(values, attention_mask=mask, attention_block_size=0, output_hidden_states=True)
        blocked = m(values, attention_mask=mask, attention_block_size=block, output_hidden_states=True)
    assert full.last_hidden_state.shape[1] > block  # the blockwise path really ran
    for a, b in zip(full.hidden_states + (full.last_hidden_state,), blocked.hidden_states + (blocked.last_hidden_state,)):
        assert (a - b).abs().max() <= 1e-5


def test_blockwise_attention_with_weights_requested(variant):
    m = model(variant)
    values, mask = padded_batch()
    with torch.no_grad():
        full = m(values, attention_mask=mask, attention_block_size=0, output_attentions=True)
        blocked = m(values, attention_mask=mask, attention_block_size=8, output_attentions=True)
    assert (full.last_hidden_state - blocked.last_hidden_state).abs().max() <= 1e-5
    for a, b in zip(full.attentions, blocked.attentions):
        assert (a - b).abs().max() <= 1e-6


def test_block_size_is_chosen_above_the_memory_budget(monkeypatch):
    monkeypatch.setenv("WAVLM_KERNELS", "attention=sdpa")  # SDPA splits by memory; the oneDNN kernel always does
    frames = lambda batch, n: torch.empty(batch, n, 1)  # (B, T, C): only B, T and the dtype matter
    assert block_size(frames(1, 499), 12) is None  # 10 s of base: full attention
    rows = block_size(frames(1, 30000), 12)  # 10 min of base: blocks
    assert rows is not None and 16 <= rows < 30000
    assert block_size(frames(8, 30000), 12) <= rows


def test_automatic_choice_uses_blocks_and_agrees(variant, monkeypatch):
    import wavlm.kernels.attention as attention
    m = model(variant)
    values, mask = padded_batch()
    with torch.no_grad():
        full = m(values, attention_mask=mask, attention_block_size=0).last_hidden_state
        monkeypatch.setattr(attention, "FULL_BIAS_BUDGET_BYTES", 1024)
        monkeypatch.setattr(attention, "BLOCK_BIAS_BYTES", 4096)
        monkeypatch.setattr(attention, "ONEDNN_BLOCK_ROWS", 4)  # inference on CPU takes the oneDNN block path
        calls = []
        original = attention.reversed_bias_rows
        monkeypatch.setattr(attention, "reversed_bias_rows", lambda *a: calls.append(a[1:]) or original(*a))
        auto = m(values, attention_mask=mask).last_hidden_state
    assert len(calls) > 2  # several query blocks per layer
    assert (full - auto).abs().max() <= 1e-5


@pytest.mark.parametrize("chunk", [1, 5, 33])
@pytest.mark.parametrize("masked_norm", [False, True])
def test_chunked_conv_encoder_equals_one_piece(variant, chunk, masked_norm):
    m = model(variant, mask_padding_in_group_norm=masked_norm)
    values, mask = padded_batch()
    lengths = mask.sum(-1)
    with torch.no_grad():
        whole = m.feature_extractor(values, lengths, chunk_frames=0)
        pieces = m.feature_extractor(values, lengths, chunk_frames=chunk)
    assert whole.shape == pieces.shape
    assert (whole - pieces).abs().max() <= 1e-5


def test_long_input_chunks_conv_automatically(variant, monkeypatch):
    import wavlm.kernels.conv as conv
    m = model(variant)
    values, mask = padded_batch()
    with torch.no_grad():
        whole = m(values, attention_mask=mask, attention_block_size=0).last_hidden_state
        monkeypatch.setattr(conv, "CONV_CHUNK_BYTES", 40000)
        monkeypatch.setattr(conv, "CONV_PIECE_BYTES", 40000)
        chunks = []
        original = conv.chunked
        monkeypatch.setattr(conv, "chunked", lambda *a: chunks.append(a[3]) or original(*a))
        auto = m(values, attention_mask=mask, attention_block_size=0).last_hidden_state
    assert chunks  # the chunked path ran
    assert (whole - auto).abs().max() <= 1e-5


def test_tail_chunked_conv_layers_equal_one_piece(variant, monkeypatch):
    """Layers after the first run in overlapping time chunks in inference; the result is the same."""
    import wavlm.kernels.conv as conv
    monkeypatch.setenv("WAVLM_KERNELS", "conv=onednn")  # the chunks belong to the oneDNN conv kernel
    m = model(variant)
    values, _ = padded_batch()
    with torch.no_grad():
        whole = m.feature_extractor(values, None, chunk_frames=0)
        calls = []
        original = conv.tail_chunked
        monkeypatch.setattr(conv, "TAIL_CHUNK_BYTES", 2048)
        monkeypatch.setattr(conv, "tail_chunked", lambda encoder, x: calls.append(x.shape) or original(encoder, x))
        pieces = m.feature_extractor(values, None, chunk_frames=0)
    assert calls, "the tail was not chunked"
    assert whole.shape == pieces.shape
    assert (whole - pieces).abs().max() <= 1e-6
