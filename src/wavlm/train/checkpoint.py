"""Checkpoints of a run: `best/` and `last/` model directories in transformers format (config.json,
model.safetensors, preprocessor_config.json, tokenizer files), each written to a temporary directory and renamed
into place; `last/trainer_state.pt` holds what `--resume` needs to continue exactly (optimizer, step, sampler
position, every rank's RNG states). Loaded with torch.load(weights_only=True)."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

STATE_NAME = "trainer_state.pt"


def write_atomically(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a fresh sibling directory, then swap it in for `directory`: a reader sees the old
    complete directory or the new complete one, never half of one."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, numpy's global, Python's) as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "python": {"version": version, "words": list(words), "gauss": py_gauss}}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["words"]), p["gauss"]))


def save_state(directory: Path, state: dict[str, Any]) -> None:
    torch.save(state, directory / STATE_NAME)


def load_state(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / STATE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} does not exist (no earlier run wrote a last checkpoint there)")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(model: torch.nn.Module, directory: str | os.PathLike) -> None:
    """Load a saved model directory's weights into `model` (same architecture), strictly."""
    from safetensors.torch import load_file

    state = load_file(str(Path(directory) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"--resume: {directory} does not match the model: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}")
