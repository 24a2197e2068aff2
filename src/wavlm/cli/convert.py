"""`wavlm convert`: an original microsoft checkpoint to a transformers directory and back
(wavlm.checkpoint.convert)."""
from __future__ import annotations

import argparse

from wavlm.cli.options import DTYPES
from wavlm.cli.report import UsageError, log

HELP = "original microsoft checkpoint <-> transformers directory"
DESCRIPTION = ("SOURCE.pt -> DEST directory (config.json, model.safetensors, preprocessor_config.json), or a "
               "transformers directory -> DEST.pt (original layout; backbone only).")
RUNS_MODEL = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--to", choices=["hf", "original"], default=None, help="default: original when DEST ends in .pt")
    p.add_argument("--dtype", default="float32", choices=DTYPES)


def run(args: argparse.Namespace) -> int:
    from wavlm.checkpoint.convert import convert_checkpoint
    from wavlm.cli.loader import resolve_dtype

    try:
        print(convert_checkpoint(args.source, args.destination, args.to, resolve_dtype(args.dtype), log=log))
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        raise UsageError(f"cannot convert {args.source}: {e}") from None
    return 0
