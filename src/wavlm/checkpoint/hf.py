"""transformers-format checkpoints: config.json plus model.safetensors, pytorch_model.bin, or sharded index files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from wavlm.checkpoint.errors import CheckpointError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_WEIGHTS = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
# what a Hub download asks for: config, single or sharded weights in either format
HUB_PATTERNS = ["config.json", "*.safetensors", SAFE_INDEX, "pytorch_model*.bin", BIN_INDEX]


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); the file may be truncated or "
                              "corrupt: download or save it again") from None


def read_torch_file(path: Path) -> dict:
    """A pickled checkpoint, read with `weights_only=True` so that no code in it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and weights-only errors all mean the same thing here
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint with weights_only=True "
                              f"({type(e).__name__}: {e}); it is corrupt, truncated, or holds objects other "
                              "than tensors") from None


def read_weights(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of the checkpoint in `directory`, preferring safetensors; returns (state_dict, main file)."""
    for index_name, reader in ((SAFE_INDEX, read_safetensors), (BIN_INDEX, read_torch_file)):
        index = directory / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index} is not a valid shard index ({e})") from None
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                if not (directory / shard).is_file():
                    raise CheckpointError(f"{index} lists shard {shard}, which is missing from {directory}")
                state.update(reader(directory / shard))
            missing = sorted(set(weight_map) - set(state))
            if missing:
                raise CheckpointError(f"{index} names tensors its shards do not hold: {missing[:10]}")
            return state, index
    if (directory / SAFE_WEIGHTS).is_file():
        return read_safetensors(directory / SAFE_WEIGHTS), directory / SAFE_WEIGHTS
    if (directory / BIN_WEIGHTS).is_file():
        state = read_torch_file(directory / BIN_WEIGHTS)
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise CheckpointError(f"{directory / BIN_WEIGHTS} does not hold a flat state dict of tensors")
        return state, directory / BIN_WEIGHTS
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise CheckpointError(f"{directory} holds no weights: expected {SAFE_WEIGHTS}, {BIN_WEIGHTS} or a shard index "
                          f"(found {present})")


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)
