"""`wavlm` (and `python -m wavlm`): one command with a subcommand per job, one module per subcommand in this package.

A command module declares HELP, DESCRIPTION, RUNS_MODEL (whether it takes the shared model flags of
cli.options), add_arguments(parser) and run(args) -> exit code. The model commands (embed, transcribe, classify,
verify, diarize) build a cli.executor.Task from their options dataclass and hand it to cli.executor.run, which
loads once (cli.loader) and runs it; the others (convert, export, info, synth) are their own run function. Only
the standard library is imported until a subcommand runs, so `wavlm --help` is instant.

Exit codes: 0 all inputs processed, 1 some inputs failed (each reported on stderr and skipped) or an output could not
be written once the run was under way (what was computed is kept, the message says where), 2 usage error.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# the subcommands, in the order `wavlm --help` lists them: module wavlm.cli.<name> each
COMMANDS = ("embed", "transcribe", "classify", "verify", "diarize", "convert", "export", "info", "synth",
            "finetune", "pretrain")

EPILOG = """inputs: audio files, folders (searched recursively for audio extensions) or JSONL manifests (one
{"audio": path, "id": optional} object per line). Output (-o): omitted = stdout; a file with a run format's
extension = one file for the run; anything else = a folder with one output per input (named by input id).
Under torchrun each rank takes a share of the inputs; a single output file is merged by rank 0.
exit codes: 0 ok, 1 some inputs failed (reported on stderr, others still written), 2 usage error."""


def _version() -> str:
    from wavlm import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    from wavlm.cli.options import model_arguments

    parser = argparse.ArgumentParser(
        prog="wavlm", description="WavLM speech models on many files: embeddings, transcription, classification, "
        "speaker verification and diarization; checkpoint conversion and export; synthetic corpora.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = model_arguments()
    for name in COMMANDS:
        module = importlib.import_module(f"wavlm.cli.{name}")
        p = sub.add_parser(name, parents=[shared] if module.RUNS_MODEL else [], help=module.HELP,
                           description=module.DESCRIPTION)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from wavlm.cli.report import OutputError, UsageError
    from wavlm.kernels import KernelConfigError

    try:
        return int(args.handler(args))
    except (UsageError, KernelConfigError) as e:
        print(f"wavlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OutputError as e:
        print(f"wavlm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wavlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        from wavlm.cli.io import silence_stdout

        silence_stdout()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
