"""`wavlm diarize`: who spoke when, as RTTM. A frame-classification model gives per-speaker activity; an x-vector
or base model gives sliding-window embeddings that are clustered."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Sequence

from wavlm.cli import executor
from wavlm.cli.options import add_inputs, check_number, positive_int
from wavlm.cli.report import UsageError, log
from wavlm.tasks.manifest import Input

HELP = "who spoke when, as RTTM"
DESCRIPTION = ("With a frame-classification model: per-speaker activity -> median filter -> onset/offset "
               "thresholds -> minimum durations. With an x-vector or base model: sliding-window embeddings "
               "clustered (agglomerative or spectral). Formats: rttm per input, rttm/jsonl for the run.")
RUNS_MODEL = True
MODES = {"WavLMForAudioFrameClassification": "frames", "WavLMForXVector": "xvector"}  # other classes: "base"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
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
    g.add_argument("--num-speakers", type=positive_int, default=None, help="default: estimated")
    g.add_argument("--max-speakers", type=positive_int, default=8, help="upper bound of the estimate (spectral)")
    g.add_argument("--cluster-threshold", type=float, default=0.5,
                   help="agglomerative: merge while the cosine distance is below this (default 0.5)")
    g.add_argument("--layer", type=int, default=None, help="base model: hidden layer to embed (default last)")
    g.add_argument("--silence-db", type=float, default=40.0,
                   help="windows this many dB below the loudest are silence (default 40)")


@dataclass(frozen=True)
class DiarizeOptions:
    """Frame mode: onset/offset thresholds, median filter, minimum durations. Window mode: window and step
    (seconds), clustering, speaker count, base-model layer, silence level. --plot: a PNG timeline."""
    onset: float = 0.5
    offset: float | None = None
    median_width: int = 11
    min_duration_on: float = 0.0
    min_duration_off: float = 0.0
    window: float = 1.5
    step: float = 0.75
    cluster: str = "spectral"
    num_speakers: int | None = None
    max_speakers: int = 8
    cluster_threshold: float = 0.5
    layer: int | None = None
    silence_db: float = 40.0
    plot: str | None = None
    batch_size: int = 8  # windows per forward pass

    def __post_init__(self) -> None:
        if self.median_width < 1 or self.median_width % 2 == 0:
            raise UsageError(f"--median-width must be a positive odd number of frames, got {self.median_width}")
        if self.cluster not in ("agglomerative", "spectral"):
            raise UsageError(f"--cluster must be 'agglomerative' or 'spectral', got {self.cluster!r}")
        check_number("--onset", self.onset, 0, 1, allow_none=False)
        check_number("--offset", self.offset, 0, 1)
        if self.offset is not None and self.offset > self.onset:
            raise UsageError(f"--offset ({self.offset:g}) must not exceed --onset ({self.onset:g}): a track turns "
                             "on above the onset and off below the offset")
        check_number("--min-duration-on", self.min_duration_on, 0, allow_none=False)
        check_number("--min-duration-off", self.min_duration_off, 0, allow_none=False)
        check_number("--window", self.window, 0, low_open=True, allow_none=False)
        check_number("--step", self.step, 0, low_open=True, allow_none=False)
        if self.step > self.window:
            raise UsageError(f"--step ({self.step:g} s) must not exceed --window ({self.window:g} s), or audio "
                             "between windows would be skipped")
        check_number("--cluster-threshold", self.cluster_threshold, 0, 2, allow_none=False)
        check_number("--silence-db", self.silence_db, 0, allow_none=False)
        if self.num_speakers is not None and self.num_speakers < 1 or self.max_speakers < 1:
            raise UsageError("--num-speakers and --max-speakers must be >= 1")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DiarizeOptions":
        return cls(args.onset, args.offset, args.median_width, args.min_duration_on, args.min_duration_off,
                   args.window, args.step, args.cluster, args.num_speakers, args.max_speakers,
                   args.cluster_threshold, args.layer, args.silence_db, args.plot, args.batch_size)


def run(args: argparse.Namespace) -> int:
    return executor.run(DiarizeTask(DiarizeOptions.from_args(args)), args)


def _text(s: str) -> bytes:
    return s.encode("utf-8")


class DiarizeTask(executor.Task):
    """Speaker diarization of one recording at a time.

    Frame mode (WavLMForAudioFrameClassification): per-speaker sigmoid activity -> median filter -> onset/offset
    hysteresis -> minimum durations. Window mode (x-vector or base model): embeddings of sliding windows (windows
    much quieter than the loudest one are left out as silence) -> agglomerative or spectral clustering. The
    summary step draws the --plot timelines."""
    name = "diarize"
    per_file = True
    item_formats = ("rttm",)
    run_formats = ("rttm", "jsonl")
    default_item_format = "rttm"
    default_run_format = "rttm"

    def __init__(self, options: DiarizeOptions = DiarizeOptions()) -> None:
        super().__init__(options)
        if options.plot:  # fail before the model runs
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise UsageError("--plot needs matplotlib: pip install 'wavlm[plot]' (or pip install matplotlib)") \
                    from None

    def model_class_for(self, architecture: str | None) -> str:
        return architecture if architecture in MODES else "WavLMModel"

    def check(self, inputs: list[Input], output: Any) -> None:
        super().check(inputs, output)
        if self.options.plot:
            from wavlm.cli.io import check_writable

            plot = Path(self.options.plot)
            single = plot.suffix.lower() == ".png"
            if single and len(inputs) != 1:
                raise UsageError(f"--plot {plot} is one .png and there are {len(inputs)} inputs: give a folder "
                                 "for one timeline per input")
            check_writable(plot, folder=not single, what="--plot")

    def run_options(self) -> dict[str, Any]:
        options = super().run_options()
        return {k: v for k, v in options.items() if k not in ("plot", "batch_size")}

    def run_key(self, item: Input) -> str:
        return self._uri(item)

    def bind(self, runtime: Any) -> None:
        super().bind(runtime)
        self.mode = MODES.get(type(runtime.model).__name__, "base")
        n = runtime.config.num_hidden_layers
        layer = self.options.layer
        if layer is not None and self.mode != "base":
            raise UsageError(f"--layer chooses the hidden layer of a base model; {runtime.name} is a "
                             f"{type(runtime.model).__name__}, whose {self.mode} output is used")
        if layer is not None and not -(n + 1) <= layer <= n:
            raise UsageError(f"--layer {layer}: this model has layers 0..{n} (0 = encoder input)")
        self.layer = n if layer is None else layer % (n + 1)
        if self.mode != "frames":
            sr, need = runtime.sampling_rate, self.min_samples()
            if round(self.options.window * sr) < need:
                raise UsageError(f"--window {self.options.window:g} s is shorter than this model's minimum input "
                                 f"({need} samples, {1000 * need / sr:.0f} ms)")
            if round(self.options.step * sr) < 1:
                raise UsageError(f"--step {self.options.step:g} s is less than one sample at {sr} Hz")

    def min_samples(self) -> int:
        if self.mode == "xvector":
            from wavlm.heads import xvector_min_samples

            return xvector_min_samples(self.rt.config)
        return int(self.rt.config.receptive_field)

    def _speaker(self, index: int) -> str:
        label = self.rt.config.id2label.get(index, "")
        return label if label and not label.startswith("LABEL_") and not any(c.isspace() for c in label) \
            else f"spk{index:02d}"

    def run_batch(self, wavs: list[Any]) -> list[list[tuple[float, float, str]]]:
        return [self._frames(w) if self.mode == "frames" else self._windows(w) for w in wavs]

    def _frames(self, wav: Any) -> list[tuple[float, float, str]]:
        from wavlm.tasks.segmentation import binarize, median_filter

        opts = self.options
        values, mask = self.rt.inputs([wav])
        probs = self.rt.forward(values, attention_mask=mask).logits[0].float().sigmoid().cpu().numpy()
        probs = median_filter(probs, opts.median_width)
        tracks = binarize(probs, opts.onset, opts.offset, opts.min_duration_on, opts.min_duration_off,
                          self.rt.frame_shift_s)
        turns = [(round(s, 3), round(e, 3), self._speaker(k)) for k, segs in enumerate(tracks) for s, e in segs]
        return sorted(turns)

    def _embed(self, crops: list[Any]) -> Any:
        values, mask = self.rt.inputs(crops)
        if self.mode == "xvector":
            return self.rt.forward(values, attention_mask=mask).embeddings.float().cpu().numpy()
        hs = self.rt.forward(values, attention_mask=mask, output_hidden_states=True).hidden_states[self.layer].float()
        valid = self.rt.model._get_feature_vector_attention_mask(hs.shape[1], mask)[..., None].to(hs.dtype)
        return ((hs * valid).sum(1) / valid.sum(1)).cpu().numpy()

    def _windows(self, wav: Any) -> list[tuple[float, float, str]]:
        import numpy as np

        from wavlm.tasks.cluster import agglomerative_cluster, sliding_windows, spectral_cluster, windows_to_segments

        opts, sr = self.options, self.rt.sampling_rate
        windows = sliding_windows(len(wav), sr, opts.window, opts.step)
        rms = np.array([np.sqrt(np.mean(wav[s:e].astype(np.float64) ** 2)) for s, e in windows])
        speech = rms > rms.max() * 10 ** (-opts.silence_db / 20) if rms.max() > 0 else np.zeros(len(rms), bool)
        index = np.flatnonzero(speech)
        labels = np.full(len(windows), -1, dtype=np.int64)
        if index.size:
            crops = [wav[windows[i][0]:windows[i][1]] for i in index]
            step = opts.batch_size
            emb = np.concatenate([self._embed(crops[k:k + step]) for k in range(0, len(crops), step)])
            k = None if opts.num_speakers is None else min(opts.num_speakers, len(index))
            if opts.cluster == "agglomerative":
                found = agglomerative_cluster(emb, k, None if k is not None else opts.cluster_threshold) \
                    if len(index) > 1 else np.zeros(1, np.int64)
            else:
                found = spectral_cluster(emb, k, max_clusters=opts.max_speakers)
            labels[index] = found
        return [(round(s, 3), round(e, 3), f"spk{l:02d}") for s, e, l in windows_to_segments(windows, labels, sr)]

    def to_record(self, result: list[tuple[float, float, str]]) -> dict[str, Any]:
        return {"turns": [list(t) for t in result]}

    def from_record(self, record: dict[str, Any]) -> list[tuple[float, float, str]]:
        return [(float(s), float(e), str(spk)) for s, e, spk in record["turns"]]

    @staticmethod
    def _uri(item: Input) -> str:
        return "".join("_" if c.isspace() else c for c in item.id)

    def _rttm(self, pairs: list[tuple[Input, Any]]) -> str:
        from wavlm.tasks.rttm import Turn, format_rttm

        return format_rttm([Turn(s, e, spk, uri=self._uri(i)) for i, turns in pairs for s, e, spk in turns])

    def write_item(self, file: IO[bytes], item: Input, result: Any, fmt: str) -> None:
        file.write(_text(self._rttm([(item, result)])))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        return self._rttm(pairs) if fmt == "rttm" else super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "rttm":
            from wavlm.tasks.rttm import read_rttm

            out: dict[str, Any] = {}
            for t in read_rttm(path):
                out.setdefault(t.uri, []).append((t.start, t.end, t.speaker))
            return out
        return super().load_run(path, fmt)

    def summarize(self, run: executor.RunResult, inputs: list[Input]) -> None:
        """--plot: a timeline per recording this rank holds the turns of."""
        if not self.options.plot:
            return None
        plot = Path(self.options.plot)
        single = plot.suffix.lower() == ".png"
        if single and len(inputs) != 1:
            raise UsageError("--plot NAME.png takes one input; give a folder for several")
        from wavlm.cli.io import item_names

        names = item_names(inputs)
        for item in inputs:
            turns = run.results.get(item.id)
            if turns is None:
                continue
            duration = run.headers[item.id].seconds
            if duration is None:
                from wavlm.audio import load_audio

                duration = len(load_audio(item.path)[0]) / 16000
            parts = names[item.id].split("/")
            target = plot if single else plot.joinpath(*parts[:-1], parts[-1] + ".png")
            try:
                plot_turns(turns, duration, target, f"{item.id} ({self.mode} diarization)")
            except OSError as e:  # the RTTM is written: a plot that cannot be is reported, not fatal
                log(f"cannot write the plot {target}: {e}")
                run.failed += 1
        return None


def plot_turns(turns: Sequence[tuple[float, float, str]], duration: float, path: Path, title: str) -> None:
    """A PNG timeline: one row per speaker, a bar per turn."""
    from io import BytesIO

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'wavlm[plot]' (or pip install matplotlib)") from None
    from wavlm.files import atomic_write

    speakers = sorted({spk for _, _, spk in turns})
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len(speakers))))
    colours = plt.get_cmap("tab10")
    for row, spk in enumerate(speakers):
        bars = [(s, e - s) for s, e, who in turns if who == spk]
        ax.broken_barh(bars, (row - 0.4, 0.8), color=colours(row % 10))
    ax.set_yticks(range(len(speakers)), speakers)
    ax.set_xlim(0, max(duration, max((e for _, e, _ in turns), default=0.0)))
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    fig.tight_layout()
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
