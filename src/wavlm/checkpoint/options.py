"""The keyword arguments transformers 5.23's `from_pretrained` and `save_pretrained` take that wavlm does not
honour, as data: accepted and ignored where they mean nothing here, accepted only at their default value where
any other value asks for machinery wavlm does not have. Every other keyword is a config value or a TypeError;
none is ever written into a config."""
from __future__ import annotations

from typing import Any

# from_pretrained keywords that tune machinery wavlm does not have, with the reason they can be ignored
LOAD_IGNORED = {
    "low_cpu_mem_usage": "the model is always built on the meta device and given the checkpoint's tensors",
    "attn_implementation": "wavlm has one attention implementation and picks its kernels itself",
    "experts_implementation": "WavLM has no mixture of experts",
    "trust_remote_code": "wavlm runs no code from checkpoints",
    "disable_mmap": "files are read whole",
    "tqdm_class": "loading shows no progress bar",
    "mirror": "removed in transformers",
    "_fast_init": "removed in transformers",
    "offload_state_dict": "removed in transformers",
    "_from_auto": "transformers telemetry",
    "_from_pipeline": "transformers telemetry",
    "_commit_hash": "transformers resolves revisions itself",
}

# from_pretrained keywords accepted only at their default: (default, what wavlm does not support)
LOAD_UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "quantization_config": (None, "quantised loading (quantise the loaded model with torch.ao instead)"),
    "max_memory": (None, "device maps over several devices"),
    "offload_folder": (None, "offloading weights to disk"),
    "offload_buffers": (False, "offloading buffers"),
    "tp_plan": (None, "tensor parallelism"),
    "tp_size": (None, "tensor parallelism"),
    "device_mesh": (None, "tensor parallelism"),
    "distributed_config": (None, "distributed loading"),
    "gguf_file": (None, "GGUF files"),
    "adapter_kwargs": (None, "PEFT adapters"),
    "adapter_name": ("default", "PEFT adapters"),
    "generation_config": (None, "generation (WavLM does not generate text)"),
    "use_kernels": (False, "Hub kernels"),
    "kernel_config": (None, "Hub kernels"),
    "allow_all_kernels": (False, "Hub kernels"),
    "fusion_config": (None, "module fusion plans"),
    "key_mapping": (None, "custom key renaming (legacy and original microsoft checkpoints are renamed "
                          "automatically)"),
    "from_tf": (False, "TensorFlow checkpoints"),
    "from_flax": (False, "Flax checkpoints"),
    "weights_only": (True, "unpickling arbitrary objects: .bin files are read with weights_only=True only"),
}

# save_pretrained keywords, likewise
SAVE_IGNORED = {
    "token": "used only to push to the Hub, which save_pretrained does not do",
    "save_peft_format": "WavLM models carry no PEFT adapters",
    "save_original_format": "the saved keys are transformers' own",
}
SAVE_UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "push_to_hub": (False, "uploading (save, then use huggingface_hub.upload_folder)"),
    "distributed_checkpoint": (False, "distributed checkpoints"),
}


def _is_default(value: Any, default: Any) -> bool:
    if value is None or value is default:
        return True
    if isinstance(value, (dict, list, tuple)) and not value and default is None:
        return True
    try:
        return bool(value == default)
    except Exception:  # noqa: BLE001 - objects whose == is not a bool are not the default
        return False


def check_options(kwargs: dict[str, Any], ignored: dict[str, str], unsupported: dict[str, tuple[Any, str]],
                  where: str) -> None:
    """Remove the `ignored` keywords and the `unsupported` ones at their default from `kwargs` (in place); raise
    ValueError for an unsupported keyword with another value."""
    for key in [k for k in kwargs if k in ignored]:
        del kwargs[key]
    for key in [k for k in kwargs if k in unsupported]:
        default, what = unsupported[key]
        value = kwargs.pop(key)
        if not _is_default(value, default):
            raise ValueError(f"{where}: {key}={value!r} asks for {what}, which wavlm does not support; "
                             f"leave {key} at {default!r}")
