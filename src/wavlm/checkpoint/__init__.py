"""Loading and saving weights: transformers directories (safetensors, .bin, shards, variants, subfolders), Hub repo
ids, in-memory state dicts, and original microsoft/unilm checkpoints.

Loading is strict by default: after renaming, missing or unexpected backbone keys and shape mismatches raise one
CheckpointError that lists them; only task-head weights may be absent (they are initialised and named in one
warning). `strict=False` gives transformers' behaviour (missing weights initialised, unexpected ones ignored).
What loading did is returned as a LoadingInfo (`load_checkpoint`), or as transformers' dict through
`from_pretrained(..., output_loading_info=True)`."""
from __future__ import annotations

import copy
import inspect
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wavlm.checkpoint.errors import CheckpointError, MissingFileError, ShapeMismatchError
from wavlm.checkpoint.hf import HUB_PATTERNS, read_torch_file, read_weights, write_weights
from wavlm.checkpoint.keys import LEGACY_WEIGHT_NORM, rename
from wavlm.checkpoint.options import LOAD_IGNORED, LOAD_UNSUPPORTED, SAVE_IGNORED, SAVE_UNSUPPORTED, check_options
from wavlm.checkpoint.original import config_from_original, is_original_checkpoint, state_dict_from_original
from wavlm.config import _FIELD_NAMES, WavLMConfig, _did_you_mean
from wavlm.hub import HUB_OPTIONS, hub_options

__all__ = ["CheckpointError", "LoadingInfo", "MissingFileError", "ShapeMismatchError", "load_checkpoint",
           "load_pretrained", "match_state_dict", "save_pretrained"]

PREFIX = "wavlm."
# Backbone parameters that exist only for some configs and that a checkpoint may lack without harm.
OPTIONAL_BACKBONE_KEYS = ("masked_spec_embed",)
# Keys named in one error message; the others are counted.
KEYS_SHOWN = 20
# The named options of load_checkpoint / from_pretrained (for error hints).
_LOADER_NAMES = ("config", "state_dict", "dtype", "torch_dtype", "device", "device_map", "ignore_mismatched_sizes",
                 "strict", "use_safetensors", "variant", "output_loading_info", *HUB_OPTIONS)


@dataclass
class LoadingInfo:
    """What loading did with the checkpoint's tensors, keys spelled as the model names them."""

    missing_keys: list[str]  # model weights the checkpoint lacks: newly initialised
    unexpected_keys: list[str]  # checkpoint weights the model does not use
    mismatched_keys: list[tuple[str, torch.Size, torch.Size]]  # reinitialised: (key, checkpoint shape, model shape)
    weights: str  # the file the tensors came from ("state_dict" for an in-memory one)
    error_msgs: list[str] = field(default_factory=list)  # always empty: problems raise instead

    @property
    def new_keys(self) -> list[str]:
        """Every weight that was initialised rather than loaded."""
        return sorted(set(self.missing_keys) | {k for k, _, _ in self.mismatched_keys})

    def as_dict(self) -> dict[str, Any]:
        """transformers' `output_loading_info`: sets of keys, a set of (key, checkpoint shape, model shape), and a
        list of error messages."""
        return {"missing_keys": set(self.missing_keys), "unexpected_keys": set(self.unexpected_keys),
                "mismatched_keys": set(self.mismatched_keys), "error_msgs": list(self.error_msgs)}


def _dtype(value: Any) -> torch.dtype | str | None:
    if value is None or value == "auto" or isinstance(value, torch.dtype):
        return value
    name = str(value).replace("torch.", "")
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"torch_dtype {value!r} is not a torch dtype (use e.g. 'float32', 'bfloat16', 'auto')")
    return dtype


def _device(device: Any, device_map: Any) -> torch.device | None:
    """The one device a `device_map` names ("auto" and the like: the accelerator if there is one, else the CPU)."""
    if device is not None or device_map is None:
        return None if device is None else torch.device(device)
    if isinstance(device_map, dict):
        devices = {str(torch.device(d) if not isinstance(d, int) else torch.device("cuda", d))
                   for d in device_map.values()}
        if len(devices) != 1:
            raise ValueError(f"device_map spreads the model over {sorted(devices)}; wavlm loads a model onto one "
                             "device (pass device_map='cuda:0' or device='cuda:0')")
        return torch.device(devices.pop())
    if device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
        return accelerator if accelerator is not None else torch.device("cpu")
    if isinstance(device_map, int):
        return torch.device("cuda", device_map)
    return torch.device(device_map)


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


def match_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint", *,
                     strict: bool = True, ignore_mismatched_sizes: bool = False
                     ) -> tuple[dict[str, torch.Tensor], LoadingInfo]:
    """Fit `state` to `model`'s keys and shapes; returns (the tensors to assign, what happens to the others).

    Always allowed: head weights missing (a backbone checkpoint) or unused (another head's), and the optional
    backbone keys. `strict=True` refuses every other missing or unexpected key; `ignore_mismatched_sizes=True`
    reinitialises head weights whose shape differs, and backbone ones too with `strict=False`.
    Raises CheckpointError listing every problem at once; ShapeMismatchError (also a RuntimeError, as
    transformers raises) when shapes differ."""
    state, dropped_head = _align_prefix(_normalise_keys(state), model)
    tensors = model.state_dict(keep_vars=True)
    expected = {k: tuple(v.shape) for k, v in tensors.items()}
    head_model = any(k.startswith(PREFIX) for k in expected)
    optional = {(PREFIX if head_model else "") + k for k in OPTIONAL_BACKBONE_KEYS}

    def allowed(key: str) -> bool:
        return (head_model and not key.startswith(PREFIX)) or key in optional

    missing = [k for k in expected if k not in state]
    unexpected = dropped_head + [k for k in state if k not in expected]
    mismatched = [(k, tuple(state[k].shape), expected[k]) for k in state
                  if k in expected and tuple(state[k].shape) != expected[k]]
    reinit = [m for m in mismatched if ignore_mismatched_sizes and (allowed(m[0]) or not strict)]
    bad_missing = [k for k in missing if strict and not allowed(k)]
    bad_unexpected = [k for k in unexpected if strict and not allowed(k) and k not in dropped_head]
    bad_shapes = [m for m in mismatched if m not in reinit]

    # integer or bool tensors where the model holds floats: torch's own error for these is one paragraph per key
    bad_dtypes = [(k, v.dtype) for k, v in state.items()
                  if k in tensors and tensors[k].is_floating_point() and not (v.is_floating_point() or v.is_complex())]
    if bad_dtypes:
        kinds = sorted({str(d).replace("torch.", "") for _, d in bad_dtypes})
        raise CheckpointError(f"{source} holds {len(bad_dtypes)} weight(s) of non-floating-point dtype "
                              f"{', '.join(kinds)} where the model has float parameters: "
                              f"{_few_keys([k for k, _ in bad_dtypes])}; convert them to float32 (or the model's "
                              "dtype) before saving")

    problems = _layer_count_problems(state, model.config) if (bad_missing or bad_unexpected) else []
    if bad_missing:
        problems.append(f"missing keys: {_few_keys(bad_missing)}")
    if bad_unexpected:
        problems.append(f"unexpected keys: {_few_keys(bad_unexpected)}")
    if bad_missing or bad_unexpected:
        problems.append("pass strict=False to load it anyway, initialising missing weights randomly and ignoring "
                        "unexpected ones, as transformers does")
    if bad_shapes:
        shown = ", ".join(f"{k} has {a} in the checkpoint but {b} in the model" for k, a, b in bad_shapes[:KEYS_SHOWN])
        more = f", ... and {len(bad_shapes) - KEYS_SHOWN} more" if len(bad_shapes) > KEYS_SHOWN else ""
        problems.append(f"shape mismatches ({len(bad_shapes)}): {shown}{more}")
        backbone = any(not allowed(k) for k, _, _ in bad_shapes)
        if not ignore_mismatched_sizes:
            problems.append("pass ignore_mismatched_sizes=True" + (" and strict=False" if backbone else "")
                            + " to reinitialise them")
        else:
            problems.append("backbone weights are reinitialised only with strict=False as well")
    if problems:
        error = ShapeMismatchError if bad_shapes else CheckpointError
        config = model.config
        raise error(f"{source} does not fit {type(model).__name__} (config: hidden_size={config.hidden_size}, "
                    f"num_hidden_layers={config.num_hidden_layers}): " + "; ".join(problems))
    skip = {k for k, _, _ in reinit}
    to_load = {k: v for k, v in state.items() if k in expected and k not in skip}
    info = LoadingInfo(missing_keys=missing, unexpected_keys=unexpected,
                       mismatched_keys=[(k, torch.Size(a), torch.Size(b)) for k, a, b in reinit], weights=source)
    return to_load, info


def _layer_count_problems(state: dict[str, torch.Tensor], config: WavLMConfig) -> list[str]:
    """'the checkpoint has N encoder layers but config.num_hidden_layers is M' (and the same for conv layers),
    the usual cause of a long list of missing or unexpected keys."""
    problems = []
    for pattern, field_, count in ((r"(?:^|\.)encoder\.layers\.(\d+)\.", "num_hidden_layers",
                                    config.num_hidden_layers),
                                   (r"(?:^|\.)feature_extractor\.conv_layers\.(\d+)\.", "conv_dim (its length)",
                                    len(config.conv_dim))):
        found = {int(m.group(1)) for k in state if (m := re.search(pattern, k))}
        if found and max(found) + 1 != count:
            problems.append(f"the checkpoint has {max(found) + 1} layers where config.{field_} is {count}")
    return problems


def _few_keys(keys: list[str]) -> str:
    """A key list for a message: the count and the first KEYS_SHOWN keys (a 1000-layer config lists 17000)."""
    shown = ", ".join(keys[:KEYS_SHOWN])
    more = f", ... and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
    return f"{len(keys)} [{shown}{more}]"


def _materialise_new(model: nn.Module, new_keys: list[str], device: torch.device) -> None:
    """Give freshly initialised values to parameters still on the meta device (those the checkpoint did not
    provide); tensors already loaded into the same modules are kept."""
    owners = {}
    for key in new_keys:
        module_name = key.rsplit(".", 1)[0] if "." in key else ""
        owners[module_name] = model.get_submodule(module_name)
    for module in owners.values():
        tensors = {**dict(module.named_parameters(recurse=False)), **dict(module.named_buffers(recurse=False))}
        if not any(t.is_meta for t in tensors.values()):
            continue
        loaded = {name: t.detach() for name, t in tensors.items() if not t.is_meta}  # to_empty swaps .data
        module.to_empty(device=device, recurse=False)
        model._init_weights(module)
        for name, data in loaded.items():
            getattr(module, name).data = data


def _resolve(name_or_path: str | os.PathLike, hub_args: dict[str, Any]) -> tuple[Path, dict | None]:
    """A local directory holding the checkpoint, or (file's folder, loaded original checkpoint) for a .pt file."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        obj = read_torch_file(path)
        if not is_original_checkpoint(obj):
            keys = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{path} is a single file but not an original microsoft WavLM checkpoint "
                                  f"(a dict with 'cfg' and 'model'; found {keys}); for a transformers checkpoint "
                                  "pass the directory holding config.json and the weights")
        return path.parent, obj
    from wavlm.hub import resolve_files

    return Path(resolve_files(name_or_path, HUB_PATTERNS, **hub_args)), None


def _as_config(config: Any, hub_args: dict[str, Any]) -> WavLMConfig:
    """A private WavLMConfig from a WavLMConfig (copied, as transformers does), a path / Hub id holding
    config.json, or a transformers WavLMConfig."""
    if isinstance(config, WavLMConfig):
        return copy.deepcopy(config)
    if isinstance(config, (str, os.PathLike)):
        return WavLMConfig.from_pretrained(config, **hub_args)
    if hasattr(config, "to_dict") and getattr(config, "model_type", None) == WavLMConfig.model_type:
        return WavLMConfig.from_dict(config.to_dict())
    raise TypeError(f"config must be a WavLMConfig, a transformers WavLMConfig, or a path holding config.json; got "
                    f"{type(config).__name__}")


def _init_options(cls: type) -> list[str]:
    """Keyword arguments of the model class's constructor other than the config (WavLMForCTC's target_lang)."""
    params = inspect.signature(cls.__init__).parameters
    return [n for n, p in params.items() if n not in ("self", "config")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def load_checkpoint(cls: type, pretrained_model_name_or_path: str | os.PathLike | None, *,
                    config: Any = None, state_dict: dict[str, torch.Tensor] | None = None,
                    torch_dtype: Any = None, dtype: Any = None, device: str | torch.device | None = None,
                    device_map: Any = None, ignore_mismatched_sizes: bool = False, strict: bool = True,
                    use_safetensors: bool | None = None, variant: str | None = None,
                    **kwargs: Any) -> tuple[nn.Module, LoadingInfo]:
    """Build `cls` on the meta device, assign the checkpoint's tensors to it (no double initialisation) and
    return `(model, LoadingInfo)`; what loading did is reported only there (from_pretrained warns about it).

    The source is a local directory (or its `subfolder`), a Hub repo id, an original microsoft .pt file, or
    `None` with `state_dict=` and `config=`. `torch_dtype`/`dtype`: a dtype, or "auto" (the default, as in
    transformers 5: config.json's dtype, else the weights' own floating-point dtype). `device`, or a `device_map`
    naming one device, places the model. Other keyword arguments are download options (`revision`, `cache_dir`,
    `token`, `local_files_only`, `force_download`, `subfolder`), config values that override the checkpoint's
    (`num_labels=5`), arguments of the class's constructor, or transformers loading options listed in
    `wavlm.checkpoint.options`; anything else raises TypeError. No keyword is ever stored in the config unless it
    is a config value."""
    where = f"{cls.__name__}.from_pretrained()"
    hub_args = hub_options(kwargs)
    check_options(kwargs, LOAD_IGNORED, LOAD_UNSUPPORTED, where)
    device = _device(device, device_map)
    target_dtype = _dtype(dtype if dtype is not None else torch_dtype if torch_dtype is not None else "auto")

    original = None
    if state_dict is not None:
        if pretrained_model_name_or_path is not None:
            raise ValueError(f"{where}: pass either a model path or state_dict=, not both (as transformers)")
        if config is None:
            raise ValueError(f"{where}: state_dict= needs config= to build the model")
        if not isinstance(state_dict, dict) or not all(torch.is_tensor(v) for v in state_dict.values()):
            raise TypeError(f"{where}: state_dict must map parameter names to tensors")
        directory, source = None, "state_dict"
    elif pretrained_model_name_or_path is None:
        raise ValueError(f"{where} needs a model directory, a Hub repo id or an original .pt file, or "
                         "state_dict= with config=")
    else:
        directory, original = _resolve(pretrained_model_name_or_path, hub_args)

    if config is not None:
        config = _as_config(config, hub_args)
    elif original is not None:
        config = config_from_original(original["cfg"])
    else:
        config_file = directory / "config.json"
        if not config_file.is_file():
            local = Path(pretrained_model_name_or_path).expanduser().is_dir()
            name = directory if local else f"{str(pretrained_model_name_or_path)!r} (downloaded to {directory})"
            raise MissingFileError(f"{name} has no config.json; save the model with save_pretrained or pass "
                                   "config=WavLMConfig(...)")
        config = WavLMConfig.from_json_file(config_file)
    unused = config.apply_overrides(kwargs)
    init_kwargs = {k: unused.pop(k) for k in _init_options(cls) if k in unused}
    if unused:
        raise TypeError(f"{where} got unexpected keyword argument(s) {', '.join(sorted(unused))}: neither loading "
                        "options nor WavLMConfig fields"
                        + _did_you_mean(unused, list(_FIELD_NAMES) + list(_LOADER_NAMES)))

    if state_dict is not None:
        state = dict(state_dict)
    elif original is not None:
        state = state_dict_from_original(original["model"], config)
        source = f"original checkpoint {pretrained_model_name_or_path}"
    else:
        state, weights_file = read_weights(directory, use_safetensors, variant)
        source = str(weights_file)

    with torch.device("meta"):
        model = cls(config, **init_kwargs)
    to_load, info = match_state_dict(model, state, source, strict=strict,
                                     ignore_mismatched_sizes=ignore_mismatched_sizes)
    new_keys = info.new_keys
    head_model = any(k.startswith(PREFIX) for k in model.state_dict())
    optional = {(PREFIX if head_model else "") + k for k in OPTIONAL_BACKBONE_KEYS}
    if any((k.startswith(PREFIX) or not head_model) and k not in optional for k in new_keys):
        # backbone weights to initialise (strict=False): build normally, which initialises every module as its
        # constructor and _init_weights say, then assign what the checkpoint has
        checkpointing = model.is_activation_checkpointing  # a legacy config key, consumed by the first build
        model = cls(config, **init_kwargs)
        if checkpointing:
            model.activation_checkpointing_enable()
    model.load_state_dict(to_load, strict=False, assign=True)
    _materialise_new(model, new_keys, torch.device("cpu"))
    if target_dtype == "auto":  # as transformers: the config's dtype, else the checkpoint's floating-point dtype
        target_dtype = _dtype(config.dtype) if config.dtype else next(
            (t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    model.to(dtype=target_dtype or torch.float32)
    if device is not None:
        model.to(device)
    model.config.dtype = str(model.dtype).replace("torch.", "")
    name = "" if pretrained_model_name_or_path is None else str(pretrained_model_name_or_path)
    model.name_or_path = model.config.name_or_path = name
    model.eval()  # as transformers: loaded models start in eval mode
    return model, info


def load_pretrained(cls: type, pretrained_model_name_or_path: str | os.PathLike | None, *,
                    output_loading_info: bool = False, **kwargs: Any) -> nn.Module | tuple[nn.Module, dict]:
    """`from_pretrained`: the model, or `(model, {"missing_keys", "unexpected_keys", "mismatched_keys",
    "error_msgs"})` with `output_loading_info=True` as in transformers. See `load_checkpoint`. Newly initialised
    and unused weights are named in a warning each (load_checkpoint itself only returns them)."""
    model, info = load_checkpoint(cls, pretrained_model_name_or_path, **kwargs)
    if info.new_keys:
        warnings.warn(f"{cls.__name__}: these weights are not in {info.weights} and were newly initialised; train "
                      f"them before use: {info.new_keys}", stacklevel=3)
    if info.unexpected_keys:
        warnings.warn(f"{cls.__name__} does not use these weights of {info.weights}: "
                      f"{sorted(info.unexpected_keys)}", stacklevel=3)
    return (model, info.as_dict()) if output_loading_info else model


def save_pretrained(model: nn.Module, save_directory: str | os.PathLike, is_main_process: bool = True,
                    state_dict: dict[str, torch.Tensor] | None = None, max_shard_size: int | str = "50GB",
                    variant: str | None = None, safe_serialization: bool = True, **kwargs: Any) -> None:
    """config.json + model.safetensors (shards and an index above `max_shard_size`; pytorch_model.bin when
    safe_serialization=False; model.<variant>.safetensors with a variant), loadable by transformers with no
    missing or unexpected keys. As transformers, `model.config` records the saved dtype and class, and nothing
    is written when `is_main_process` is False. Weight files of an earlier save in the directory are replaced."""
    check_options(kwargs, SAVE_IGNORED, SAVE_UNSUPPORTED, "save_pretrained()")
    if kwargs:
        raise TypeError(f"save_pretrained() got unexpected keyword argument(s) {', '.join(sorted(kwargs))}"
                        + _did_you_mean(kwargs, ["is_main_process", "state_dict", "max_shard_size", "variant",
                                                 "safe_serialization", *SAVE_IGNORED, *SAVE_UNSUPPORTED]))
    directory = Path(save_directory)
    if directory.is_file():
        raise ValueError(f"save_pretrained needs a directory, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    if not is_main_process:
        return
    model.config.architectures = [type(model).__name__]
    model.config.dtype = str(model.dtype).replace("torch.", "")
    model.config.save_pretrained(directory)
    write_weights(state_dict if state_dict is not None else model.state_dict(), directory,
                  safe_serialization=safe_serialization, max_shard_size=max_shard_size, variant=variant)
