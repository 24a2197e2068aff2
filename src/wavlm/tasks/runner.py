"""The machinery behind every `wavlm` subcommand: model loading with a check of the head, length-sorted batches,
bad inputs reported and skipped, atomic and resumable outputs, and sharding over the ranks of a torchrun job."""
from __future__ import annotations

import datetime
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import numpy as np
import torch

from wavlm.tasks.io import (DistInfo, Input, atomic_write, batches_by_length, dist_info, jsonl_line, output_path_for,
                            read_jsonl, shard)

__all__ = ["UsageError", "InputError", "Options", "Runtime", "Task", "Output", "resolve_output", "execute", "gather",
           "log", "Progress"]


class UsageError(Exception):
    """A wrong command line, option combination or model for the subcommand: exit code 2."""


class InputError(Exception):
    """One input cannot be processed (unreadable, empty, too short): it is reported and skipped (exit code 1)."""


_BAR: Any = None  # the active tqdm bar: messages are written above it


def log(message: str) -> None:
    """A message on stderr (results go to stdout or files)."""
    if _BAR is not None:
        _BAR.write(f"wavlm: {message}", file=sys.stderr)
    else:
        print(f"wavlm: {message}", file=sys.stderr, flush=True)


@dataclass
class Options:
    """Flags shared by every subcommand that runs a model."""
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


# ---------------------------------------------------------------------------------------------------------------
# model and feature extractor

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_NEEDS = {  # model class -> what such a checkpoint is, for the error message
    "WavLMForCTC": "a checkpoint fine-tuned for CTC speech recognition, with its vocab.json",
    "WavLMForSequenceClassification": "an utterance classification checkpoint",
    "WavLMForAudioFrameClassification": "a frame classification checkpoint, e.g. speaker diarization",
    "WavLMForXVector": "a speaker-verification checkpoint",
}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local rank> when CUDA is available, else cpu; anything else as torch spells it."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"--device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise UsageError(f"--dtype must be one of {sorted(_DTYPES)}, got {name!r}") from None


def checkpoint_architecture(model: str) -> str | None:
    """The class named in config.json's `architectures` (None for original .pt files or when absent)."""
    from wavlm.config import WavLMConfig

    if Path(model).expanduser().is_file():
        return None
    try:
        config = WavLMConfig.from_pretrained(model)
    except Exception as e:  # noqa: BLE001 - any failure to read the model is a usage error with its reason
        raise UsageError(f"cannot read the model {model!r}: {e}") from None
    return (config.architectures or [None])[0]


def load_model(model: str, class_name: str, command: str, device: torch.device, dtype: torch.dtype) -> Any:
    """Load `model` as `class_name`; a checkpoint without that head is refused with the class it needs."""
    import wavlm

    arch = checkpoint_architecture(model)
    need = f"`wavlm {command}` needs a {class_name} model ({_NEEDS.get(class_name, 'any WavLM checkpoint')})"
    if class_name != "WavLMModel" and arch is not None and arch != class_name:
        raise UsageError(f"{need}; {model} holds a {arch}")
    cls = getattr(wavlm, class_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = cls.from_pretrained(model, torch_dtype=dtype, device=device)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot load {model!r} as {class_name}: {e}") from None
    if class_name != "WavLMModel" and any("newly initialised" in str(w.message) for w in caught):
        raise UsageError(f"{need}; {model} has no {class_name} head weights"
                         + (f" (it holds a {arch})" if arch else " (it is a pre-trained backbone)"))
    for w in caught:  # a head checkpoint used for its backbone only is expected; other warnings are shown
        if "does not use these weights" not in str(w.message):
            log(f"warning: {w.message}")
    # padded items in a batch give the same result as alone: GroupNorm and x-vector pooling over real frames
    loaded.config.mask_padding_in_group_norm = True
    loaded.config.xvector_exact_pooling = True
    return loaded.eval()


def load_feature_extractor(model: str, config: Any) -> Any:
    """The model's saved feature extractor, or the default that matches its architecture."""
    from wavlm.features import WavLMFeatureExtractor

    if not Path(model).expanduser().is_file():
        from wavlm.auto import AutoFeatureExtractor

        try:
            return AutoFeatureExtractor.from_pretrained(model)
        except OSError:
            pass
    normalize = getattr(config, "normalize", config.feat_extract_norm == "layer")
    return WavLMFeatureExtractor(do_normalize=bool(normalize), return_attention_mask=True)


@dataclass
class Runtime:
    """A loaded model with its feature extractor, device and dtype."""
    model: Any
    extractor: Any
    device: torch.device
    dtype: torch.dtype
    name: str
    forward: Callable[..., Any] | None = None  # the model, or its compiled form

    def __post_init__(self) -> None:
        if self.forward is None:
            self.forward = self.model

    @classmethod
    def load(cls, opts: Options, class_name: str, command: str) -> "Runtime":
        """Load the model; bfloat16 keeps LayerNorm/GroupNorm in fp32 (wavlm.inference.to_bfloat16), --int8
        quantises the transformer's linear layers (CPU), --compile wraps the forward in torch.compile."""
        from wavlm import inference

        device = resolve_device(opts.device, dist_info().local_rank)
        dtype = resolve_dtype(opts.dtype)
        if opts.int8 and device.type != "cpu":
            raise UsageError("--int8 (dynamic quantisation) runs on the CPU only: add --device cpu")
        model = load_model(opts.model, class_name, command, device, torch.float32 if opts.int8 else dtype)
        if dtype == torch.bfloat16 and not opts.int8:
            model = inference.to_bfloat16(model.float())
        if opts.int8:
            model, dtype = inference.quantize_int8(model), torch.float32
        forward = inference.compile_model(model, dynamic=True) if opts.compile else model
        return cls(model, load_feature_extractor(opts.model, model.config), device, dtype, opts.model, forward)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def sampling_rate(self) -> int:
        return int(self.extractor.sampling_rate)

    @property
    def frame_shift_s(self) -> float:
        return self.config.frame_stride / self.sampling_rate

    def inputs(self, wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, right-padded input_values (B, S) in the model dtype and attention_mask (B, S) int."""
        feats = self.extractor(list(wavs), sampling_rate=self.sampling_rate, padding=True,
                               return_attention_mask=True, return_tensors="pt")
        values = feats["input_values"].to(self.device, self.dtype)
        return values, feats["attention_mask"].to(self.device)

    def frame_lengths(self, attention_mask: torch.Tensor) -> list[int]:
        return self.model._get_feat_extract_output_lengths(attention_mask.sum(-1)).tolist()


def read_audio(item: Input, sampling_rate: int, min_samples: int) -> np.ndarray:
    """Mono float32 audio at sampling_rate; InputError with the reason when it cannot be used."""
    from wavlm.audio import load_audio

    try:
        wav, _ = load_audio(item.path, sampling_rate=sampling_rate)
    except (OSError, ValueError, RuntimeError) as e:
        raise InputError(str(e)) from None
    if not np.isfinite(wav).all():
        raise InputError("the audio contains NaN or infinite samples")
    if wav.shape[0] < min_samples:
        raise InputError(f"too short: {wav.shape[0]} samples ({1000 * wav.shape[0] / sampling_rate:.0f} ms); "
                         f"this model needs at least {min_samples} ({1000 * min_samples / sampling_rate:.0f} ms)")
    return wav


def _estimated_length(path: Path) -> int:
    """Samples at 16 kHz from the file header (no decoding); 0 when the header cannot be read."""
    try:
        import soundfile

        info = soundfile.info(str(path))
        return int(info.frames * 16000 / info.samplerate)
    except Exception:  # noqa: BLE001 - the real read reports the problem
        try:
            return os.path.getsize(path) // 2
        except OSError:
            return 0


# ---------------------------------------------------------------------------------------------------------------
# tasks and outputs

class Task:
    """One subcommand's model work and its output formats.

    run_batch maps a batch of waveforms to one result per waveform; to_record/from_record turn a result into
    JSON and back (JSONL outputs, rank merges, --resume). item_formats are written one file per input,
    run_formats one file for the whole run."""
    name = "task"
    per_file = False  # True: batches of one input (the task batches internally, e.g. windows)
    item_formats: tuple[str, ...] = ()
    run_formats: tuple[str, ...] = ("jsonl",)
    default_item_format = "json"
    default_run_format = "jsonl"

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def min_samples(self) -> int:
        return int(self.rt.config.receptive_field)

    def run_batch(self, wavs: list[np.ndarray]) -> list[Any]:
        raise NotImplementedError

    def to_record(self, result: Any) -> dict[str, Any]:
        return dict(result)

    def from_record(self, record: dict[str, Any]) -> Any:
        return {k: v for k, v in record.items() if k not in ("id", "path")}

    def write_item(self, file: IO[bytes], item: Input, result: Any, fmt: str) -> None:
        raise NotImplementedError

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "jsonl":
            return "".join(jsonl_line({"id": i.id, "path": str(i.path), **self.to_record(r)}) for i, r in pairs)
        raise UsageError(f"`wavlm {self.name}` cannot write {fmt!r} for a whole run")

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        """Results already in a run output, by id (for --resume)."""
        if fmt == "jsonl":
            return {r["id"]: self.from_record(r) for r in read_jsonl(path)}
        raise UsageError(f"--resume cannot read back a {fmt!r} file; write to a folder or a .jsonl file")


@dataclass
class Output:
    """Where results go: 'stdout', one 'file' for the run, one 'item' file for a single input, or a 'dir'."""
    kind: str
    fmt: str
    path: Path | None = None

    def item_path(self, item: Input) -> Path:
        return self.path if self.kind == "item" else output_path_for(item, self.path, "." + self.fmt)


def resolve_output(task: type[Task], output: str | None, fmt: str | None, n_inputs: int) -> Output:
    """-o and --format -> an Output. A file name with a run format's extension is one file for the run; with an
    item format's extension and one input, that input's file; anything else is a folder."""
    if output is None or output == "-":
        fmt = fmt or task.default_run_format
        if fmt not in task.run_formats:
            raise UsageError(f"--format {fmt} writes one file per input: give a folder with -o "
                             f"(on stdout: {', '.join(task.run_formats)})")
        return Output("stdout", fmt)
    path = Path(output)
    ext = path.suffix.lower().lstrip(".")
    if not path.is_dir() and ext in task.run_formats + task.item_formats:
        if fmt is not None and fmt != ext:
            raise UsageError(f"--format {fmt} contradicts the extension of -o {output}")
        if ext in task.run_formats:
            return Output("file", ext, path)
        if n_inputs != 1:
            raise UsageError(f"-o {output} is a single .{ext} file but there are {n_inputs} inputs; give a folder "
                             f"for one .{ext} per input, or one of {', '.join(task.run_formats)} for the run")
        return Output("item", ext, path)
    fmt = fmt or task.default_item_format
    if fmt not in task.item_formats:
        raise UsageError(f"--format {fmt} is written as one file for the run: give -o NAME.{fmt} "
                         f"(per-input formats: {', '.join(task.item_formats)})")
    return Output("dir", fmt, path)


class Progress:
    """A tqdm bar on stderr, or plain progress lines when tqdm is not installed."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.total, self.desc, self.done, self.bar = total, desc, 0, None
        self.enabled = enabled and total > 0
        self._last = 0.0
        if self.enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, dynamic_ncols=True)
                global _BAR
                _BAR = self.bar
            except ImportError:
                pass

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (time.monotonic() - self._last > 2.0 or self.done == self.total):
            self._last = time.monotonic()
            print(f"{self.desc}: {self.done}/{self.total} files", file=sys.stderr, flush=True)

    def close(self) -> None:
        global _BAR
        if self.bar is not None:
            self.bar.close()
            _BAR = None


# ---------------------------------------------------------------------------------------------------------------
# the run

@dataclass
class RunResult:
    """What one process computed: results by id (merged over ranks on rank 0 when gathered), failures."""
    results: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    is_main: bool = True


def process(task: Task, items: list[Input], opts: Options, dist: DistInfo,
            on_result: Callable[[Input, Any], None]) -> int:
    """Run task over items in length-sorted batches; returns the number of inputs that failed."""
    sr, min_samples = task.rt.sampling_rate, task.min_samples()
    lengths = [_estimated_length(i.path) for i in items]
    budget = None if opts.max_batch_seconds is None else max(1, int(opts.max_batch_seconds * sr))
    batches = batches_by_length(items, lengths, 1 if task.per_file else opts.batch_size, budget)
    desc = f"{task.name}" + (f" [rank {dist.rank}]" if dist.world_size > 1 else "")
    progress = Progress(len(items), desc, opts.progress)
    failed = 0

    def fail(item: Input, reason: str) -> None:
        nonlocal failed
        failed += 1
        reason = reason[len(str(item.path)) + 2:] if reason.startswith(f"{item.path}: ") else reason
        log(f"skipped {item.path}: {reason}")

    try:
        for batch in batches:
            loaded = []
            for index in batch:
                try:
                    loaded.append((items[index], read_audio(items[index], sr, min_samples)))
                except InputError as e:
                    fail(items[index], str(e))
            groups = [loaded] if loaded else []
            while groups:
                group = groups.pop(0)
                try:
                    with torch.inference_mode():
                        outputs = task.run_batch([w for _, w in group])
                except (InputError, ValueError, RuntimeError) as e:
                    if len(group) > 1:  # find the input at fault: retry one by one
                        groups = [[g] for g in group] + groups
                        continue
                    fail(group[0][0], f"{type(e).__name__}: {e}")
                    continue
                for (item, _), result in zip(group, outputs):
                    on_result(item, result)
            progress.update(len(batch))
    finally:
        progress.close()
    return failed


def _process_group(dist: DistInfo) -> bool:
    """Join torchrun's gloo process group when there is one to join; False without a rendezvous."""
    if dist.world_size == 1 or not os.environ.get("MASTER_ADDR"):
        return False
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("gloo", rank=dist.rank, world_size=dist.world_size,
                                 timeout=datetime.timedelta(hours=24))
    return True


def _finish_process_group() -> None:
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.destroy_process_group()


def _part_path(anchor: Path, rank: int, world: int) -> Path:
    run = os.environ.get("WAVLM_RUN_ID", "run")
    return anchor.parent / f".{anchor.name}.{run}.part{rank:05d}-of-{world:05d}.jsonl"


def _merge_by_files(task: Task, mine: dict[str, Any], failed: int, anchor: Path, dist: DistInfo,
                    started: float) -> tuple[dict[str, Any], int] | None:
    """Without a process group: each rank writes a part file next to the output; rank 0 waits for all of them
    (written after this run started), merges and removes them."""
    part = _part_path(anchor, dist.rank, dist.world_size)
    lines = [jsonl_line({"id": k, **task.to_record(v)}) for k, v in mine.items()]
    atomic_write(part, "".join(lines) + jsonl_line({"__failed__": failed}))
    if dist.rank != 0:
        return None
    parts = [_part_path(anchor, r, dist.world_size) for r in range(dist.world_size)]
    timeout = float(os.environ.get("WAVLM_MERGE_TIMEOUT", 24 * 3600))
    while not all(p.is_file() and p.stat().st_mtime >= started - 1 for p in parts):
        if time.time() - started > timeout:
            raise RuntimeError(f"rank 0 gave up waiting for {[str(p) for p in parts if not p.is_file()]}")
        time.sleep(0.5)
    merged: dict[str, Any] = {}
    total_failed = 0
    for p in parts:
        for record in read_jsonl(p):
            if "__failed__" in record:
                total_failed += int(record["__failed__"])
            else:
                merged[record["id"]] = task.from_record(record)
        p.unlink()
    return merged, total_failed


def gather(task: Task, inputs: list[Input], opts: Options, done: dict[str, Any] | None = None,
           merge_anchor: Path | None = None,
           on_result: Callable[[Input, Any], None] | None = None) -> RunResult:
    """Process this rank's share of `inputs` (those not in `done`) and, under torchrun, collect every rank's results
    on rank 0 (through the gloo process group, or through part files next to merge_anchor without one).
    Returns the results of all inputs (rank 0) or of this rank's share (other ranks, is_main=False)."""
    dist = dist_info()
    started = time.time()
    done = done or {}
    todo = [i for i in inputs if i.id not in done]
    mine = shard(todo, dist.rank, dist.world_size, [_estimated_length(i.path) for i in todo])
    results: dict[str, Any] = {}

    def keep(item: Input, result: Any) -> None:
        results[item.id] = result
        if on_result is not None:
            on_result(item, result)

    failed = process(task, mine, opts, dist, keep)
    if dist.world_size == 1 or merge_anchor is None:
        return RunResult({**done, **results}, failed, dist.rank == 0 or dist.world_size == 1)
    if _process_group(dist):
        import torch.distributed as tdist

        records = [{"id": k, **task.to_record(v)} for k, v in results.items()]
        gathered: list[Any] | None = [None] * dist.world_size if dist.rank == 0 else None
        tdist.gather_object((records, failed), gathered, dst=0)
        if dist.rank != 0:
            return RunResult(results, failed, False)
        merged, total_failed = dict(done), 0
        for recs, n in gathered:
            total_failed += n
            merged.update({r["id"]: task.from_record(r) for r in recs})
        return RunResult(merged, total_failed, True)
    outcome = _merge_by_files(task, results, failed, merge_anchor, dist, started)
    if outcome is None:
        return RunResult(results, failed, False)
    merged, total_failed = outcome
    return RunResult({**done, **merged}, total_failed, True)


def execute(task: Task, inputs: list[Input], opts: Options, output: Output) -> tuple[int, RunResult]:
    """Run a task and write its outputs; returns (exit code, what was computed)."""
    dist = dist_info()
    if output.kind == "stdout" and dist.world_size > 1:
        raise UsageError("under torchrun, give -o (a file or a folder): several ranks cannot share stdout")
    try:
        if output.kind in ("dir", "item"):
            done_ids = {i.id: None for i in inputs if opts.resume and output.item_path(i).is_file()}
            if done_ids and dist.rank == 0:
                log(f"--resume: {len(done_ids)} of {len(inputs)} inputs already have outputs")

            def write(item: Input, result: Any) -> None:
                atomic_write(output.item_path(item), lambda f: task.write_item(f, item, result, output.fmt))

            run = gather(task, inputs, opts, done=done_ids, merge_anchor=None, on_result=write)
            if dist.world_size > 1 and _process_group(dist):
                import torch.distributed as tdist

                counts: list[Any] = [None] * dist.world_size
                tdist.all_gather_object(counts, run.failed)
                run.failed = sum(counts)
            return (1 if run.failed else 0), run
        done: dict[str, Any] = {}
        if output.kind == "file" and opts.resume and output.path.is_file():
            done = task.load_run(output.path, output.fmt)
            known = {i.id for i in inputs}
            done = {k: v for k, v in done.items() if k in known}
            if dist.rank == 0:
                log(f"--resume: {len(done)} of {len(inputs)} inputs already in {output.path}")
        anchor = output.path if output.kind == "file" else None
        run = gather(task, inputs, opts, done=done, merge_anchor=anchor)
        if run.is_main:
            pairs = [(i, run.results[i.id]) for i in inputs if i.id in run.results]
            text = task.dumps(pairs, output.fmt)
            if output.kind == "stdout":
                if isinstance(text, bytes):
                    sys.stdout.buffer.write(text)
                else:
                    sys.stdout.write(text)
                sys.stdout.flush()
            else:
                atomic_write(output.path, text)
        return (1 if run.failed else 0), run
    finally:
        _finish_process_group()
