"""`python -m wavlm.synth KIND -o DIR ...`: the same as `wavlm synth` (see wavlm.synth.command)."""
from __future__ import annotations

import argparse
import sys

from .command import add_synth_arguments, run_synth


def main(argv: list[str] | None = None) -> int:
    parser = add_synth_arguments(argparse.ArgumentParser(prog="python -m wavlm.synth"))
    return run_synth(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
