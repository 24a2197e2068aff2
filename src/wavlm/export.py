"""ONNX export of a WavLM model with dynamic batch and length, and an onnxruntime runner to check it.

Needs the optional packages onnx, onnxscript (export) and onnxruntime (running):
`pip install onnx onnxscript onnxruntime`.
"""
from __future__ import annotations

import contextlib
import logging
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
    samples are dynamic. The output is the model's first output (last_hidden_state / logits). Returns the path.
    The file is in exactly `opset`: OpsetError (a ValueError), with nothing written, when the exporter cannot
    produce it (torch implements opset 18 and up and converts down only some graphs)."""
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
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 1:
        raise ValueError(f"opset must be a positive integer, got {opset!r}")
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(wrapper, inputs, dynamo=True, dynamic_shapes=shapes, input_names=names,
                                    output_names=["output"], opset_version=opset, verbose=False)
        written = written_opset(program)
        if written != opset:  # torch implements opset >= 18 and converts down when it can; it may keep 18
            raise OpsetError(f"the ONNX exporter could not produce opset {opset} for this model (it gives opset "
                             f"{written}); nothing was written. torch's exporter implements opset 18 and up: use "
                             f"opset {max(written, 18)} or higher, or convert the file with onnx.version_converter")
        program.save(str(path))
    return path


class OpsetError(ValueError):
    """The exported graph is not in the requested ONNX opset (torch's exporter could not convert it down)."""


def written_opset(program) -> int:
    """The default-domain ('' or 'ai.onnx') opset of an exported program (its onnx_ir model), an onnx ModelProto,
    or a file; -1 when it names none."""
    if isinstance(program, (str, os.PathLike)):
        import onnx

        program = onnx.load(os.fspath(program), load_external_data=False)
    ir_model = getattr(program, "model", None)
    if ir_model is not None and hasattr(ir_model, "opset_imports"):
        versions = [v for d, v in ir_model.opset_imports.items() if d in ("", "ai.onnx")]
    else:
        versions = [o.version for o in program.opset_import if o.domain in ("", "ai.onnx")]
    return int(versions[0]) if versions else -1


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter and its version converter log warnings and tracebacks on stderr (a failed down-conversion is
    one); export_onnx reports the outcome itself."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


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
