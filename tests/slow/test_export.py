"""ONNX export with dynamic batch and length, run by onnxruntime and compared with torch (tiny config)."""
from __future__ import annotations

import pytest
import torch

import wavlm
from conftest import tiny_kwargs

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")
from wavlm.export import export_onnx, onnx_session, run_onnx  # noqa: E402


@pytest.mark.parametrize("variant", ["base", "large"])
def test_onnx_matches_torch_for_other_batch_sizes_and_lengths(variant, tmp_path):
    torch.manual_seed(0)
    m = wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs(variant))).eval()
    session = onnx_session(export_onnx(m, tmp_path / "wavlm.onnx", example_samples=32000))
    for batch, samples in ((1, 16000), (3, 23456)):  # neither is the (2, 32000) example shape
        values = torch.randn(batch, samples)
        mask = torch.ones(batch, samples, dtype=torch.long)
        if batch > 1:
            mask[1, 10000:] = 0
            values[1, 10000:] = 0
        with torch.no_grad():
            reference = m(values, attention_mask=mask).last_hidden_state.numpy()
        out = run_onnx(session, values, mask)
        assert out.shape == reference.shape
        assert abs(out - reference).max() <= 1e-4
