"""`wavlm convert`: an original microsoft checkpoint to a transformers directory and back
(wavlm.checkpoint.convert)."""
from __future__ import annotations

import argparse

from wavlm.cli.options import DTYPES
from wavlm.cli.report import UsageError, log

HELP = "original microsoft checkpoint <-> transformers directory"
DESCRIPTION = ("SOURCE.pt -> DEST directory (config.json, model.safetensors, preprocessor_config.json), a "
               "transformers directory -> DEST directory (its class, feature extractor and tokenizer kept), or a "
               "transformers directory -> DEST.pt (original layout; backbone only). DEST must not be SOURCE; "
               "nothing is written half-way.")
RUNS_MODEL = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--to", choices=["hf", "original"], default=None, help="default: original when DEST ends in .pt")
    p.add_argument("--dtype", default="float32", choices=DTYPES)


def run(args: argparse.Namespace) -> int:
    from wavlm.checkpoint.convert import convert_checkpoint
    from wavlm.cli.loader import resolve_dtype

    dtype = resolve_dtype(args.dtype)
    try:
        line = convert_checkpoint(args.source, args.destination, args.to, dtype, log=log)
    except Exception as e:  # noqa: BLE001 - any failure to read or write is a usage error with its reason, as embed
        raise UsageError(f"cannot convert {args.source}: {e}") from None
    print(line)
    return 0
