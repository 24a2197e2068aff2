"""ONNX export of a WavLM model with dynamic batch and length, and an onnxruntime runner to check it.

Needs the optional packages onnx, onnxscript (export) and onnxruntime (running):
`pip install onnx onnxscript onnxruntime`.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class _Exportable(nn.Module):
    """(input_values, attention_mask) -> last_hidden_state, with full attention (the blockwise path picks its block
    count from the input length, which an exported graph cannot do)."""

    def __init__(self, model: nn.Module, with_mask: bool) -> None:
        super().__init__()
        self.model, self.with_mask = model, with_mask

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(input_values, attention_mask=attention_mask if self.with_mask else None,
                         attention_block_size=0, return_dict=True)
        return out[0]


def export_onnx(model: nn.Module, path: str | os.PathLike, with_attention_mask: bool = True, opset: int = 18,
                example_samples: int = 32000) -> Path:
    """Write `model` (WavLMModel or a head; eval mode, fp32) to an ONNX file whose inputs are `input_values`
    (batch, samples) float32 and, if `with_attention_mask`, `attention_mask` (batch, samples) int64; batch and
    samples are dynamic. The output is the model's first output (last_hidden_state / logits). Returns the path."""
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as error:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript") from error
    path = Path(path)
    wrapper = _Exportable(model, with_attention_mask).eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=400, max=16000 * 3600)
    values = torch.randn(2, example_samples)
    inputs: tuple = (values,)
    shapes: tuple = ({0: batch, 1: samples},)
    names = ["input_values"]
    if with_attention_mask:
        mask = torch.ones(2, example_samples, dtype=torch.long)
        mask[1, example_samples // 2:] = 0
        inputs, shapes, names = inputs + (mask,), shapes + ({0: batch, 1: samples},), names + ["attention_mask"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, inputs, dynamo=True, dynamic_shapes=shapes, input_names=names,
                                    output_names=["output"], opset_version=opset, verbose=False)
        program.save(str(path))
    return path


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """An onnxruntime InferenceSession on CPU for an exported file (`threads` intra-op threads, default torch's)."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError("running an exported model needs onnxruntime: pip install onnxruntime") from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, input_values: torch.Tensor | np.ndarray,
             attention_mask: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """Run an onnxruntime session from `onnx_session`; a missing mask on a mask-taking graph means all ones."""
    values = np.ascontiguousarray(np.asarray(input_values, dtype=np.float32))
    feeds = {"input_values": values}
    if any(i.name == "attention_mask" for i in session.get_inputs()):
        mask = np.ones(values.shape, dtype=np.int64) if attention_mask is None else np.asarray(attention_mask)
        feeds["attention_mask"] = mask.astype(np.int64)
    return session.run(None, feeds)[0]
