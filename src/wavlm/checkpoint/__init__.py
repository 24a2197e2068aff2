"""Loading and saving weights: transformers directories (safetensors, .bin, shards), Hub repo ids, and original
microsoft/unilm checkpoints. Loading is strict: after renaming, missing or unexpected backbone keys and shape
mismatches raise one CheckpointError that lists them; only task-head weights may be absent (they are initialised
and named in one warning)."""
from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wavlm.checkpoint.errors import CheckpointError
from wavlm.checkpoint.hf import HUB_PATTERNS, read_torch_file, read_weights, write_safetensors
from wavlm.checkpoint.keys import LEGACY_WEIGHT_NORM, rename
from wavlm.checkpoint.original import config_from_original, is_original_checkpoint, state_dict_from_original
from wavlm.config import WavLMConfig

__all__ = ["CheckpointError", "load_pretrained", "save_pretrained", "load_state_dict_strict"]

logger = logging.getLogger("wavlm")

PREFIX = "wavlm."
# Backbone parameters that exist only for some configs and that a checkpoint may lack without harm.
OPTIONAL_BACKBONE_KEYS = ("masked_spec_embed",)
_HUB_ARGS = ("revision", "cache_dir", "token", "local_files_only")


def _dtype(value: Any) -> torch.dtype | str | None:
    if value is None or value == "auto" or isinstance(value, torch.dtype):
        return value
    name = str(value).replace("torch.", "")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"torch_dtype {value!r} is not a torch dtype (use e.g. 'float32', 'bfloat16', 'auto')")
    return dtype


def _normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Legacy weight-norm spellings -> parametrization spelling; a fused pos-conv weight -> (g, v)."""
    out = {}
    for key, tensor in state.items():
        new = rename(key, LEGACY_WEIGHT_NORM)
        if new is None and key.endswith("pos_conv_embed.conv.weight"):
            # a plain (already multiplied-out) weight: g = per-tap norm over dims (0, 1), v = the weight itself
            base = key[: -len("weight")] + "parametrizations.weight."
            out[base + "original0"] = torch.linalg.vector_norm(tensor, dim=(0, 1), keepdim=True)
            out[base + "original1"] = tensor
            continue
        out[new or key] = tensor
    return out


def _align_prefix(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fit a base checkpoint to a head model (add `wavlm.`) or a head checkpoint to the base model (strip it and
    drop the head's weights, returned as the second element)."""
    expects_prefix = any(k.startswith(PREFIX) for k in model.state_dict())
    has_prefix = any(k.startswith(PREFIX) for k in state)
    if expects_prefix and not has_prefix:
        return {PREFIX + k: v for k, v in state.items()}, []
    if has_prefix and not expects_prefix:
        kept = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
        return kept, sorted(k for k in state if not k.startswith(PREFIX))
    return state, []


def _is_head_key(key: str) -> bool:
    return not key.startswith(PREFIX)


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint",
                           ignore_mismatched_sizes: bool = False) -> list[str]:
    """Load `state` into `model` (tensors assigned, not copied). Returns the head keys left to initialise.

    Raises CheckpointError listing every missing/unexpected backbone key and every shape mismatch."""
    state, dropped_head = _align_prefix(_normalise_keys(state), model)
    expected = {k: v for k, v in model.state_dict(keep_vars=True).items()}
    head_model = any(k.startswith(PREFIX) for k in expected)
    optional = {(PREFIX if head_model else "") + k for k in OPTIONAL_BACKBONE_KEYS}

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [(k, tuple(state[k].shape), tuple(expected[k].shape)) for k in state
                  if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    # a head checkpoint loaded into another head: the other head's weights are simply unused
    unused_head = [k for k in unexpected if head_model and _is_head_key(k)]
    unexpected = [k for k in unexpected if k not in unused_head and k not in optional]
    new_keys = [k for k in missing if (head_model and _is_head_key(k)) or k in optional]
    missing = [k for k in missing if k not in new_keys]
    if ignore_mismatched_sizes:
        head_mismatch = [m for m in mismatched if _is_head_key(m[0]) and head_model]
        mismatched = [m for m in mismatched if m not in head_mismatch]
        new_keys += [k for k, _, _ in head_mismatch]
        for k, _, _ in head_mismatch:
            state.pop(k)
    problems = []
    if missing:
        problems.append(f"missing keys: {missing}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if mismatched:
        problems.append("shape mismatches: " + ", ".join(f"{k} has {a} in the checkpoint but {b} in the model"
                                                         for k, a, b in mismatched))
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__} (config: hidden_size="
                              f"{model.config.hidden_size}, num_hidden_layers={model.config.num_hidden_layers}): "
                              + "; ".join(problems))
    unused = dropped_head + unused_head
    if unused:
        warnings.warn(f"{type(model).__name__} does not use these weights of {source}: {unused}", stacklevel=3)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False, assign=True)
    return new_keys


def _materialise_new(model: nn.Module, new_keys: list[str], device: torch.device) -> None:
    """Give freshly initialised values to parameters the checkpoint did not provide (still on the meta device)."""
    owners = {}
    for key in new_keys:
        module_name = key.rsplit(".", 1)[0] if "." in key else ""
        owners[module_name] = model.get_submodule(module_name)
    for module in owners.values():
        module.to_empty(device=device, recurse=False)
        model._init_weights(module)


def _resolve(name_or_path: str | os.PathLike, hub_args: dict[str, Any]) -> tuple[Path, dict | None]:
    """A local directory holding the checkpoint, or (file's folder, loaded original checkpoint) for a .pt file."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        obj = read_torch_file(path)
        if not is_original_checkpoint(obj):
            keys = sorted(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path} is a single file but not an original microsoft WavLM checkpoint "
                                  f"(a dict with 'cfg' and 'model'; found {keys}); for a transformers checkpoint "
                                  "pass the directory holding config.json and the weights")
        return path.parent, obj
    if path.is_dir():
        return path, None
    from wavlm.hub import resolve_files

    return Path(resolve_files(str(name_or_path), HUB_PATTERNS, **hub_args)), None


def load_pretrained(cls: type, name_or_path: str | os.PathLike, *, config: WavLMConfig | None = None,
                    torch_dtype: Any = None, dtype: Any = None, device: str | torch.device | None = None,
                    device_map: Any = None, ignore_mismatched_sizes: bool = False,
                    **kwargs: Any) -> nn.Module:
    """Build `cls` on the meta device and assign the checkpoint's tensors to it (no double initialisation).

    `torch_dtype`/`dtype`: a dtype, or "auto" (the default, as in transformers 5: config.json's dtype, else the
    weights' own floating-point dtype).
    `device` (or a single device as `device_map`) moves the model. Remaining keyword arguments override config
    fields, as in transformers (`num_labels=...`)."""
    hub_args = {k: kwargs.pop(k) for k in _HUB_ARGS if k in kwargs}
    for ignored in ("use_safetensors", "low_cpu_mem_usage", "trust_remote_code", "attn_implementation"):
        kwargs.pop(ignored, None)
    if device is None and isinstance(device_map, (str, torch.device)) and device_map != "auto":
        device = device_map
    target_dtype = _dtype(dtype if dtype is not None else torch_dtype if torch_dtype is not None else "auto")
    directory, original = _resolve(name_or_path, hub_args)

    if config is not None:
        config = copy.deepcopy(config)  # as transformers: the caller's config is not modified
    if original is not None:
        if config is None:
            config = config_from_original(original["cfg"], **kwargs)
            kwargs = {}
        state = state_dict_from_original(original["model"], config)
        source = f"original checkpoint {name_or_path}"
    else:
        if config is None:
            config_file = directory / "config.json"
            if not config_file.is_file():
                raise CheckpointError(f"{directory} has no config.json; save the model with save_pretrained or pass "
                                      "config=WavLMConfig(...)")
            config = WavLMConfig.from_json_file(config_file)
        state, weights_file = read_weights(directory)
        source = str(weights_file)
    if kwargs:
        for key, value in kwargs.items():
            if key == "num_labels":
                config.num_labels = value
            else:
                setattr(config, key, value)
        config.validate()

    with torch.device("meta"):
        model = cls(config)
    new_keys = load_state_dict_strict(model, state, source, ignore_mismatched_sizes)
    _materialise_new(model, new_keys, torch.device("cpu"))
    if new_keys:
        warnings.warn(f"{cls.__name__}: these weights are not in {source} and were newly initialised; train them "
                      f"before use: {sorted(new_keys)}", stacklevel=3)
    if target_dtype == "auto":  # as transformers: the config's dtype, else the checkpoint's floating-point dtype
        target_dtype = _dtype(config.dtype) if config.dtype else next(
            (t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    model.to(dtype=target_dtype or torch.float32)
    if device is not None:
        model.to(device)
    model.config.dtype = str(model.dtype).replace("torch.", "")
    model.name_or_path = str(name_or_path)
    model.eval()  # as transformers: loaded models start in eval mode
    return model


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, state_dict: dict | None = None,
                    safe_serialization: bool = True, **_: Any) -> None:
    """config.json + model.safetensors (or pytorch_model.bin when safe_serialization=False), loadable by
    transformers with no missing or unexpected keys."""
    directory = Path(save_directory)
    if directory.is_file():
        raise ValueError(f"save_pretrained needs a directory, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.copy(architectures=[type(model).__name__],
                               dtype=str(model.dtype).replace("torch.", ""))
    config.save_pretrained(directory)
    state = state_dict if state_dict is not None else model.state_dict()
    if safe_serialization:
        write_safetensors(state, directory / "model.safetensors")
    else:
        tmp = directory / "pytorch_model.bin.tmp"
        torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
        os.replace(tmp, directory / "pytorch_model.bin")
