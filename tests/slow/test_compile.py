"""torch.compile of the whole model in one graph (fullgraph=True) against eager, on the tiny config. In tests/slow:
compiling takes about 20-45 s on 2 cores (inductor builds C++ kernels, so it needs a C++ compiler)."""
from __future__ import annotations

import torch

import wavlm
from wavlm.inference import compile_model
from conftest import require_tool, tiny_kwargs


def test_compile_one_graph_matches_eager():
    require_tool("c++", "inductor compiles its CPU kernels")
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = wavlm.WavLMModel(wavlm.WavLMConfig(**tiny_kwargs("base"))).eval()  # one variant: compiling is slow
    compiled = compile_model(m)  # fullgraph=True: a graph break raises
    values = torch.randn(2, 24000)
    mask = torch.ones(2, 24000, dtype=torch.long)
    mask[1, 15000:] = 0
    with torch.no_grad():
        reference = m(values, attention_mask=mask).last_hidden_state
        out = compiled(values, attention_mask=mask).last_hidden_state
    assert (out - reference).abs().max() <= 1e-4
