"""Gated relative-position multi-head attention of WavLM (paper section 2.2; released-code gate, UniSpeech issue #25).

The bucketed relative-position bias is built once per forward from a (H, 2T-1) table of per-offset values and
shared by all layers; each layer gates it per query from its own input. Three ways to run the same attention:
one `F.scaled_dot_product_attention` call with the whole gated bias (short inputs, training); SDPA over query
blocks whose bias rows are a view of the table (long inputs, memory linear in length); and, for eager CPU
inference, per-head oneDNN matrix products over such blocks. `output_attentions=True` takes an explicit softmax.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from wavlm.config import WavLMConfig

# Above this many bytes for one layer's (B, H, T, T) gated bias (about 40 s of audio for base), attention runs in
# query blocks: measured on 2 CPU cores, blocks are as fast as one piece there and need a fraction of the memory.
FULL_BIAS_BUDGET_BYTES = 128 * 2**20
# Target size of one block's (B, H, block, T) gated bias: small enough to stay in cache between the gating and
# the attention kernel that reads it.
BLOCK_BIAS_BYTES = 8 * 2**20
# Query rows per block on the oneDNN attention path (CPU inference): measured fastest at 256-512 on 2 cores.
ONEDNN_BLOCK_ROWS = 256


# oneDNN's fp32/bf16 matrix product uses the CPU's widest vector units; the default BLAS on this build (MKL) stays
# on AVX2 on AMD CPUs, so oneDNN runs the transformer's linear layers about twice as fast there. Inference only:
# the op has no autograd formula, and compilers/exporters get the plain F.linear they know how to lower.
_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
ONEDNN_ACTIVATIONS = {"gelu": ("gelu", "none"), "gelu_new": ("gelu", "tanh"), "gelu_pytorch_tanh": ("gelu", "tanh"),
                       "relu": ("relu", "")}


def use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True where `linear` may call oneDNN directly: CPU, fp32/bf16, no gradient, eager (not compiling/tracing)."""
    return (_ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
            and weight.dtype == x.dtype and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


class DerivedTensors:
    """An inference cache of tensors computed from parameters (a fused q/k/v weight, a weight-normed kernel),
    recomputed when one of the parameters is replaced or updated in place. It keeps the parameters themselves (so
    that their memory cannot be reused by others) and their versions (load_state_dict bumps them; inference
    tensors have none)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: Any = None

    def get(self, params: list[torch.Tensor], compute: Callable[[], Any]) -> Any:
        key = tuple((t, 0 if t.is_inference() else t._version, t.dtype) for t in params)
        fresh = self.key is not None and len(self.key) == len(key) and all(
            a[0] is b[0] and a[1:] == b[1:] for a, b in zip(self.key, key))
        if not fresh:
            with torch.no_grad():
                self.value = compute()
            self.key = key
        return self.value


def onednn_activation(name: str | None) -> tuple[str, list, str]:
    """oneDNN post-op arguments (kind, scalars, algorithm) for an activation name, or none."""
    kind, algorithm = ONEDNN_ACTIVATIONS[name] if name else ("none", "")
    return kind, [], algorithm


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           activation: str | None = None) -> torch.Tensor:
    """F.linear, optionally followed by `activation` (one of ONEDNN_ACTIVATIONS), fused into oneDNN where possible."""
    if use_onednn(x, weight):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, *onednn_activation(activation))
    y = F.linear(x, weight, bias)
    if activation in ("gelu_new", "gelu_pytorch_tanh"):
        return F.gelu(y, approximate="tanh")
    return F.gelu(y) if activation == "gelu" else (F.relu(y) if activation == "relu" else y)


def apply_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x), through `linear` for a plain nn.Linear (a quantised or otherwise replaced layer runs as itself)."""
    if type(layer) is nn.Linear:
        return linear(x, layer.weight, layer.bias)
    return layer(x)


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


def reversed_bias_rows(table: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Rows `end-1` down to `start` of the (H, T, T) bias as a (1, H, end-start, T) view of the table, no copy.

    Row i is table[h, T-1-i : 2T-1-i], a window that slides left as i grows; a strided view can only slide right,
    so the view lists the rows in reverse order and the caller flips its queries to match."""
    num_frames = (table.shape[1] + 1) // 2
    return table.unfold(1, num_frames, 1)[:, num_frames - end:num_frames - start].unsqueeze(0)


def choose_block_size(batch: int, heads: int, num_frames: int, itemsize: int, onednn: bool = False) -> int | None:
    """None when the whole (B, H, T, T) bias fits the budget, else the number of query rows per block. The oneDNN
    path always works in blocks (its memory is one block's scores per head)."""
    if onednn:
        return min(num_frames, ONEDNN_BLOCK_ROWS)
    if batch * heads * num_frames * num_frames * itemsize <= FULL_BIAS_BUDGET_BYTES:
        return None
    rows = BLOCK_BIAS_BYTES // max(1, batch * heads * num_frames * itemsize)
    return int(max(16, min(num_frames, rows)))


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
        self._fused_qkv = DerivedTensors()  # inference cache, not state

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, H, T, K) from x (B, T, C). On the oneDNN path one product with the concatenated weights,
        cached until a weight changes (same parameters and state-dict keys, one pass over x instead of three)."""
        batch, frames, _ = x.shape
        layers = (self.q_proj, self.k_proj, self.v_proj)
        if all(type(layer) is nn.Linear for layer in layers) and use_onednn(x, self.q_proj.weight):
            params = [p for layer in layers for p in (layer.weight, layer.bias)]
            weight, bias = self._fused_qkv.get(params, lambda: (torch.cat(params[0::2]), torch.cat(params[1::2])))
            qkv = linear(x, weight, bias)
            qkv = qkv.view(batch, frames, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
            return qkv[0], qkv[1], qkv[2]
        split = (batch, frames, self.num_heads, self.head_dim)
        return tuple(apply_linear(layer, x).view(split).transpose(1, 2) for layer in layers)

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
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=gated_bias(gate, position_bias, padding, q.dtype),
                                                 dropout_p=dropout)
        elif use_onednn(q, k):
            out = onednn_attention(q, k, v, gate, position_bias, padding, block_size)
        else:
            out = torch.empty_like(q)
            for start in range(0, frames, block_size):
                end = min(start + block_size, frames)
                # the bias rows come reversed (a view of the table); run the block's queries in the same order
                rows = reversed_bias_rows(position_bias, start, end)
                bias = gated_bias(gate[:, :, start:end].flip(2), rows, padding, q.dtype)
                block = F.scaled_dot_product_attention(q[:, :, start:end].flip(2), k, v, attn_mask=bias,
                                                       dropout_p=dropout)
                out[:, :, start:end] = block.flip(2)
        out = out.transpose(1, 2).reshape(batch, frames, dim)
        return apply_linear(self.out_proj, out), weights


def onednn_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor, table: torch.Tensor,
                     padding: torch.Tensor | None, block_size: int) -> torch.Tensor:
    """Attention for CPU inference, (B, H, T, K) -> (B, H, T, K), in query blocks of `block_size` rows per head:
    scores = (q / sqrt(K)) k^T and the weighted sum of values are oneDNN matrix products (AVX-512, where torch's
    SDPA kernel runs at MKL's AVX2 speed here), the gated bias rows (a view of the (H, 2T-1) table) are added in
    place while the block's scores are still in cache. The arithmetic is transformers' eager attention."""
    batch, heads, frames, _ = q.shape
    q = q * q.shape[-1] ** -0.5
    k = k.contiguous()  # oneDNN weights must be dense; q/k/v arrive as views of one fused projection
    v_t = v.transpose(-1, -2).contiguous()  # (B, H, K, T): the values as a oneDNN weight
    out = torch.empty_like(q)
    for start in range(0, frames, block_size):
        end = min(start + block_size, frames)
        rows = reversed_bias_rows(table, start, end)[0]  # (H, L, T), queries end-1 .. start
        gates = gate[:, :, start:end].flip(2)
        for b in range(batch):
            for h in range(heads):
                scores = linear(q[b, h, start:end].flip(0), k[b, h], None).addcmul_(gates[b, h], rows[h])
                if padding is not None:
                    scores.add_(padding[b, 0])
                out[b, h, start:end] = linear(torch.softmax(scores, dim=-1), v_t[b, h], None).flip(0)
    return out


def gated_bias(gate: torch.Tensor, bias: torch.Tensor, padding: torch.Tensor | None,
               dtype: torch.dtype) -> torch.Tensor:
    """gate (B, H, L, 1) * bias (1, H, L, T) [+ padding (B, 1, 1, T) of 0/-inf], written once as (B, H, L, T)."""
    if padding is None or bias.dtype != dtype:
        gated = (gate * bias).to(dtype)
        return gated if padding is None else gated + padding
    # padding is 0 or -inf, so adding it inside the fused multiply-add rounds exactly like adding it afterwards
    return torch.addcmul(padding, gate, bias)
