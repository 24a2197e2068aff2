"""Random tiny models whose every parameter and output is informative, for parity tests. With transformers' default
initialisation norms sit at exactly 1 and 0 and heads are tiny (x-vector logits ~1e-7, embeddings ~3e-6), so an
absolute tolerance of 1e-5 could not fail on them; here norms move off 1/0 and head weights are O(0.3)."""
from __future__ import annotations

import torch


def make_informative(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """In place: every backbone parameter gets N(0, 0.1) noise added, every head parameter (outside `wavlm.` in a
    head model) is redrawn as N(0, 0.3). Returns the model."""
    head_model = any(k.startswith("wavlm.") for k, _ in model.named_parameters())
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype)
            if head_model and not key.startswith("wavlm."):
                p.copy_(noise * 0.3)
            else:
                p.add_(noise * 0.1)
    return model
