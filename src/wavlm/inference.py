"""Inference helpers: length-bucketed batching of many utterances, and the fast paths (bfloat16 with fp32 norms,
torch.compile, int8 dynamic quantisation of the linear layers). Each path is checked against fp32 in
tests/unit/test_inference.py and timed in benchmarks/bench_speed.py."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------------------------ bfloat16
class Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm that keeps float32 weights and normalises in float32 whatever its input's dtype (unilm's
    Fp32LayerNorm); the output has the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias, self.eps).to(x.dtype)


class Fp32GroupNorm(nn.GroupNorm):
    """GroupNorm that keeps float32 weights and normalises in float32 whatever its input's dtype (unilm's
    Fp32GroupNorm); the output has the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)


FP32_NORMS = {nn.LayerNorm: Fp32LayerNorm, nn.GroupNorm: Fp32GroupNorm}


def to_bfloat16(model: nn.Module) -> nn.Module:
    """Cast `model` in place to bfloat16, except its LayerNorm/GroupNorm modules: they become Fp32LayerNorm /
    Fp32GroupNorm (same parameters and names) with float32 weights, as unilm's models do. Returns the model.

    Give it float32 weights (the norms keep them unrounded); feed it fp32 or bf16 waveforms (the first convolution
    casts to the weights' dtype); outputs are bfloat16. On a CPU without native bfloat16 (wavlm.kernels.plan says
    why, e.g. an AVX2-only CPU), where bfloat16 runs about 100x slower than float32, it warns once and returns the
    model in float32 instead."""
    from wavlm import kernels

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    choice = kernels.plan(device, torch.bfloat16)["bfloat16"]
    if choice.kernel != "native":
        kernels.warn_once(f"bfloat16 requested, running float32 instead: {choice.reason}")
        return model.float()
    norms = [m for m in model.modules() if type(m) in FP32_NORMS or isinstance(m, (Fp32LayerNorm, Fp32GroupNorm))]
    for norm in norms:
        norm.__class__ = FP32_NORMS.get(type(norm), type(norm))
    keep = {id(m) for m in norms}
    for module in model.modules():
        dtype = torch.float32 if id(module) in keep else torch.bfloat16
        module._apply(lambda t, dtype=dtype: t.to(dtype) if t.is_floating_point() else t, recurse=False)
    return model


# ------------------------------------------------------------------------------------------------ int8
# The transformer's products; the gate's tiny (head_dim -> 8) linear and the feature projection stay in fp32.
INT8_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense")


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose transformer linear layers (INT8_LAYERS) use dynamic int8 quantisation (torch's default
    dynamic qconfig: int8 weights with one scale per tensor, activations quantised per call, fp32 output). CPU only,
    inference only; the other layers and their parameter names are unchanged."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in INT8_LAYERS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        return quantize_dynamic(model, {name: default_dynamic_qconfig for name in names}, dtype=torch.qint8,
                                inplace=False)


# ------------------------------------------------------------------------------------------------ compile
def compile_model(model: nn.Module, dynamic: bool | None = None, **kwargs: Any) -> Callable:
    """torch.compile(model, fullgraph=True): one graph, no breaks (raises if the forward would break). The model
    should be in eval mode; each new input shape recompiles unless `dynamic=True`."""
    return torch.compile(model, fullgraph=True, dynamic=dynamic, **kwargs)


# ------------------------------------------------------------------------------------------------ batching
def length_buckets(lengths: Sequence[int], max_batch_samples: int | None, max_batch_size: int | None = None
                   ) -> list[list[int]]:
    """Indices grouped into batches of similar length: sorted longest first (ties in input order, so that
    out-of-memory shows up at once), a batch closes when its padded size (rows x longest) would exceed
    `max_batch_samples` or it holds `max_batch_size` rows (None: no such limit). An utterance longer than
    `max_batch_samples` gets a batch of its own. Every index appears exactly once. The one bucketing rule of the
    package: `batched_forward` and the command line use it."""
    for name, limit in (("max_batch_samples", max_batch_samples), ("max_batch_size", max_batch_size)):
        if limit is not None and limit < 1:
            raise ValueError(f"{name} must be >= 1 or None, got {limit}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            rows = len(batch) + 1
            fits = max_batch_samples is None or rows * lengths[batch[0]] <= max_batch_samples
            if fits and (max_batch_size is None or rows <= max_batch_size):
                batch.append(i)
                continue
        batches.append([i])
    return batches


def pad_batch(waveforms: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waveforms with zeros: (B, N) values and a (B, N) int64 attention mask (1 = real sample)."""
    longest = max(w.shape[-1] for w in waveforms)
    values = torch.zeros(len(waveforms), longest, dtype=dtype, device=device)
    mask = torch.zeros(len(waveforms), longest, dtype=torch.long, device=device)
    for row, w in enumerate(waveforms):
        values[row, :w.shape[-1]] = w
        mask[row, :w.shape[-1]] = 1
    return values, mask


def iter_batches(waveforms: Sequence[torch.Tensor | np.ndarray], max_batch_samples: int = 16000 * 160,
                 max_batch_size: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None
                 ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor | None]]:
    """Yield (indices, input_values (B, N), attention_mask (B, N) or None) over length buckets. The mask is None
    for a batch whose rows all have the same length (no padding, so the model skips masking)."""
    waves = [torch.as_tensor(w).reshape(-1) for w in waveforms]
    for indices in length_buckets([w.shape[0] for w in waves], max_batch_samples, max_batch_size):
        rows = [waves[i] for i in indices]
        values, mask = pad_batch(rows, dtype=dtype, device=device)
        yield indices, values, (None if all(r.shape[0] == values.shape[1] for r in rows) else mask)


@torch.inference_mode()
def batched_forward(model: Callable, waveforms: Sequence[torch.Tensor | np.ndarray],
                    max_batch_samples: int = 16000 * 160, max_batch_size: int | None = None,
                    output: str = "last_hidden_state", **forward_kwargs: Any) -> list[torch.Tensor]:
    """Run `model` over many 1-D waveforms (16 kHz samples) and return one result per waveform, in input order.

    Waveforms are sorted by length, grouped so that each padded batch holds at most `max_batch_samples` samples
    (and `max_batch_size` rows), right-padded with an attention mask, and run under inference mode. `output` names
    the output field to return; frame-level fields (B, T, ...) are cut to each utterance's own frame count, other
    fields (e.g. logits of a classification head, (B, ...)) are returned per row. Works for WavLMModel and the
    heads, and for a compiled or quantised model."""
    base = getattr(model, "_orig_mod", model)
    base = base if hasattr(base, "config") else None
    param = next(iter(base.parameters())) if base is not None else None
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else None
    results: list[torch.Tensor | None] = [None] * len(waveforms)
    for indices, values, mask in iter_batches(waveforms, max_batch_samples, max_batch_size, dtype, device):
        out = model(values, attention_mask=mask, **forward_kwargs)
        field = out[output] if not isinstance(out, tuple) else out[0]
        padded = base._get_feat_extract_output_lengths(values.shape[1]) if base is not None else None
        frame_level = padded is not None and field.dim() >= 2 and field.shape[1] == padded
        frames = base._get_feat_extract_output_lengths(mask.sum(-1)) if frame_level and mask is not None else None
        for row, i in enumerate(indices):
            results[i] = (field[row, :int(frames[row])] if frames is not None else field[row]).clone()
    return results
