"""Checkpoint conversion: an original microsoft/unilm checkpoint (.pt) to a transformers directory, a transformers
directory to another (a dtype change, a clean copy), and a transformers directory's backbone back to the original
layout (task heads have no original form).

What conversion refuses and keeps: a destination that is the source (also through a symlink or another spelling of
the path) is refused before anything is read or written; a transformers source keeps its class (the task head),
its feature extractor (`do_normalize`) and its tokenizer files; nothing is ever written half-way (a directory is
built in a hidden folder beside the destination and moved in file by file; a .pt file is written atomically)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from wavlm.checkpoint.original import normalizes_input, original_to_config_cfg, state_dict_to_original

ORIGINAL_SUFFIXES = (".pt", ".pth", ".ckpt")
EXTRACTOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("vocab.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")


def default_target(destination: str | os.PathLike) -> str:
    """'original' for a destination named like a torch file (.pt, .pth), else 'hf'."""
    return "original" if Path(destination).suffix.lower() in (".pt", ".pth") else "hf"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_destination(source: str | os.PathLike, destination: str | os.PathLike, to: str) -> None:
    """ValueError for a conversion that would destroy or cannot write: the destination is the source (any
    spelling, symlinks followed), a file where a folder goes or the other way round."""
    src, dst = Path(source).expanduser(), Path(destination).expanduser()
    if _same(src, dst):
        raise ValueError(f"the destination {destination} is the source {source}: converting in place would "
                         "overwrite the checkpoint while it is read; give another destination")
    if to == "hf" and dst.exists() and not dst.is_dir():
        raise ValueError(f"{dst} exists and is not a folder")
    if to == "original" and dst.is_dir():
        raise ValueError(f"{dst} is a folder; the original layout is one .pt file: give a file name")
    if to == "original" and src.is_file() and src.suffix.lower() in ORIGINAL_SUFFIXES:
        raise ValueError(f"{src} is already an original checkpoint")


def _source_directory(source: str | os.PathLike) -> Path | None:
    """The local folder of a transformers source (a Hub repo is fetched once, with its side files); None for an
    original .pt file."""
    if Path(source).expanduser().is_file():
        return None
    from wavlm.checkpoint.hf import HUB_PATTERNS
    from wavlm.hub import resolve_files

    return Path(resolve_files(source, [*HUB_PATTERNS, *EXTRACTOR_FILES, *TOKENIZER_FILES]))


def _move_into(staging: Path, dst: Path) -> None:
    """Move every file of `staging` into `dst` (each replaced atomically); weight files of an earlier save that the
    new ones do not replace are removed after, so that no stale shard or index shadows them."""
    from wavlm.checkpoint.hf import _variant_of

    if not dst.exists():
        os.replace(staging, dst)
        return
    new = {p.name for p in staging.iterdir()}
    for p in staging.iterdir():
        os.replace(p, dst / p.name)
    for old in dst.iterdir():
        if old.is_file() and old.name not in new and _variant_of(old.name) is not None:
            old.unlink()


def model_class(architecture: str) -> type:
    """The wavlm model class config.json's `architectures` names; WavLMModel for any other name (a class of another
    library, or a wavlm name that is no model class such as 'WavLMConfig' or 'load_audio')."""
    import wavlm

    cls = getattr(wavlm, architecture, None) if architecture.startswith("WavLM") else None
    if isinstance(cls, type) and issubclass(cls, wavlm.WavLMPreTrainedModel) and cls is not wavlm.WavLMPreTrainedModel:
        return cls
    return wavlm.WavLMModel


def convert_checkpoint(source: str | os.PathLike, destination: str | os.PathLike, to: str | None = None,
                       dtype: torch.dtype = torch.float32, log: Callable[[str], None] | None = None) -> str:
    """Write `source` (any model source `from_pretrained` takes) as `to`: "hf" = a transformers directory
    (config.json, model.safetensors, preprocessor_config.json, and the source's tokenizer files), "original" = a
    microsoft `.pt` ({"cfg", "model"}, the backbone only; a task head is left out, said through `log`). A
    transformers source keeps its class and its feature extractor (`do_normalize`, also as the original cfg's
    `normalize`); an original source gets the extractor `normalizes_input` gives. Default `to`:
    `default_target(destination)`. Returns a summary line.

    Raises ValueError for a conversion that cannot be done (the destination is the source, a destination of the
    wrong kind, an original source to convert to the original layout), and the loader's errors (OSError,
    CheckpointError) for a bad source. Nothing is written before the source has loaded, and never half a file."""
    import wavlm
    from wavlm.checkpoint import load_checkpoint
    from wavlm.config import WavLMConfig
    from wavlm.features import WavLMFeatureExtractor
    from wavlm.files import atomic_write

    dst = Path(destination).expanduser()
    to = to or default_target(dst)
    if to not in ("hf", "original"):
        raise ValueError(f"the target layout must be 'hf' or 'original', got {to!r}")
    check_destination(source, destination, to)
    directory = _source_directory(source)
    if directory is not None:
        check_destination(directory, destination, to)  # a Hub id resolved to the destination itself
    extractor, class_name = None, "WavLMModel"
    if directory is not None:
        if any((directory / name).is_file() for name in EXTRACTOR_FILES):
            extractor = WavLMFeatureExtractor.from_pretrained(directory)
        arch = (WavLMConfig.from_json_file(directory / "config.json").architectures or ["WavLMModel"])[0] \
            if (directory / "config.json").is_file() else "WavLMModel"
        if to == "hf":
            class_name = model_class(arch).__name__
    model, _ = load_checkpoint(getattr(wavlm, class_name), source if directory is None else directory,
                               torch_dtype=dtype)
    if extractor is None:
        extractor = WavLMFeatureExtractor(do_normalize=normalizes_input(model.config), return_attention_mask=True)
    if to == "hf":
        dst.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
        try:
            model.save_pretrained(staging)
            extractor.save_pretrained(staging)
            tokenizer = [n for n in TOKENIZER_FILES if directory is not None and (directory / n).is_file()]
            for name in tokenizer:
                shutil.copyfile(directory / name, staging / name)
            _move_into(staging, dst)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return (f"wrote {dst}: {class_name}, config.json, model.safetensors, preprocessor_config.json "
                f"(do_normalize={extractor.do_normalize})" + (f", {', '.join(tokenizer)}" if tokenizer else "")
                + f" ({model.num_parameters():,} parameters, {model.dtype})")
    arch = (model.config.architectures or ["WavLMModel"])[0]
    if arch != "WavLMModel" and log is not None:
        log(f"note: {source} holds a {arch}; its task head has no original form, only the backbone is written")
    state = state_dict_to_original(model.state_dict(), model.config)
    cfg: dict[str, Any] = {**original_to_config_cfg(model.config), "normalize": bool(extractor.do_normalize)}
    payload = {"cfg": cfg, "model": {k: v.contiguous() for k, v in state.items()}}
    atomic_write(dst, lambda f: torch.save(payload, f))
    return f"wrote {dst} (original microsoft layout, {len(state)} tensors, normalize={cfg['normalize']})"
