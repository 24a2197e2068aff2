"""`wavlm synth asr|speakers|conversations|commands|real ...`: synthetic corpora and real recordings for evaluation
(wavlm.synth.command, also `python -m wavlm.synth`)."""
from __future__ import annotations

import argparse

HELP = "synthetic speech corpora (espeak-ng, flite, sox) and real recordings for evaluation"
DESCRIPTION = None  # wavlm.synth.command sets it, with the epilog
RUNS_MODEL = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    from wavlm.synth.command import add_synth_arguments

    add_synth_arguments(p)


def run(args: argparse.Namespace) -> int:
    from wavlm.synth.command import run_synth

    return run_synth(args)
