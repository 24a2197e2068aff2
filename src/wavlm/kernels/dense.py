"""Linear layers through oneDNN's inner product, with the following activation fused into it (CPU inference)."""
from __future__ import annotations

import torch
from torch import nn

from wavlm.kernels.dispatch import kernel


def post_op(activation: nn.Module | None) -> tuple[str, list, str] | None:
    """oneDNN post-op arguments (kind, scalars, algorithm) that compute `activation`, or None when oneDNN has no
    exact equivalent (the activation then runs as its module)."""
    if activation is None:
        return "none", [], ""
    if type(activation) is nn.GELU:
        return "gelu", [], activation.approximate
    if type(activation) is nn.ReLU:
        return "relu", [], ""
    return None


def linear(layer: nn.Module, x: torch.Tensor, activation: nn.Module | None = None) -> torch.Tensor:
    """activation(layer(x)) (no activation when None), in one oneDNN call where the plan says so and `layer` is a
    plain nn.Linear (a quantised or otherwise replaced layer runs as itself)."""
    if type(layer) is nn.Linear and kernel("linear", x, layer.weight, layer.bias) == "onednn":
        fused = post_op(activation)
        y = torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, *(fused or post_op(None)))
        return y if fused is not None else activation(y)
    y = layer(x)
    return y if activation is None else activation(y)


def matmul_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (N, K)^T as one oneDNN product (b dense)."""
    return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
