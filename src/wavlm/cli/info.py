"""`wavlm info`: configuration summary, parameter count, frame rate and receptive field of a checkpoint (its config
only: no weights are read for transformers directories)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wavlm.cli.report import UsageError, warnings_logged

HELP = "configuration, parameter count, frame rate, receptive field"
DESCRIPTION = "Summary of a checkpoint (reads config only; no weights are loaded)."
RUNS_MODEL = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    sys.stdout.write(json.dumps(info, indent=1) + "\n" if args.json else format_info(info))
    return 0


def model_info(source: str) -> dict[str, Any]:
    """Configuration summary, parameter count, frame rate and receptive field of a checkpoint (parameters are
    counted on the meta device; a transformers directory or Hub repo is resolved for its config.json alone)."""
    import torch

    import wavlm
    from wavlm.cli.loader import resolve_source

    found = resolve_source(source, weights=False)
    if found.file is not None:
        from wavlm.checkpoint.hf import read_torch_file
        from wavlm.checkpoint.original import config_from_original, is_original_checkpoint

        try:  # the messages `wavlm embed` gives for the same file
            with warnings_logged():
                obj = read_torch_file(found.file)
            if not is_original_checkpoint(obj):
                keys = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
                raise ValueError(f"{source} is a single file but not an original microsoft WavLM checkpoint (a "
                                 f"dict with 'cfg' and 'model'; found {keys}); for a transformers checkpoint pass "
                                 "the directory holding config.json and the weights")
            config, arch, kind = config_from_original(obj["cfg"]), "WavLMModel", "original microsoft checkpoint"
        except Exception as e:  # noqa: BLE001 - any unreadable file is a usage error with its reason
            raise UsageError(f"cannot read the model {source!r}: {e}") from None
    else:
        config, arch, kind = found.config, found.architecture or "WavLMModel", "transformers checkpoint"
    cls = getattr(wavlm, arch, wavlm.WavLMModel)
    with torch.device("meta"):
        params = cls(config).num_parameters()
    sr = 16000
    info: dict[str, Any] = {
        "model": source, "format": kind, "class": cls.__name__,
        "variant": "large-style (layer-norm conv, pre-LN encoder)" if config.do_stable_layer_norm
        else "base-style (group-norm conv, post-LN encoder)",
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads, "intermediate_size": config.intermediate_size,
        "parameters": params,
        "frame_rate_hz": sr / config.frame_stride, "frame_stride_samples": config.frame_stride,
        "receptive_field_samples": config.receptive_field,
        "receptive_field_ms": 1000 * config.receptive_field / sr,
    }
    if cls.__name__ == "WavLMForCTC":
        info["vocab_size"] = config.vocab_size
    if cls.__name__ in ("WavLMForSequenceClassification", "WavLMForAudioFrameClassification", "WavLMForXVector"):
        info["num_labels"] = config.num_labels
        labels = [config.id2label[i] for i in range(config.num_labels)]
        info["labels"] = labels if len(labels) <= 20 else labels[:20] + ["..."]
    if cls.__name__ == "WavLMForXVector":
        info["xvector_output_dim"] = config.xvector_output_dim
    return info


def format_info(info: dict[str, Any]) -> str:
    width = max(len(k) for k in info)
    lines = []
    for k, v in info.items():
        if k == "parameters":
            v = f"{v:,} ({v / 1e6:.2f} M)"
        elif isinstance(v, float):
            v = f"{v:g}"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines) + "\n"
