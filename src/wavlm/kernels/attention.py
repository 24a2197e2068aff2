"""Attention over query blocks: memory linear in length for long inputs, and the oneDNN attention kernel for CPU
inference. The arithmetic is that of wavlm.attention (transformers' eager attention); only the order of work and
the kernels differ."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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


def gated_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gate: torch.Tensor, bias: torch.Tensor,
                    padding: torch.Tensor | None, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(K) + gate * bias + padding) v with dropout on the weights, in one piece: q, k, v
    (B, H, T, K), gate (B, H, T, 1), bias (1, H, T, T), padding (B, 1, 1, T) of 0/-inf or None. Training on the CPU
    takes RecomputedAttention (the plan's "training_attention"), everything else SDPA with the gated bias as a mask."""
    if kernel("training_attention", q, k, v, gate, bias) == "recompute":
        return RecomputedAttention.apply(q, k, v, gate, bias, padding, dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=gated_bias(gate, bias, padding, q.dtype),
                                          dropout_p=dropout)


def dropout_keep_mask(shape: tuple[int, ...], p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """A bool keep-mask for dropout with probability `p` and the scale 1 / (1 - p') of the kept values, where p' =
    round(p * 65536) / 65536 is the drop rate it realises: 16-bit uniform integers, four per 64-bit draw, compared
    with a threshold (about 3x faster than bernoulli_ on a CPU, BENCHMARKS.md, training step)."""
    numel = math.prod(shape)
    drops = round(p * 65536)
    if drops >= 65536:  # the threshold would not fit in 16 bits
        return torch.zeros(shape, dtype=torch.bool, device=device), 0.0
    words = torch.randint(-2**63, 2**63 - 1, ((numel + 3) // 4,), dtype=torch.int64, device=device)
    keep = words.view(torch.int16)[:numel].view(shape) >= drops - 32768
    kept = 1.0 - drops / 65536
    return keep, (1.0 / kept if kept > 0 else 0.0)


class RecomputedAttention(torch.autograd.Function):
    """The attention of `gated_attention` for training, with less kept for backward. Autograd through SDPA's math
    kernel keeps the (B, H, T, T) weights and their dropped-out copy (about 137 MB per base layer at 4 x 10 s); this
    keeps each row's log-sum-exp and the dropout mask (bool) and recomputes the weights in backward from q, k
    and the gated bias: one more q k^T product and exp, and (B, H, T, T) float temporaries only while a layer runs.
    The dropout scale is applied to the (B, H, T, K) products rather than to the weights. Gradients reach q, k, v,
    the gate and the bias (so the gate's linear layer and the bias table train); no second derivatives."""

    @staticmethod
    def _weights(q, k, gate, bias, padding, lse=None):
        """(B*H, T, T) scores, or the softmax weights exp(scores - lse) when lse is given (in place)."""
        batch, heads, frames, dim = q.shape
        scores = gate * bias
        if padding is not None:
            scores += padding
        scores = scores.view(batch * heads, frames, frames).baddbmm_(
            q.reshape(batch * heads, frames, dim), k.reshape(batch * heads, frames, dim).transpose(1, 2),
            alpha=dim ** -0.5)
        return scores if lse is None else scores.sub_(lse).exp_()

    @staticmethod
    def forward(ctx, q, k, v, gate, bias, padding, dropout):
        batch, heads, frames, dim = q.shape
        scores = RecomputedAttention._weights(q, k, gate, bias, padding)
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        weights = scores.sub_(lse).exp_()
        keep, scale = None, 1.0
        if dropout > 0.0:
            keep, scale = dropout_keep_mask(weights.shape, dropout, weights.device)
            weights.mul_(keep)
        out = torch.bmm(weights, v.reshape(batch * heads, frames, dim))
        if keep is not None:
            out.mul_(scale)
        out = out.view(batch, heads, frames, dim)
        ctx.save_for_backward(q, k, v, gate, bias, padding, lse, out, keep)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, gate, bias, padding, lse, out, keep = ctx.saved_tensors
        batch, heads, frames, dim = q.shape
        rows = batch * heads
        weights = RecomputedAttention._weights(q, k, gate, bias, padding, lse)  # (B*H, T, T)
        grad_out = grad_out.reshape(rows, frames, dim)
        # softmax backward: w * (dw - sum_j w_j dw_j), and sum_j w_j dw_j = grad_out . out (dropout included)
        row_dot = (grad_out * out.reshape(rows, frames, dim)).sum(-1, keepdim=True)
        if keep is not None:
            grad_out = grad_out * ctx.scale
        grad_v = torch.bmm((weights if keep is None else weights * keep).transpose(1, 2), grad_out)
        grad_weights = torch.bmm(grad_out, v.reshape(rows, frames, dim).transpose(1, 2))
        if keep is not None:
            grad_weights.mul_(keep)
        grad_scores = grad_weights.sub_(row_dot).mul_(weights)
        del weights
        grad_q = torch.bmm(grad_scores, k.reshape(rows, frames, dim)).mul_(dim ** -0.5)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q.reshape(rows, frames, dim)).mul_(dim ** -0.5)
        grad_scores = grad_scores.view(batch, heads, frames, frames)
        grad_gate = (grad_scores * bias).sum(-1, keepdim=True) if ctx.needs_input_grad[3] else None
        grad_bias = (grad_scores * gate).sum_to_size(bias.shape) if ctx.needs_input_grad[4] else None
        shape = (batch, heads, frames, dim)
        return grad_q.view(shape), grad_k.view(shape), grad_v.view(shape), grad_gate, grad_bias, None, None


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
