"""The conv feature encoder's fast paths (CPU inference) and its time chunks for long inputs.

Convolutions stay channels-first: oneDNN's channels-last kernels are faster but sum in another order, which moves
conv features by up to 1e-5 from transformers (whose nn.Conv1d runs the same channels-first kernel)."""
from __future__ import annotations

import torch
from torch import nn

from wavlm.frames import conv_output_lengths, frame_stride, receptive_field
from wavlm.kernels.dense import post_op
from wavlm.kernels.dispatch import kernel

# Above this many bytes of first-layer output (about 80 s of audio in fp32), inference runs the whole conv stack in
# chunks: its activations at 16 kHz are ~60x larger than the transformer's. Chunks cost time (the first layer runs
# twice to gather GroupNorm statistics), so they are kept for inputs that would not fit otherwise.
CONV_CHUNK_BYTES = 512 * 2**20
# First-layer output of one such chunk (about 10 s of audio).
CONV_PIECE_BYTES = 64 * 2**20
# Above this many bytes of first-layer output (about 10 s of audio), the oneDNN kernel runs the later conv layers in
# time chunks, so that oneDNN copies a chunk, not the whole input, into its blocked layout.
TAIL_CHUNK_BYTES = 64 * 2**20


def conv_activation(conv: nn.Conv1d, x: torch.Tensor, activation: nn.Module,
                    weight: torch.Tensor | None = None) -> torch.Tensor | None:
    """activation(conv(x)) as one oneDNN convolution with the activation fused, or None where the plan (or the
    activation) does not allow it. `weight`: conv's weight when already computed (a weight-normed kernel)."""
    weight = conv.weight if weight is None else weight
    fused = post_op(activation)
    if fused is None or kernel("conv", x, weight, conv.bias) != "onednn":
        return None
    return torch.ops.mkldnn._convolution_pointwise(x.contiguous(), weight, conv.bias, conv.padding, conv.stride,
                                                   conv.dilation, conv.groups, *fused)


def first_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A 1-channel Conv1d (the first layer, on the waveform) as a matrix product over strided frames: far faster
    than Conv1d with 512 output channels on CPU, and the same numbers. W (C, k) @ frames (B, k, T) is (B, C, T)."""
    kernel_size, stride = conv.kernel_size[0], conv.stride[0]
    frames = x[:, 0].unfold(-1, kernel_size, stride)  # (B, T, k)
    weight = conv.weight[:, 0]
    y = torch.bmm(weight.expand(x.shape[0], *weight.shape), frames.transpose(1, 2))
    return y if conv.bias is None else y + conv.bias[:, None]


def group_norm_activation_(y: torch.Tensor, norm: nn.GroupNorm, activation: nn.Module) -> torch.Tensor:
    """GroupNorm (one channel per group) and the activation, in place on y (B, C, T), statistics in float32: the
    first layer's output is the model's largest activation (20 MB per second of audio), and inference needs only one
    copy of it."""
    dtype = torch.promote_types(norm.weight.dtype, torch.float32)
    var, mean = torch.var_mean(y.to(dtype), dim=-1, keepdim=True, correction=0)
    scale = torch.rsqrt(var + norm.eps) * norm.weight[:, None]
    y.mul_(scale.to(y.dtype)).add_((norm.bias[:, None] - mean * scale).to(y.dtype))
    if type(activation) is nn.GELU and activation.approximate == "none":
        return torch.ops.aten.gelu_(y)
    return torch.relu_(y) if type(activation) is nn.ReLU else activation(y)


def conv_layer(layer: nn.Module, x: torch.Tensor, valid: torch.Tensor | None = None,
               stats: tuple | None = None) -> torch.Tensor | None:
    """A ConvLayer's conv -> norm -> activation on the oneDNN kernel, or None where the plan says reference (the
    layer then runs its own modules). Inputs as ConvLayer.forward."""
    conv = layer.conv
    if kernel("conv", x, conv.weight, conv.bias) != "onednn":
        return None
    if layer.norm_kind is None:
        return conv_activation(conv, x, layer.activation)
    if stats is not None or valid is not None:
        return None  # a chunk with given statistics, or statistics over real frames only: the reference
    y = first_conv(conv, x) if conv.in_channels == 1 else conv(x)
    if layer.norm_kind == "group":
        return group_norm_activation_(y, layer.layer_norm, layer.activation)
    return layer.activation(layer.layer_norm(y.transpose(1, 2)).transpose(1, 2))


# ------------------------------------------------------------------------------------------------ time chunks
def conv_stack(encoder: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None,
               chunk_frames: int | None) -> torch.Tensor | None:
    """The conv stack over time chunks when asked (`chunk_frames` > 0), when the input is long enough to need it
    (`chunk_frames` None: above CONV_CHUNK_BYTES of first-layer output), or with the oneDNN kernel above
    TAIL_CHUNK_BYTES; else None (the encoder runs in one piece). Chunks overlap by the receptive field, so the result
    is the one-piece result."""
    first = encoder.conv_layers[0].conv
    frames = conv_output_lengths(x.shape[-1], encoder.kernels, encoder.strides)
    first_bytes = x.shape[0] * (x.shape[-1] // encoder.strides[0]) * first.out_channels * x.element_size()
    if chunk_frames is None and not (encoder.training or torch.compiler.is_exporting()):
        if first_bytes > CONV_CHUNK_BYTES:
            chunk_frames = max(1, CONV_PIECE_BYTES // (first_bytes // frames))
    if chunk_frames and chunk_frames < frames:
        return chunked(encoder, x, lengths, chunk_frames, frames)
    if first_bytes > TAIL_CHUNK_BYTES and kernel("conv", x, first.weight) == "onednn":
        layer = encoder.conv_layers[0]
        valid = encoder.valid_frames(lengths, 0, x.shape[-1]) if layer.norm_kind == "group" else None
        return tail_chunked(encoder, layer(x, valid))
    return None


def tail_chunked(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Layers 1.. over overlapping time chunks of layer 0's output x (B, C, L). They have no statistics over time,
    so each chunk gives exactly its part of the result."""
    kernels, strides = encoder.kernels[1:], encoder.strides[1:]
    hop, field = frame_stride(strides), receptive_field(kernels, strides)
    frames = conv_output_lengths(x.shape[-1], kernels, strides)
    chunk = max(1, TAIL_CHUNK_BYTES // 2 // (x.shape[0] * x.shape[1] * hop * x.element_size()))
    pieces = []
    for start in range(0, frames, chunk):
        end = min(start + chunk, frames)
        y = x[..., start * hop:(end - 1) * hop + field]
        for layer in encoder.conv_layers[1:]:
            y = layer(y)
        pieces.append(y)
    return torch.cat(pieces, dim=-1)


def chunked(encoder: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, chunk: int,
            frames: int) -> torch.Tensor:
    """The conv stack over `chunk` output frames at a time (memory linear in the chunk, not the input); the first
    layer's GroupNorm statistics are gathered over the whole input in a first pass."""
    hop, field = frame_stride(encoder.strides), receptive_field(encoder.kernels, encoder.strides)
    first = encoder.conv_layers[0]
    stats = None
    if first.norm_kind == "group":  # pass 1: per-channel mean and variance of the first conv's whole output
        kernel_size, stride = encoder.kernels[0], encoder.strides[0]
        total = conv_output_lengths(x.shape[-1], (kernel_size,), (stride,))
        valid = encoder.valid_frames(lengths, 0, x.shape[-1])
        step = chunk * hop // stride
        sums = squares = counts = 0.0
        for start in range(0, total, step):
            end = min(start + step, total)
            piece = x[..., start * stride:(end - 1) * stride + kernel_size]
            y = (first_conv(first.conv, piece) if first.conv.in_channels == 1 else first.conv(piece)).double()
            weight = 1.0 if valid is None else valid[..., start:end].double()
            sums = sums + (y * weight).sum(-1, keepdim=True)
            squares = squares + (y * y * weight).sum(-1, keepdim=True)
            counts = counts + (torch.tensor(float(end - start)) if valid is None else weight.sum(-1, True))
        counts = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1)
        mean = sums / counts
        var = (squares / counts - mean * mean).clamp(min=0)
        dtype = torch.promote_types(first.layer_norm.weight.dtype, torch.float32)
        stats = (mean.to(dtype), var.to(dtype))
    pieces = []
    for start in range(0, frames, chunk):
        end = min(start + chunk, frames)
        y = x[..., start * hop:(end - 1) * hop + field]
        for i, layer in enumerate(encoder.conv_layers):
            y = layer(y, None, stats if i == 0 else None)
        pieces.append(y)
    return torch.cat(pieces, dim=-1)
