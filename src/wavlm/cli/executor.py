"""The one executor of the commands that run a model over inputs (embed, transcribe, classify, verify, diarize).

A command is a Task: what it loads (its model class, a tokenizer), its options, a per-batch step and an optional
summary step, and its output formats. The executor does everything else, the same way for all of them: options and
outputs checked before the model loads, one load (cli.loader), each header read once, length-sorted padded batches,
a bad input reported and skipped, atomic and resumable outputs, the inputs shared over the ranks of a torchrun job
and merged on rank 0, a progress bar. Nothing is imported beyond the standard library until a command runs."""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from wavlm.cli import dist, io
from wavlm.cli.options import RunOptions
from wavlm.cli.report import InputError, Progress, UsageError, log
from wavlm.tasks.manifest import Input

__all__ = ["Task", "Summary", "RunResult", "run", "execute"]


@dataclass
class Summary:
    """What a summary step produces on the main rank: `content` goes where the run's output goes (stdout or the -o
    file); `notes` go to stdout when the content went to a file, else to stderr after it."""
    content: str | bytes
    notes: str | None = None


class Task:
    """One model command: the model it runs, its per-batch step and its outputs.

    Subclasses set `name`, `model_class` (or override `model_class_for` to choose from the checkpoint's
    architecture), `needs` ("tokenizer"), the formats, and implement `run_batch`. The life of a task: built from
    its options dataclass (nothing loaded yet) -> `collect(paths)` its inputs -> `bind(runtime)` once the model is
    loaded (checks that need the model go there) -> `run_batch` over batches -> `summarize` on the results.

    run_batch maps a batch of waveforms to one result per waveform; to_record/from_record turn a result into JSON
    and back (JSONL outputs, rank merges, --resume). item_formats are written one file per input, run_formats one
    file for the whole run. A task whose output is its summary (verify's scores) sets writes_per_input = False."""
    name = "task"
    model_class = "WavLMModel"
    needs: tuple[str, ...] = ()
    per_file = False  # True: batches of one input (the task batches internally, e.g. windows)
    writes_per_input = True
    item_formats: tuple[str, ...] = ()
    run_formats: tuple[str, ...] = ("jsonl",)
    default_item_format = "json"
    default_run_format = "jsonl"

    def __init__(self, options: Any = None) -> None:
        self.options = options
        self.rt: Any = None  # cli.loader.Runtime, once bound

    # -- before the model loads
    def model_class_for(self, architecture: str | None) -> str:
        """The class to load for a checkpoint whose config.json names `architecture` (None if unknown)."""
        return self.model_class

    def collect(self, paths: Sequence[str]) -> list[Input]:
        """The inputs to run on, from the command line's paths."""
        return io.collect(paths)

    # -- with the model
    def bind(self, runtime: Any) -> None:
        self.rt = runtime

    def min_samples(self) -> int:
        return int(self.rt.config.receptive_field)

    def run_batch(self, wavs: list[Any]) -> list[Any]:
        raise NotImplementedError

    def summarize(self, run: "RunResult", inputs: list[Input]) -> Summary | None:
        """After the run, on every rank with the results it holds (all of them on the main rank when they were
        gathered there): a summary to write, or side outputs (plots). None by default."""
        return None

    # -- results as records and files
    def to_record(self, result: Any) -> dict[str, Any]:
        return dict(result)

    def from_record(self, record: dict[str, Any]) -> Any:
        return {k: v for k, v in record.items() if k not in ("id", "path")}

    def write_item(self, file: IO[bytes], item: Input, result: Any, fmt: str) -> None:
        raise NotImplementedError

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "jsonl":
            return "".join(io.jsonl_line({"id": i.id, "path": str(i.path), **self.to_record(r)}) for i, r in pairs)
        raise UsageError(f"`wavlm {self.name}` cannot write {fmt!r} for a whole run")

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        """Results already in a run output, by id (for --resume)."""
        if fmt == "jsonl":
            return {r["id"]: self.from_record(r) for r in io.read_jsonl(path)}
        raise UsageError(f"--resume cannot read back a {fmt!r} file; write to a folder or a .jsonl file")


@dataclass
class RunResult:
    """What one process computed: results by id (merged over ranks on rank 0 when gathered), failures."""
    results: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    is_main: bool = True
    headers: dict[str, io.Header] = field(default_factory=dict)  # every input's header, by id


def run(task: Task, args: argparse.Namespace) -> int:
    """Run a model command from its parsed arguments: shared options, inputs and output checked, then one load,
    then the executor. Returns the exit code."""
    from wavlm.cli.loader import load

    opts = RunOptions.from_args(args)
    inputs = task.collect(args.inputs)
    output = io.resolve_output(task, opts.output, opts.format, len(inputs))
    task.bind(load(opts, task.name, task.model_class_for, tokenizer="tokenizer" in task.needs))
    return execute(task, inputs, opts, output)


def execute(task: Task, inputs: list[Input], opts: RunOptions, output: io.Output) -> int:
    """Run a bound task over `inputs` and write its outputs; returns the exit code (1 when an input failed)."""
    where = dist.dist_info()
    if output.kind == "stdout" and where.world_size > 1:
        raise UsageError("under torchrun, give -o (a file or a folder): several ranks cannot share stdout")
    headers = {i.id: io.read_header(i.path) for i in inputs}  # each header read once: shards, batches, summaries
    lengths = {k: h.samples for k, h in headers.items()}
    keep = not task.writes_per_input or output.kind not in ("dir", "item") or \
        type(task).summarize is not Task.summarize
    try:
        if output.kind in ("dir", "item"):
            existing = {i.id: None for i in inputs if opts.resume and output.item_path(i).is_file()}
            if existing and where.rank == 0:
                log(f"--resume: {len(existing)} of {len(inputs)} inputs already have outputs")

            def write(item: Input, result: Any) -> None:
                io.atomic_write(output.item_path(item), lambda f: task.write_item(f, item, result, output.fmt))

            outcome = gather(task, inputs, lengths, opts, done=existing, on_result=write, keep=keep)
            outcome.results = {k: v for k, v in outcome.results.items() if v is not None}
            outcome.failed = dist.total_over_ranks(outcome.failed, where)
        else:
            done: dict[str, Any] = {}
            if output.kind == "file" and task.writes_per_input and opts.resume and output.path.is_file():
                done = task.load_run(output.path, output.fmt)
                known = {i.id for i in inputs}
                done = {k: v for k, v in done.items() if k in known}
                if where.rank == 0:
                    log(f"--resume: {len(done)} of {len(inputs)} inputs already in {output.path}")
            anchor = output.path if output.kind == "file" else None
            outcome = gather(task, inputs, lengths, opts, done=done, merge_anchor=anchor)
            if outcome.is_main and task.writes_per_input:
                pairs = [(i, outcome.results[i.id]) for i in inputs if i.id in outcome.results]
                io.write_output(output, task.dumps(pairs, output.fmt))
        outcome.headers = headers
        summary = task.summarize(outcome, inputs)
        if summary is not None and outcome.is_main:
            io.write_output(output, summary.content)
            if summary.notes:
                io.write_notes(summary.notes, to_stdout=output.kind != "stdout")
        return 1 if outcome.failed else 0
    finally:
        dist.leave_process_group()


def gather(task: Task, inputs: list[Input], lengths: dict[str, int], opts: RunOptions,
           done: dict[str, Any] | None = None, merge_anchor: Path | None = None,
           on_result: Callable[[Input, Any], None] | None = None, keep: bool = True) -> RunResult:
    """Process this rank's share of `inputs` (those not in `done`) and, under torchrun with a merge anchor, collect
    every rank's results on rank 0 (through the process group, or through part files next to the anchor).
    Returns the results of all inputs (rank 0) or of this rank's share (other ranks, is_main=False); with
    keep=False results are only handed to `on_result`."""
    where = dist.dist_info()
    started = time.time()
    done = done or {}
    todo = [i for i in inputs if i.id not in done]
    mine = dist.shard(todo, where.rank, where.world_size, [lengths[i.id] for i in todo])
    results: dict[str, Any] = {}

    def handle(item: Input, result: Any) -> None:
        results[item.id] = result if keep else None
        if on_result is not None:
            on_result(item, result)

    failed = process(task, mine, lengths, opts, where, handle)
    if where.world_size == 1 or merge_anchor is None:
        return RunResult({**done, **results}, failed, where.rank == 0 or where.world_size == 1)
    records = [{"id": k, **task.to_record(v)} for k, v in results.items()]
    merged = dist.gather_records(records, failed, where, merge_anchor, started)
    if merged is None:
        return RunResult(results, failed, False)
    records, total_failed = merged
    return RunResult({**done, **{r["id"]: task.from_record(r) for r in records}}, total_failed, True)


def process(task: Task, items: list[Input], lengths: dict[str, int], opts: RunOptions, where: dist.DistInfo,
            on_result: Callable[[Input, Any], None]) -> int:
    """Run task over items in length-sorted batches; returns the number of inputs that failed (each reported on
    stderr and skipped; a batch that fails is retried one input at a time to find the one at fault)."""
    import torch

    from wavlm.inference import length_buckets

    sr, min_samples = task.rt.sampling_rate, task.min_samples()
    budget = None if opts.max_batch_seconds is None else max(1, int(opts.max_batch_seconds * sr))
    batches = length_buckets([lengths[i.id] for i in items], budget, 1 if task.per_file else opts.batch_size)
    desc = f"{task.name}" + (f" [rank {where.rank}]" if where.world_size > 1 else "")
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
                    loaded.append((items[index], io.read_audio(items[index], sr, min_samples)))
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
