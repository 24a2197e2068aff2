"""Checkpoint conversion: an original microsoft/unilm checkpoint (.pt) to a transformers directory, and a
transformers directory's backbone back to the original layout (task heads have no original form)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from wavlm.checkpoint.original import normalizes_input, original_to_config_cfg, state_dict_to_original

ORIGINAL_SUFFIXES = (".pt", ".pth", ".ckpt")


def default_target(destination: str | os.PathLike) -> str:
    """'original' for a destination named like a torch file (.pt, .pth), else 'hf'."""
    return "original" if Path(destination).suffix.lower() in (".pt", ".pth") else "hf"


def convert_checkpoint(source: str | os.PathLike, destination: str | os.PathLike, to: str | None = None,
                       dtype: torch.dtype = torch.float32, log: Callable[[str], None] | None = None) -> str:
    """Write `source` (any model source `from_pretrained` takes) as `to`: "hf" = a transformers directory
    (config.json, model.safetensors, preprocessor_config.json whose do_normalize follows `normalizes_input`),
    "original" = a microsoft `.pt` ({"cfg", "model"}, the backbone only; a task head is left out, said through
    `log`). Default `to`: `default_target(destination)`. Returns a summary line.

    Raises ValueError for a conversion that cannot be done (a destination of the wrong kind, an original source
    to convert to the original layout), and the loader's errors (OSError, CheckpointError) for a bad source."""
    import wavlm
    from wavlm.checkpoint import load_checkpoint
    from wavlm.features import WavLMFeatureExtractor
    from wavlm.files import atomic_write

    src, dst = Path(source), Path(destination)
    to = to or default_target(dst)
    if to not in ("hf", "original"):
        raise ValueError(f"the target layout must be 'hf' or 'original', got {to!r}")
    if to == "hf" and dst.exists() and not dst.is_dir():
        raise ValueError(f"{dst} exists and is not a folder")
    if to == "original" and src.is_file() and src.suffix.lower() in ORIGINAL_SUFFIXES:
        raise ValueError(f"{src} is already an original checkpoint")
    model, _ = load_checkpoint(wavlm.WavLMModel, source, torch_dtype=dtype)
    if to == "hf":
        model.save_pretrained(dst)
        WavLMFeatureExtractor(do_normalize=normalizes_input(model.config),
                              return_attention_mask=True).save_pretrained(dst)
        return (f"wrote {dst}/config.json, model.safetensors and preprocessor_config.json "
                f"({model.num_parameters():,} parameters, {model.dtype})")
    arch = (model.config.architectures or ["WavLMModel"])[0]
    if arch != "WavLMModel" and log is not None:
        log(f"note: {source} holds a {arch}; its task head has no original form, only the backbone is written")
    state = state_dict_to_original(model.state_dict(), model.config)
    payload = {"cfg": original_to_config_cfg(model.config), "model": {k: v.contiguous() for k, v in state.items()}}
    atomic_write(dst, lambda f: torch.save(payload, f))
    return f"wrote {dst} (original microsoft layout, {len(state)} tensors)"
