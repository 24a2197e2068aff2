"""Gated relative-position multi-head attention of WavLM (paper section 2.2; released-code gate, UniSpeech issue #25).

The bucketed relative-position bias is built once per forward from a (H, 2T-1) table of per-offset values and
shared by all layers; each layer gates it per query from its own input and adds it to the attention scores as a
float mask. Long inputs and CPU inference run the same arithmetic over query blocks (wavlm.kernels.attention).
`output_attentions=True` takes an explicit softmax.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wavlm import kernels
from wavlm.config import WavLMConfig


def relative_position_buckets(relative: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bucket index of each relative offset `key_position - query_position` (int64 in, int64 out).

    Half the buckets hold positive offsets. Offsets below `num_buckets // 4` get a bucket each, larger ones share
    logarithmically spaced buckets up to `max_distance`, beyond which the last bucket is used.
    """
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    max_exact = half // 2
    log_ratio = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
    distant = (max_exact + log_ratio * (half - max_exact)).long()
    distant = distant.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, distant)


def position_bias_table(embedding: nn.Embedding, num_frames: int, num_buckets: int,
                        max_distance: int) -> torch.Tensor:
    """(H, 2T-1) bias per head for every offset from -(T-1) to T-1 (column `offset + T - 1`)."""
    offsets = torch.arange(-(num_frames - 1), num_frames, device=embedding.weight.device)
    # contiguous per head, so that bias rows cut from it (and gated products of them) are dense row-major blocks
    return embedding(relative_position_buckets(offsets, num_buckets, max_distance)).t().contiguous()


def position_bias_rows(table: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Rows `start:end` of the (H, T, T) bias, bias[h, i, j] = table[h, j - i + T - 1], as (1, H, end-start, T).

    A gather with an index built from two aranges: it traces with symbolic T (export, dynamic compile), which a
    sliding-window view of the table does not."""
    num_frames = (table.shape[1] + 1) // 2
    keys = torch.arange(num_frames, device=table.device)
    queries = torch.arange(start, end, device=table.device)
    return table[:, keys[None, :] - queries[:, None] + (num_frames - 1)].unsqueeze(0)


class Attention(nn.Module):
    """Multi-head self-attention with WavLM's gated relative position bias. Parameter names follow transformers."""

    def __init__(self, config: WavLMConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        dim, self.num_heads = config.hidden_size, config.num_attention_heads
        self.head_dim = dim // self.num_heads
        self.dropout = config.attention_dropout
        self.num_buckets, self.max_distance = config.num_buckets, config.max_bucket_distance
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos_linear = nn.Linear(self.head_dim, 8)
        self.gru_rel_pos_const = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))
        if has_relative_position_bias:  # only layer 0 owns the table; the others reuse its bias
            # initialised by the model's _init_weights; skipping nn.Embedding's own N(0, 1) init keeps meta-device
            # construction free of torch's reference kernels (which import torch._dynamo)
            self.rel_attn_embed = nn.Embedding(self.num_buckets, self.num_heads,
                                               _weight=torch.empty(self.num_buckets, self.num_heads))

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, H, T, K) from x (B, T, C)."""
        split = (x.shape[0], x.shape[1], self.num_heads, self.head_dim)
        return tuple(kernels.linear(layer, x).view(split).transpose(1, 2)
                     for layer in (self.q_proj, self.k_proj, self.v_proj))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Per-query gate (B, H, T, 1) computed from the attention input x (B, T, C), not from the projected queries."""
        batch, frames, _ = x.shape
        heads = x.view(batch, frames, self.num_heads, self.head_dim).transpose(1, 2)
        logits = self.gru_rel_pos_linear(heads).view(batch, self.num_heads, frames, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(logits).chunk(2, dim=-1)
        return gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor, key_padding: torch.Tensor | None = None,
                block_size: int | None = None, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C); position_bias (1, H, T, T), or the (H, 2T-1) table when `block_size` is set; key_padding
        (B, T) bool, True = padded frame (never attended to). Returns (B, T, C) and, if asked, weights (B, H, T, T)."""
        batch, frames, dim = x.shape
        q, k, v = self.project_qkv(x)
        gate = self.gate(x)
        padding = None
        if key_padding is not None:
            padding = torch.zeros(key_padding.shape, dtype=q.dtype, device=q.device)
            padding = padding.masked_fill(key_padding, float("-inf"))[:, None, None, :]  # (B, 1, 1, T)
        dropout = self.dropout if self.training else 0.0

        weights = None
        if output_attentions:
            bias = position_bias if block_size is None else position_bias_rows(position_bias, 0, frames)
            bias = (gate * bias).to(q.dtype)
            if padding is not None:
                bias = bias + padding
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(F.dropout(weights, dropout, self.training), v)
        elif block_size is None:
            out = kernels.gated_attention(q, k, v, gate, position_bias, padding, dropout)
        else:  # long inputs, CPU inference: the same attention over query blocks
            out = kernels.blockwise_attention(q, k, v, gate, position_bias, padding, block_size, dropout)
        out = out.transpose(1, 2).reshape(batch, frames, dim)
        return kernels.linear(self.out_proj, out), weights
