"""transformers-format checkpoints: config.json plus model.safetensors, pytorch_model.bin, or sharded index files,
optionally under a variant name (model.fp16.safetensors), in the file layout transformers 5.23 reads and writes."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from wavlm.checkpoint.errors import CheckpointError, MissingFileError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_WEIGHTS = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
# what a Hub download asks for: config, single or sharded weights in either format, any variant
HUB_PATTERNS = ["config.json", "*.safetensors", "model.safetensors.index*.json", "pytorch_model*.bin",
                "pytorch_model.bin.index*.json"]
# "50GB" and the like, as transformers' max_shard_size (decimal units)
SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def with_variant(name: str, variant: str | None) -> str:
    """model.safetensors -> model.fp16.safetensors; model.safetensors.index.json -> model.safetensors.index.fp16.json"""
    if not variant:
        return name
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.{variant}.{ext}"


def shard_name(name: str, index: int, count: int) -> str:
    """model.safetensors -> model-00001-of-00003.safetensors (transformers' shard names)."""
    stem, ext = name.rsplit(".", 1)
    return f"{stem}-{index:05d}-of-{count:05d}.{ext}"


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


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    state = read_torch_file(path)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
    return state


def _read_index(index: Path, reader) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index} is not a valid shard index ({e})") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if not (index.parent / shard).is_file():
            raise CheckpointError(f"{index} lists shard {shard}, which is missing from {index.parent}")
        state.update(reader(index.parent / shard))
    missing = sorted(set(weight_map) - set(state))
    if missing:
        raise CheckpointError(f"{index} names tensors its shards do not hold: {missing[:10]}")
    return state


def read_weights(directory: Path, use_safetensors: bool | None = None,
                 variant: str | None = None) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of the checkpoint in `directory`; returns (state_dict, main file).

    As transformers 5.23: a single file before a shard index, safetensors before .bin unless
    `use_safetensors=False` (then .bin only); `use_safetensors=True` refuses .bin; `variant` selects
    model.<variant>.safetensors and its kin."""
    candidates = []
    if use_safetensors is not False:
        candidates += [(SAFE_WEIGHTS, read_safetensors, False), (SAFE_INDEX, read_safetensors, True)]
    if use_safetensors is not True:
        candidates += [(BIN_WEIGHTS, _read_bin, False), (BIN_INDEX, _read_bin, True)]
    for name, reader, is_index in candidates:
        path = directory / with_variant(name, variant)
        if path.is_file():
            return (_read_index(path, reader) if is_index else reader(path)), path
    wanted = " or ".join(with_variant(name, variant) for name, _, is_index in candidates if not is_index)
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    hint = {True: " (use_safetensors=True refuses .bin files)",
            False: " (use_safetensors=False refuses safetensors files)"}.get(use_safetensors, "")
    raise MissingFileError(f"{directory} holds no weights: expected {wanted} or a shard index{hint} "
                          f"(found {present})")


def parse_size(size: int | str) -> int:
    """Bytes in `max_shard_size`: an integer, or digits with a unit as transformers writes it ("5GB", "500MB")."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]B)\s*", str(size), flags=re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"max_shard_size must be a positive number of bytes or a size such as '5GB' "
                         f"(units {', '.join(SIZE_UNITS)}), got {size!r}")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def split_shards(state: dict[str, torch.Tensor], max_bytes: int) -> list[list[str]]:
    """Keys in the state dict's order, cut into groups of at most `max_bytes`, as transformers cuts them: a tensor
    larger than that is a shard of its own, and the group being filled continues after it."""
    shards: list[list[str]] = []
    current: list[str] = []
    size = 0
    for key in state:
        nbytes = state[key].numel() * state[key].element_size()
        if nbytes > max_bytes:
            shards.append([key])
            continue
        if current and size + nbytes > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(key)
        size += nbytes
    return shards + [current] if current or not shards else shards


_WEIGHT_FILE = re.compile(r"^(model|pytorch_model)(\.[^.]+)?(-\d{5}-of-\d{5})?\.(safetensors|bin)$"
                          r"|^(model\.safetensors|pytorch_model\.bin)\.index(\.[^.]+)?\.json$")


def _variant_of(filename: str) -> str | None:
    match = _WEIGHT_FILE.match(filename)
    if match is None:
        return None
    variant = match.group(2) or match.group(6) or ""
    return variant.lstrip(".")


def write_weights(state: dict[str, torch.Tensor], directory: Path, safe_serialization: bool = True,
                  max_shard_size: int | str = "50GB", variant: str | None = None) -> list[Path]:
    """Write `state` as transformers lays it out (one file, or shards plus an index above `max_shard_size`).
    Weight files of the same variant left from an earlier save are removed, so the directory holds exactly
    these weights (a stale index would otherwise shadow them). Returns the files written."""
    max_bytes = parse_size(max_shard_size)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    base = SAFE_WEIGHTS if safe_serialization else BIN_WEIGHTS
    shards = split_shards(tensors, max_bytes)
    if len(shards) == 1:
        names = [with_variant(base, variant)]
    else:
        names = [shard_name(with_variant(base, variant), i + 1, len(shards)) for i in range(len(shards))]
    index = directory / with_variant(SAFE_INDEX if safe_serialization else BIN_INDEX, variant)
    written = [directory / n for n in names] + ([index] if len(shards) > 1 else [])
    for old in directory.iterdir():
        if old.is_file() and old not in written and _variant_of(old.name) == (variant or ""):
            old.unlink()
    for name, keys in zip(names, shards):
        _write_file({k: tensors[k] for k in keys}, directory / name, safe_serialization)
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        weight_map = {k: name for name, keys in zip(names, shards) for k in keys}
        data = {"metadata": {"total_parameters": sum(t.numel() for t in tensors.values()), "total_size": total},
                "weight_map": dict(sorted(weight_map.items()))}
        _atomic_write(index, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8"))
    return written


def _write_file(tensors: dict[str, torch.Tensor], path: Path, safe_serialization: bool) -> None:
    if safe_serialization:
        from safetensors.torch import save_file

        _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    else:
        _atomic_write(path, lambda tmp: torch.save(tensors, tmp))


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """One safetensors file with transformers' metadata, written atomically."""
    _write_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, path, True)
