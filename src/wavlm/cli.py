"""`wavlm` (and `python -m wavlm`): one command with a subcommand per job. Thin argparse adapters over wavlm.tasks;
torch is imported only once a subcommand runs, so `wavlm --help` is instant.

Exit codes: 0 all inputs processed, 1 some inputs failed (each reported on stderr and skipped), 2 usage error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

EPILOG = """inputs: audio files, folders (searched recursively for audio extensions) or JSONL manifests (one
{"audio": path, "id": optional} object per line). Output (-o): omitted = stdout; a file with a run format's
extension = one file for the run; anything else = a folder with one output per input (named by input id).
Under torchrun each rank takes a share of the inputs; a single output file is merged by rank 0.
exit codes: 0 ok, 1 some inputs failed (reported on stderr, others still written), 2 usage error."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common(model_help: str = "local directory, Hub repo id, or original microsoft .pt checkpoint") -> argparse.ArgumentParser:
    """Flags shared by every subcommand that runs a model (defined once, STYLE.md section 8)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model and run")
    g.add_argument("--model", "-m", required=True, help=model_help)
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    g.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="bfloat16 keeps the norms in float32 (default float32)")
    g.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the transformer (CPU)")
    g.add_argument("--compile", action="store_true", help="torch.compile the forward pass (pays off on long runs)")
    g.add_argument("--batch-size", type=_positive_int, default=8, help="inputs per forward pass (default 8)")
    g.add_argument("--max-batch-seconds", type=float, default=None,
                   help="also cap a batch at this much padded audio (seconds), for long recordings")
    g.add_argument("-o", "--output", default=None,
                   help="output file (one for the run) or folder (one per input); default stdout")
    g.add_argument("--resume", action="store_true", help="skip inputs whose outputs already exist")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _inputs_arg(p: argparse.ArgumentParser, nargs: str = "+") -> None:
    p.add_argument("inputs", nargs=nargs, metavar="INPUT", help="audio file, folder or .jsonl manifest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavlm", description="WavLM speech models on many files: embeddings, transcription, classification, "
        "speaker verification and diarization; checkpoint conversion and export.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()

    p = sub.add_parser("embed", parents=[common], help="hidden states of chosen layers, per frame or pooled",
                       description="Hidden states of chosen layers per frame (--pool none) or averaged per "
                       "utterance (--pool mean). Formats: npy/safetensors per input, jsonl/npz for the run.")
    _inputs_arg(p)
    p.add_argument("--layers", default="last",
                   help="'last' (default), 'all', comma-separated indices such as 6,12 (0 = encoder input), "
                        "or 'weighted' with --weights")
    p.add_argument("--weights", default=None, help="comma-separated weights of layers 0..L for --layers weighted")
    p.add_argument("--pool", choices=["mean", "none"], default="mean", help="mean over frames (default) or none")
    p.add_argument("--format", choices=["npy", "safetensors", "jsonl", "npz"], default=None)
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser("transcribe", parents=[common], help="speech to text with a CTC model",
                       description="Greedy or beam-search CTC decoding (optionally with a word n-gram LM in ARPA or "
                       "KenLM format) with word timestamps. Formats: txt, json, srt per input; txt, jsonl, srt "
                       "(one input) for the run.")
    _inputs_arg(p)
    p.add_argument("--decoder", choices=["greedy", "beam"], default=None,
                   help="greedy (default) or beam (default when --lm is given)")
    p.add_argument("--beam-width", type=_positive_int, default=16)
    p.add_argument("--lm", default=None, help="word n-gram LM: ARPA file, or a KenLM binary with `pip install kenlm`")
    p.add_argument("--alpha", type=float, default=0.5, help="LM weight (default 0.5)")
    p.add_argument("--beta", type=float, default=1.0, help="word insertion bonus (default 1.0)")
    p.add_argument("--format", choices=["txt", "json", "jsonl", "srt"], default=None)
    p.set_defaults(handler=cmd_transcribe)

    p = sub.add_parser("classify", parents=[common], help="utterance labels with probabilities",
                       description="Top-k labels of a sequence-classification model. Formats: json per input; "
                       "txt (id, then label:probability pairs, tab-separated) or jsonl for the run.")
    _inputs_arg(p)
    p.add_argument("--top-k", type=_positive_int, default=5)
    p.add_argument("--format", choices=["txt", "json", "jsonl"], default=None)
    p.set_defaults(handler=cmd_classify)

    p = sub.add_parser("verify", parents=[common], help="speaker verification with an x-vector model",
                       description="Cosine score of x-vector embeddings. Either two audio files, or --trials with "
                       "'enroll test [label]' lines (ids of the given inputs or paths relative to the list); "
                       "with labels, EER and minDCF are printed (stdout with -o, else stderr). Output lines: "
                       "enroll, test, score, decision (tab-separated).")
    _inputs_arg(p, "*")
    p.add_argument("--trials", default=None, help="trial list: 'enroll test [label]' per line")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="cosine score at or above which two recordings are the same speaker (default 0.5; "
                        "calibrate on labelled trials: the EER threshold is printed)")
    p.add_argument("--p-target", type=float, default=0.01, help="prior of a target trial for minDCF (default 0.01)")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("diarize", parents=[common], help="who spoke when, as RTTM",
                       description="With a frame-classification model: per-speaker activity -> median filter -> "
                       "onset/offset thresholds -> minimum durations. With an x-vector or base model: sliding-window "
                       "embeddings clustered (agglomerative or spectral). Formats: rttm per input, rttm/jsonl for "
                       "the run.")
    _inputs_arg(p)
    p.add_argument("--format", choices=["rttm", "jsonl"], default=None)
    p.add_argument("--plot", default=None, help="PNG timeline: a .png file (one input) or a folder")
    g = p.add_argument_group("frame-classification models")
    g.add_argument("--onset", type=float, default=0.5)
    g.add_argument("--offset", type=float, default=None, help="default: the onset")
    g.add_argument("--median-width", type=int, default=11, help="median filter width in frames (odd, default 11)")
    g.add_argument("--min-duration-on", type=float, default=0.0, help="drop turns shorter than this (s)")
    g.add_argument("--min-duration-off", type=float, default=0.0, help="fill gaps shorter than this (s)")
    g = p.add_argument_group("embedding models (x-vector or base)")
    g.add_argument("--window", type=float, default=1.5, help="window length in seconds (default 1.5)")
    g.add_argument("--step", type=float, default=0.75, help="window step in seconds (default 0.75)")
    g.add_argument("--cluster", choices=["spectral", "agglomerative"], default="spectral")
    g.add_argument("--num-speakers", type=_positive_int, default=None, help="default: estimated")
    g.add_argument("--max-speakers", type=_positive_int, default=8, help="upper bound of the estimate (spectral)")
    g.add_argument("--cluster-threshold", type=float, default=0.5,
                   help="agglomerative: merge while the cosine distance is below this (default 0.5)")
    g.add_argument("--layer", type=int, default=None, help="base model: hidden layer to embed (default last)")
    g.add_argument("--silence-db", type=float, default=40.0,
                   help="windows this many dB below the loudest are silence (default 40)")
    p.set_defaults(handler=cmd_diarize)

    p = sub.add_parser("convert", help="original microsoft checkpoint <-> transformers directory",
                       description="SOURCE.pt -> DEST directory (config.json, model.safetensors, "
                       "preprocessor_config.json), or a transformers directory -> DEST.pt (original layout; "
                       "backbone only).")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--to", choices=["hf", "original"], default=None, help="default: original when DEST ends in .pt")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.set_defaults(handler=cmd_convert)

    p = sub.add_parser("export", help="export a model to ONNX",
                       description="Export the model's forward pass (input_values, attention_mask) -> its first "
                       "output (last_hidden_state or logits) to ONNX, with dynamic batch and length.")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--onnx", action="store_true", help="export to ONNX (the only format; accepted for clarity)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 18)")
    p.add_argument("--no-attention-mask", action="store_true", help="export input_values as the only input")
    p.add_argument("--check", action="store_true", help="compare onnxruntime with torch on a random batch")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("info", help="configuration, parameter count, frame rate, receptive field",
                       description="Summary of a checkpoint (reads config only; no weights are loaded).")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(handler=cmd_info)
    return parser


def _version() -> str:
    from wavlm import __version__

    return __version__


# ---------------------------------------------------------------------------------------------------------------
# handlers: parse -> task -> runner

def _options(args: argparse.Namespace) -> Any:
    from wavlm.tasks.runner import Options

    return Options(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                   max_batch_seconds=args.max_batch_seconds, output=args.output,
                   format=getattr(args, "format", None), resume=args.resume, progress=not args.quiet,
                   compile=args.compile, int8=args.int8)


def _collect(paths: Sequence[str]) -> list[Any]:
    from wavlm.tasks.io import collect_inputs
    from wavlm.tasks.runner import UsageError

    try:
        inputs = collect_inputs(paths)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not inputs:
        raise UsageError(f"no audio files found in {', '.join(paths)}")
    return inputs


def _run(task_factory: Callable[[Any], Any], class_name: str, args: argparse.Namespace) -> int:
    from wavlm.tasks.runner import Runtime, execute, resolve_output

    opts = _options(args)
    inputs = _collect(args.inputs)
    runtime = Runtime.load(opts, class_name, args.command)
    task = task_factory(runtime)
    output = resolve_output(type(task), opts.output, opts.format, len(inputs))
    code, _ = execute(task, inputs, opts, output)
    return code


def cmd_embed(args: argparse.Namespace) -> int:
    from wavlm.tasks.pipelines import EmbedTask

    return _run(lambda rt: EmbedTask(rt, args.layers, args.weights, args.pool), "WavLMModel", args)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from wavlm.tasks.pipelines import TranscribeTask
    from wavlm.tasks.runner import UsageError

    decoder = args.decoder or ("beam" if args.lm else "greedy")
    if args.lm and decoder == "greedy":
        raise UsageError("--lm needs --decoder beam")
    lm = None
    if args.lm:
        from wavlm.tasks.ctc_decode import load_lm

        try:
            lm = load_lm(args.lm)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the LM {args.lm}: {e}") from None

    def factory(rt: Any) -> Any:
        from wavlm.auto import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(args.model)
        except (OSError, ValueError) as e:
            raise UsageError(f"`wavlm transcribe` needs the model's tokenizer (vocab.json): {e}") from None
        return TranscribeTask(rt, tokenizer, decoder, args.beam_width, lm, args.alpha, args.beta)

    return _run(factory, "WavLMForCTC", args)


def cmd_classify(args: argparse.Namespace) -> int:
    from wavlm.tasks.pipelines import ClassifyTask

    return _run(lambda rt: ClassifyTask(rt, args.top_k), "WavLMForSequenceClassification", args)


def cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wavlm.tasks.io import atomic_write, dist_info
    from wavlm.tasks.pipelines import XVectorTask, resolve_trial_inputs, score_trials
    from wavlm.tasks.runner import Runtime, UsageError, _finish_process_group, gather, log
    from wavlm.tasks.scoring import Trial, compute_eer, compute_min_dcf, read_trials

    opts = _options(args)
    if args.trials:
        try:
            trials = read_trials(args.trials)
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read the trial list: {e}") from None
        inputs = _collect(args.inputs) if args.inputs else []
        wanted, mapping = resolve_trial_inputs(trials, inputs, Path(args.trials).resolve().parent)
    else:
        if len(args.inputs) != 2:
            raise UsageError("give two audio files, or --trials LIST")
        wanted = _collect(args.inputs)
        if len(wanted) != 2:
            raise UsageError("give two audio files (not folders), or --trials LIST")
        trials = [Trial(args.inputs[0], args.inputs[1])]
        mapping = {args.inputs[0]: wanted[0].id, args.inputs[1]: wanted[1].id}
    if not trials:
        raise UsageError("the trial list is empty")
    if dist_info().world_size > 1 and not opts.output:
        raise UsageError("under torchrun, give -o for the scores")
    runtime = Runtime.load(opts, "WavLMForXVector", "verify")
    task = XVectorTask(runtime)
    anchor = Path(opts.output) if opts.output else None
    try:
        run = gather(task, wanted, opts, merge_anchor=anchor)
    finally:
        _finish_process_group()
    if not run.is_main:
        return 1 if run.failed else 0
    rows, skipped = score_trials(trials, mapping, run.results, args.threshold)
    if skipped:
        log(f"{skipped} trials left out: one of their recordings failed")
    text = "".join(f"{r['enroll']}\t{r['test']}\t{r['score']:.6f}\t{r['decision']}\n" for r in rows)
    metrics = None
    labelled = [r for r in rows if r["label"] is not None]
    if labelled:
        scores, labels = [r["score"] for r in labelled], [r["label"] for r in labelled]
        try:
            eer, eer_thr = compute_eer(scores, labels)
            dcf, dcf_thr = compute_min_dcf(scores, labels, p_target=args.p_target)
            metrics = (f"EER {100 * eer:.2f}% (threshold {eer_thr:.4f})  minDCF(p_target={args.p_target:g}) "
                       f"{dcf:.4f} (threshold {dcf_thr:.4f})  trials {len(labelled)}\n")
        except ValueError as e:
            log(f"no EER/minDCF: {e}")
    if opts.output:
        atomic_write(opts.output, text)
        if metrics:
            sys.stdout.write(metrics)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
        if metrics:
            sys.stderr.write(metrics)
    return 1 if run.failed else 0


def cmd_diarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wavlm.tasks.pipelines import DiarizeTask, plot_turns
    from wavlm.tasks.runner import Runtime, UsageError, checkpoint_architecture, execute, resolve_output

    opts = _options(args)
    inputs = _collect(args.inputs)
    if args.plot:  # fail before the model runs
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'wavlm[plot]' (or pip install matplotlib)") \
                from None
    arch = checkpoint_architecture(args.model)
    mode = {"WavLMForAudioFrameClassification": "frames", "WavLMForXVector": "xvector"}.get(arch or "", "base")
    class_name = {"frames": "WavLMForAudioFrameClassification", "xvector": "WavLMForXVector"}.get(mode, "WavLMModel")
    runtime = Runtime.load(opts, class_name, "diarize")
    task = DiarizeTask(runtime, mode, opts.batch_size, args.onset, args.offset, args.median_width,
                       args.min_duration_on, args.min_duration_off, args.window, args.step, args.cluster,
                       args.num_speakers, args.max_speakers, args.cluster_threshold, args.layer, args.silence_db)
    output = resolve_output(DiarizeTask, opts.output, opts.format, len(inputs))
    code, run = execute(task, inputs, opts, output)
    if args.plot:
        from wavlm.audio import load_audio

        plot = Path(args.plot)
        single = plot.suffix.lower() == ".png"
        if single and len(inputs) != 1:
            raise UsageError("--plot NAME.png takes one input; give a folder for several")
        for item in inputs:
            turns = run.results.get(item.id)
            if turns is None:
                continue
            import soundfile

            try:
                duration = soundfile.info(str(item.path)).duration
            except Exception:  # noqa: BLE001
                duration = len(load_audio(item.path)[0]) / 16000
            target = plot if single else plot / f"{item.id}.png"
            plot_turns(turns, duration, target, f"{item.id} ({mode} diarization)")
    return code


def cmd_convert(args: argparse.Namespace) -> int:
    from wavlm.tasks.pipelines import convert_checkpoint

    print(convert_checkpoint(args.source, args.destination, args.to, args.dtype))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import warnings

    import torch

    import wavlm
    from wavlm.tasks.runner import UsageError, checkpoint_architecture

    try:
        from wavlm.export import export_onnx, onnx_session, run_onnx
    except ImportError as e:
        raise UsageError(f"ONNX export is not available in this installation: {e}") from None
    class_name = checkpoint_architecture(args.model) or "WavLMModel"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = getattr(wavlm, class_name).from_pretrained(args.model, torch_dtype=torch.float32).eval()
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot load {args.model!r}: {e}") from None
    kwargs = {} if args.opset is None else {"opset": args.opset}
    try:
        path = export_onnx(model, args.output, with_attention_mask=not args.no_attention_mask, **kwargs)
    except ImportError as e:
        raise UsageError(f"{e} (or pip install 'wavlm[onnx]')") from None
    line = f"wrote {path} ({class_name}, inputs: input_values" + \
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


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from wavlm.tasks.pipelines import format_info, model_info

    info = model_info(args.model)
    sys.stdout.write(json.dumps(info, indent=1) + "\n" if args.json else format_info(info))
    return 0


# ---------------------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from wavlm.tasks.runner import UsageError

    try:
        return int(args.handler(args))
    except UsageError as e:
        print(f"wavlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wavlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
