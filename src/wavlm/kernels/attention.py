"""Attention over query blocks: memory linear in length for long inputs, and the oneDNN attention kernel for CPU
inference. The arithmetic is that of wavlm.attention (transformers' eager attention); only the order of work and
the kernels differ."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from wavlm.kernels.dense import matmul_nt
from wavlm.kernels.dispatch import kernel

# Above this many bytes for one layer's (B, H, T, T) gated bias (about 40 s of audio for base), attention runs in
# query blocks: as fast as one piece and a fraction of the memory.
FULL_BIAS_BUDGET_BYTES = 128 * 2**20
# Target size of one block's (B, H, block, T) gated bias: small enough to stay in cache between the gating and the
# attention kernel that reads it.
BLOCK_BIAS_BYTES = 8 * 2**20
# Query rows per block of the oneDNN attention kernel (BENCHMARKS.md, "Kernel choices").
ONEDNN_BLOCK_ROWS = 256


def block_size(x: torch.Tensor, heads: int, output_attentions: bool = False) -> int | None:
    """Query rows per attention block for x (B, T, C), or None for one piece: the oneDNN kernel always works in
    blocks (its memory is one block's scores per head); SDPA splits only when the whole bias exceeds the budget."""
    batch, frames = x.shape[0], x.shape[1]
    if not output_attentions and kernel("attention", x) == "onednn":
        return min(frames, ONEDNN_BLOCK_ROWS)
    if batch * heads * frames * frames * x.element_size() <= FULL_BIAS_BUDGET_BYTES:
        return None
    rows = BLOCK_BIAS_BYTES // max(1, batch * heads * frames * x.element_size())
    return int(max(16, min(frames, rows)))


def reversed_bias_rows(table: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Rows `end-1` down to `start` of the (H, T, T) bias as a (1, H, end-start, T) view of the (H, 2T-1) table, no
    copy. Row i is table[h, T-1-i : 2T-1-i], a window that slides left as i grows; a strided view can only slide
    right, so the view lists the rows in reverse order and the caller flips its queries to match."""
    num_frames = (table.shape[1] + 1) // 2
    return table.unfold(1, num_frames, 1)[:, num_frames - end:num_frames - start].unsqueeze(0)


def gated_bias(gate: torch.Tensor, bias: torch.Tensor, padding: torch.Tensor | None,
               dtype: torch.dtype) -> torch.Tensor:
    """gate (B, H, L, 1) * bias (1, H, L, T) [+ padding (B, 1, 1, T) of 0/-inf], written once as (B, H, L, T)."""
    if padding is None or bias.dtype != dtype:
        gated = (gate * bias).to(dtype)
        return gated if padding is None else gated + padding
    # padding is 0 or -inf, so adding it inside the fused multiply-add rounds exactly like adding it afterwards
    return torch.addcmul(padding, gate, bias)


def blockwise_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor, table: torch.Tensor,
                        padding: torch.Tensor | None, block_size: int, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(K) + gate * bias + padding) v, (B, H, T, K) -> (B, H, T, K), `block_size` query rows at
    a time; the bias rows of a block are a view of the (H, 2T-1) table. The plan's attention kernel runs each block."""
    if dropout == 0.0 and kernel("attention", q, k, v) == "onednn":
        return onednn_attention(q, k, v, gate, table, padding, block_size)
    frames = q.shape[2]
    out = torch.empty_like(q)
    for start in range(0, frames, block_size):
        end = min(start + block_size, frames)
        # the bias rows come reversed (a view of the table); run the block's queries in the same order
        bias = gated_bias(gate[:, :, start:end].flip(2), reversed_bias_rows(table, start, end), padding, q.dtype)
        block = F.scaled_dot_product_attention(q[:, :, start:end].flip(2), k, v, attn_mask=bias, dropout_p=dropout)
        out[:, :, start:end] = block.flip(2)
    return out


def onednn_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor, table: torch.Tensor,
                     padding: torch.Tensor | None, block_size: int) -> torch.Tensor:
    """The oneDNN attention kernel (CPU inference): per head and query block, scores = (q / sqrt(K)) k^T and the
    weighted sum of values are oneDNN products, and the gated bias rows are added in place while the block's scores
    are still in cache."""
    batch, heads, frames, _ = q.shape
    q = q * q.shape[-1] ** -0.5
    k = k.contiguous()  # oneDNN weights must be dense
    v_t = v.transpose(-1, -2).contiguous()  # (B, H, K, T): the values as a oneDNN weight
    out = torch.empty_like(q)
    for start in range(0, frames, block_size):
        end = min(start + block_size, frames)
        rows = reversed_bias_rows(table, start, end)[0]  # (H, L, T), queries end-1 .. start
        gates = gate[:, :, start:end].flip(2)
        for b in range(batch):
            for h in range(heads):
                scores = matmul_nt(q[b, h, start:end].flip(0), k[b, h]).addcmul_(gates[b, h], rows[h])
                if padding is not None:
                    scores.add_(padding[b, 0])
                out[b, h, start:end] = matmul_nt(torch.softmax(scores, dim=-1), v_t[b, h]).flip(0)
    return out
