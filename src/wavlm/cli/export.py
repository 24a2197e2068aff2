"""`wavlm export --onnx`: the model's forward pass as ONNX, with dynamic batch and length."""
from __future__ import annotations

import argparse

from wavlm.cli.options import positive_int
from wavlm.cli.report import UsageError

HELP = "export a model to ONNX"
DESCRIPTION = ("Export the model's forward pass (input_values, attention_mask) -> its first output "
               "(last_hidden_state or logits) to ONNX, with dynamic batch and length.")
RUNS_MODEL = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--onnx", action="store_true", help="export to ONNX (the only format; accepted for clarity)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=positive_int, default=None,
                   help="ONNX opset (default 18); the file is in exactly this opset or nothing is written "
                        "(torch's exporter implements 18 and up, and converts only some graphs down)")
    p.add_argument("--no-attention-mask", action="store_true", help="export input_values as the only input")
    p.add_argument("--check", action="store_true", help="compare onnxruntime with torch on a random batch")


def run(args: argparse.Namespace) -> int:
    import torch

    import wavlm
    from wavlm.checkpoint import load_checkpoint
    from wavlm.cli.loader import resolve_source

    try:
        from wavlm.export import OpsetError, export_onnx, onnx_session, run_onnx, written_opset
    except ImportError as e:
        raise UsageError(f"ONNX export is not available in this installation: {e}") from None
    source = resolve_source(args.model)
    class_name = source.architecture or "WavLMModel"
    try:
        model, _ = load_checkpoint(getattr(wavlm, class_name), source.directory or source.file, config=source.config,
                                   torch_dtype=torch.float32)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"cannot load {args.model!r}: {e}") from None
    kwargs = {} if args.opset is None else {"opset": args.opset}
    try:
        path = export_onnx(model, args.output, with_attention_mask=not args.no_attention_mask, **kwargs)
    except ImportError as e:
        raise UsageError(f"{e} (or pip install 'wavlm[onnx]')") from None
    except OpsetError as e:
        raise UsageError(f"--opset {args.opset}: {e}") from None
    except Exception as e:  # noqa: BLE001 - an exporter failure or an unwritable -o, with its reason
        raise UsageError(f"cannot export {args.model!r} to {args.output}: {e}") from None
    line = f"wrote {path} ({class_name}, opset {written_opset(path)}, inputs: input_values" + \
        ("" if args.no_attention_mask else ", attention_mask") + "; dynamic batch and length)"
    if args.check:
        x = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(2, 16000, dtype=torch.long)
        mask[1, 9000:] = 0
        feed_mask = None if args.no_attention_mask else mask
        with torch.no_grad():
            ref = model(x, attention_mask=feed_mask)[0].numpy()
        try:
            got = run_onnx(onnx_session(path), x.numpy(), None if feed_mask is None else mask.numpy())
        except ImportError as e:
            raise UsageError(f"--check: {e}") from None
        line += f"\ncheck: onnxruntime vs torch on a (2, 16000) batch, max |difference| {abs(got - ref).max():.2e}"
    print(line)
    return 0
