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
    p.add_argument("--model", "-m", help="the checkpoint to summarise (required unless --system)")
    p.add_argument("--system", action="store_true",
                   help="the machine as the kernels see it: CPU model, ISA, threads, library versions, kernel plan")
    p.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace) -> int:
    if args.system:
        sys.stdout.write(format_system(system_report(), args.json))
        if args.model is None:
            return 0
    if args.model is None:
        raise UsageError("wavlm info needs --model/-m (or --system for the machine and kernel plan)")
    info = model_info(args.model)
    sys.stdout.write(json.dumps(info, indent=1) + "\n" if args.json else format_info(info))
    return 0


def model_info(source: str) -> dict[str, Any]:
    """Configuration summary, parameter count, frame rate and receptive field of a checkpoint (parameters are
    counted on the meta device; a transformers directory or Hub repo is resolved for its config.json alone)."""
    import torch

    from wavlm.checkpoint.convert import model_class
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
    cls = model_class(arch)
    try:
        with torch.device("meta"):
            params = cls(config).num_parameters()
    except (ValueError, TypeError) as e:  # a config that loads but does not build this class
        raise UsageError(f"cannot build a {cls.__name__} from {source!r}: {e}") from None
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


def system_report() -> dict[str, Any]:
    """wavlm.kernels.system_info() with each plan as (device, dtype, [(operation, kernel, reason)])."""
    from wavlm import kernels

    info = kernels.system_info()
    info["plans"] = [{"plan": str(p).splitlines()[0].rstrip(":"),
                      "kernels": [{"operation": c.operation, "kernel": c.kernel, "reason": c.reason} for c in p]}
                     for p in info["plans"]]
    return info


def format_system(info: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(info, indent=1) + "\n"
    lines = [f"{key}: {value}" for key, value in info.items() if key != "plans"]
    for p in info["plans"]:
        lines.append(p["plan"] + ":")
        op_width = max(len(c["operation"]) for c in p["kernels"])
        kernel_width = max(len(c["kernel"]) for c in p["kernels"])
        lines += [f"  {c['operation']:<{op_width}}  {c['kernel']:<{kernel_width}}  {c['reason']}" for c in p["kernels"]]
    return "\n".join(lines) + "\n"
