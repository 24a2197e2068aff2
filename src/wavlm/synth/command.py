"""`wavlm synth asr|speakers|conversations|commands -o DIR [...]` and `wavlm synth real NAME...`: the
command-line adapter of make_corpus and fetch_real. Only the standard library is imported until it runs."""
from __future__ import annotations

import argparse
import sys

_KINDS = ("asr", "speakers", "conversations", "commands")  # wavlm.synth.corpora.KINDS, without importing numpy
_REAL = ("pyannote", "pyannote-segments", "pocketsphinx", "alsa")  # wavlm.synth.real.REAL_SOURCES
_EPILOG = """\
writes: audio/<split>/<id>.wav (16 kHz mono), manifest.jsonl (all splits) and train/valid/test.jsonl with
`audio` (relative path), `id`, `duration`, `text` / `label` / `speaker` / `rttm` / `voice`, `split`;
rttm/<id>.rttm (conversations); trials_valid.txt, trials_test.txt (speakers: `enroll test label`);
corpus.json (options, voices per split, counts); cuts.jsonl.gz with --lhotse.
Voices of the valid and test splits never occur in train. `real NAME...` fetches real recordings for
evaluation (pyannote, pyannote-segments, pocketsphinx, alsa, or all) into --cache and prints their manifests."""


def _pair(kind: type):
    def parse(text: str) -> tuple:
        parts = text.replace(",", " ").split()
        try:
            values = tuple(kind(p) for p in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or MIN,MAX, got {text!r}") from None
        if len(values) not in (1, 2):
            raise argparse.ArgumentTypeError(f"expected a number or MIN,MAX, got {text!r}")
        return values if len(values) == 2 else values * 2
    return parse


def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of `wavlm synth` to `parser` (the synth sub-command's parser); returns it."""
    parser.description = parser.description or ("Generate a deterministic synthetic corpus (espeak-ng, flite, "
                                                 "sox), or fetch real recordings for evaluation.")
    parser.epilog = parser.epilog or _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("kind", choices=(*_KINDS, "real"), help="what to generate, or `real` to fetch recordings")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"with `real`: {', '.join(_REAL)} or all")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (empty, or use --overwrite)")
    parser.add_argument("-n", "--num-utterances", type=int, default=None, metavar="N",
                        help="manifest entries over all splits (conversations: conversations); default per kind: "
                             "asr 200, speakers 192, conversations 24, commands 200")
    parser.add_argument("--seed", type=int, default=0, help="same seed and options -> identical files (default 0)")
    parser.add_argument("--engines", default="espeak,flite", help="espeak and/or flite (default: both)")
    parser.add_argument("--noise-prob", type=float, default=0.0, metavar="P",
                        help="chance of white/pink/brown noise per entry (default 0)")
    parser.add_argument("--snr", type=_pair(float), default=(5.0, 20.0), metavar="MIN,MAX",
                        help="noise SNR range in dB (default 5,20)")
    parser.add_argument("--reverb-prob", type=float, default=0.0, metavar="P",
                        help="chance of sox reverberation per entry (default 0)")
    parser.add_argument("--num-speakers", type=int, default=None, metavar="N",
                        help="speakers: speakers over all splits (default 24)")
    parser.add_argument("--digit-fraction", type=float, default=None, metavar="F",
                        help="asr: share of digit strings (default 0.3)")
    parser.add_argument("--speakers-per-conversation", type=_pair(int), default=None, metavar="MIN,MAX",
                        help="conversations: voices per conversation (default 2,3)")
    parser.add_argument("--turns", type=_pair(int), default=None, metavar="MIN,MAX",
                        help="conversations: turns per conversation (default 4,8)")
    parser.add_argument("--overlap-prob", type=float, default=None, metavar="P",
                        help="conversations: chance that a turn overlaps the previous one (default 0.3)")
    parser.add_argument("--pause", type=_pair(float), default=None, metavar="MIN,MAX",
                        help="conversations: pause between turns in seconds (default 0.1,0.8)")
    parser.add_argument("--words", default=None, help="commands: comma-separated words (default: YES,NO,UP,DOWN,"
                                                      "LEFT,RIGHT,ON,OFF,STOP,GO)")
    parser.add_argument("--workers", type=int, default=None, help="rendering threads (default: up to 2)")
    parser.add_argument("--lhotse", action="store_true", help="also write a lhotse CutSet, cuts.jsonl.gz "
                                                              "(pip install 'wavlm[train]')")
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in DIR")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="real: cache folder (default $WAVLM_REAL_CACHE or ~/.cache/wavlm/real)")
    parser.add_argument("--refresh", action="store_true", help="real: fetch again even when cached")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    return parser


_KIND_FLAGS = {
    "asr": ("digit_fraction",), "speakers": ("num_speakers",),
    "conversations": ("speakers_per_conversation", "turns", "overlap_prob", "pause"), "commands": ("words",),
}


def _fail(message: str, code: int) -> int:
    print(f"wavlm synth: error: {message}", file=sys.stderr)
    return code


def run_synth(args: argparse.Namespace) -> int:
    """Run `wavlm synth` from parsed arguments: 0 done, 1 a tool or a source failed, 2 bad arguments."""
    from .voices import SynthError

    log = None if args.quiet else (lambda text: print(text, file=sys.stderr))
    if args.kind == "real":
        return _run_real(args, log)
    if args.names:
        return _fail(f"unexpected argument(s) {args.names} after {args.kind!r}", 2)
    if not args.output:
        return _fail("-o/--output DIR is required", 2)
    options = {}
    for kind, flags in _KIND_FLAGS.items():
        for flag in flags:
            value = getattr(args, flag)
            if value is None:
                continue
            if kind != args.kind:
                return _fail(f"--{flag.replace('_', '-')} applies to `wavlm synth {kind}` only", 2)
            options[flag] = tuple(w.strip() for w in value.split(",") if w.strip()) if flag == "words" else value
    from .corpora import make_corpus

    try:
        make_corpus(args.kind, args.output, args.num_utterances, args.seed, noise_prob=args.noise_prob,
                    snr_db=args.snr, reverb_prob=args.reverb_prob,
                    engines=[e.strip() for e in args.engines.split(",") if e.strip()], workers=args.workers,
                    lhotse=args.lhotse, overwrite=args.overwrite, log=log, **options)
    except (ValueError, FileExistsError, NotADirectoryError) as e:
        return _fail(str(e), 2)
    except (SynthError, ImportError) as e:
        return _fail(str(e), 1)
    return 0


def _run_real(args: argparse.Namespace, log) -> int:
    from .real import REAL_SOURCES, FetchError, fetch_real

    names = list(REAL_SOURCES) if args.names in ([], ["all"]) else args.names
    unknown = [n for n in names if n not in REAL_SOURCES]
    if unknown:
        return _fail(f"unknown real recordings {unknown}; choose from {', '.join(REAL_SOURCES)} or all", 2)
    failed = 0
    for name in names:
        try:
            print(fetch_real(name, cache=args.cache, refresh=args.refresh))
        except FetchError as e:
            failed += 1
            _fail(str(e), 1)
    if log is not None and failed:
        log(f"{failed} of {len(names)} source(s) could not be fetched")
    return 1 if failed else 0
