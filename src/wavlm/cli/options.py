"""The flags every model command shares, defined once (STYLE.md section 8), and their values as one dataclass,
checked before any model is loaded."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from wavlm.cli.report import UsageError

DTYPES = ("float32", "bfloat16", "float16")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def check_number(name: str, value: float | None, low: float | None = None, high: float | None = None,
                 low_open: bool = False, allow_none: bool = True) -> None:
    """UsageError unless `value` is a finite number in [low, high] ((low, high] with low_open); None passes when
    allow_none. argparse's float() takes 'nan' and 'inf', which no option means."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise UsageError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise UsageError(f"{name} must be <= {high:g}, got {value:g}")


def model_arguments(model_help: str = "local directory, Hub repo id, or original microsoft .pt checkpoint"
                    ) -> argparse.ArgumentParser:
    """A parent parser with the flags shared by every command that runs a model over inputs."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model and run")
    g.add_argument("--model", "-m", required=True, help=model_help)
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    g.add_argument("--dtype", default="float32", choices=DTYPES, help="bfloat16 keeps the norms in float32 "
                                                                      "(default float32)")
    g.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the transformer (CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the forward pass (pays off on long runs)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="inputs per forward pass (default 8)")
    g.add_argument("--max-batch-seconds", type=float, default=None,
                   help="also cap a batch at this much padded audio (seconds), for long recordings")
    g.add_argument("-o", "--output", default=None,
                   help="output file (one for the run) or folder (one per input); default stdout")
    g.add_argument("--resume", action="store_true", help="skip inputs whose outputs already exist")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def add_inputs(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    p.add_argument("inputs", nargs=nargs, metavar="INPUT", help="audio file, folder or .jsonl manifest")


@dataclass(frozen=True)
class RunOptions:
    """The shared flags of a model command (see `model_arguments`)."""
    model: str
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 8
    max_batch_seconds: float | None = None
    output: str | None = None
    format: str | None = None
    resume: bool = False
    progress: bool = True
    compile: bool = False
    int8: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        check_number("--max-batch-seconds", self.max_batch_seconds, 0, low_open=True)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunOptions":
        return cls(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                   max_batch_seconds=args.max_batch_seconds, output=args.output,
                   format=getattr(args, "format", None), resume=args.resume, progress=not args.quiet,
                   compile=args.compile, int8=args.int8)
