"""The one executor of the commands that run a model over inputs (embed, transcribe, classify, verify, diarize).

A command is a Task: what it loads (its model class, a tokenizer), its options, a per-batch step and an optional
summary step, and its output formats. The executor does everything else, the same way for all of them: options and
outputs checked before the model loads, one load (cli.loader), each header read once, length-sorted padded batches,
a bad input reported and skipped, atomic and resumable outputs, the inputs shared over the ranks of a torchrun job
and merged on rank 0, a progress bar. Nothing is imported beyond the standard library until a command runs."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from wavlm.cli import dist, io
from wavlm.cli.options import RunOptions
from wavlm.cli.report import InputError, OutputError, Progress, UsageError, log
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
        self.resumed_paths: dict[str, str] = {}  # input paths of the records --resume read (jsonl)

    # -- before the model loads
    def model_class_for(self, architecture: str | None) -> str:
        """The class to load for a checkpoint whose config.json names `architecture` (None if unknown)."""
        return self.model_class

    def collect(self, paths: Sequence[str]) -> list[Input]:
        """The inputs to run on, from the command line's paths."""
        return io.collect(paths)

    def check(self, inputs: list[Input], output: io.Output) -> None:
        """Before the model loads: what can be checked of the options, inputs and output that would otherwise fail
        only after the whole run (UsageError). The run formats' own rules are checked here."""
        if output.kind in ("stdout", "file") and output.fmt == "txt" and self.writes_per_input:
            for item in inputs:
                if any(c in item.id for c in "\t\n\r"):
                    raise UsageError(f"input id {item.id!r} holds a tab or a line break, which the {output.fmt} "
                                     "format cannot keep apart from the fields: give the input another id, or "
                                     "write jsonl")

    def run_options(self) -> dict[str, Any]:
        """The options that shape the results (recorded beside a run file; --resume refuses a run whose options
        differ): by default every field of the options dataclass."""
        import dataclasses

        return dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else {}

    def run_key(self, item: Input) -> str:
        """The key an input's results have in a run file (its id; diarize's RTTM uri replaces white space)."""
        return item.id

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
        """Results already in a run output, by id, in the file's order (for --resume; the input paths of jsonl
        records go to `resumed_paths`). Any error means the file is not one this task wrote (the executor says
        so, naming the file)."""
        if fmt == "jsonl":
            out = {}
            for n, record in enumerate(io.read_jsonl(path), start=1):
                uid = record.get("id") if isinstance(record, dict) else None
                if not isinstance(uid, str) or not uid:
                    raise ValueError(f"record {n} has no \"id\" string")
                out[uid] = self.from_record(record)
                if isinstance(record.get("path"), str):
                    self.resumed_paths[uid] = record["path"]
            return out
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
    where = dist.check_environment()
    inputs = task.collect(args.inputs)
    output = io.resolve_output(task, opts.output, opts.format, len(inputs))
    if output.kind == "stdout" and where.world_size > 1:
        raise UsageError("under torchrun, give -o (a file or a folder): several ranks cannot share stdout")
    check_output(task, output, inputs)
    task.check(inputs, output)
    done = read_resumed(task, output, opts, inputs)
    started = dist.announce(where, output.path if output.kind == "file" else None)  # before the model loads
    task.bind(load(opts, task.name, task.model_class_for, tokenizer="tokenizer" in task.needs))
    return execute(task, inputs, opts, output, resumed=done, run_started=started)


def check_output(task: Task, output: io.Output, inputs: list[Input]) -> None:
    """Before the model loads: the output can be written (a file where a file goes, a folder where a folder
    goes, a writable place), and a folder's outputs get safe, unique names (io.item_names)."""
    if output.kind == "stdout":
        return
    io.check_writable(output.path, folder=output.kind == "dir")
    if output.kind == "dir":
        output.name_items(inputs)


RUN_RECORD_SUFFIX = ".wavlm-run.json"


def run_record_path(path: Path) -> Path:
    """The file beside a run file that records the command and options it was made with (for --resume)."""
    return path.with_name(path.name + RUN_RECORD_SUFFIX)


def run_record(task: Task, opts: RunOptions, fmt: str) -> dict[str, Any]:
    """What shaped a run file's results: the command, the model (a local path made absolute), the dtype, int8,
    and the task's options."""
    model = Path(opts.model).expanduser()
    return {"command": task.name, "format": fmt,
            "options": {"model": str(model.resolve()) if model.exists() else opts.model, "dtype": opts.dtype,
                        "int8": opts.int8, **task.run_options()}}


def _same_value(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a, default=str)) == json.loads(json.dumps(b, default=str))


@dataclass
class Resumed:
    """What --resume found in a run file: results by id in the file's order, and the inputs of those results
    that this run was not given (kept, and written back)."""
    results: dict[str, Any] = field(default_factory=dict)
    others: list[Input] = field(default_factory=list)


def read_resumed(task: Task, output: io.Output, opts: RunOptions, inputs: list[Input]) -> Resumed:
    """Before the model loads, with --resume and a run file that exists: check that it was made with this run's
    command and options (UsageError naming the ones that differ) and read its results (UsageError saying what
    is wrong with a corrupt or foreign file). Records of inputs not given this time are kept."""
    if not (opts.resume and output.kind == "file" and task.writes_per_input and output.path.is_file()):
        return Resumed()
    path = output.path
    stop = f"; fix or remove it (or run without --resume to overwrite it)"
    record_file, expected = run_record_path(path), run_record(task, opts, output.fmt)
    if record_file.is_file():
        try:
            saved = json.loads(record_file.read_text(encoding="utf-8"))
            if not isinstance(saved, dict) or not isinstance(saved.get("options"), dict):
                raise ValueError("not a run record")
        except (OSError, ValueError) as e:
            raise UsageError(f"--resume: cannot read {record_file} ({e}){stop}") from None
        if saved.get("command") != task.name:
            raise UsageError(f"--resume: {path} was written by `wavlm {saved.get('command')}`, not "
                             f"`wavlm {task.name}`")
        now, then = expected["options"], saved["options"]
        differ = [k for k in dict.fromkeys([*then, *now]) if not _same_value(then.get(k), now.get(k))]
        if differ:
            flag = {"model": "--model", "dtype": "--dtype", "int8": "--int8"}
            raise UsageError(f"--resume: {path} was made with other options than this run: "
                             + ", ".join(f"{flag.get(k, '--' + k.replace('_', '-'))} {then.get(k)!r} there, "
                                         f"{now.get(k)!r} now" for k in differ)
                             + "; run with the same options, or write to another file")
    else:
        log(f"warning: --resume: {path} has no {record_file.name} beside it, so the options it was made with "
            "cannot be checked")
    try:
        found = task.load_run(path, output.fmt)
        if not isinstance(found, dict) or not all(isinstance(k, str) and k for k in found):
            raise ValueError("its records have no string ids")
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable or foreign file is named with the reason
        raise UsageError(f"--resume: {path} is not a {output.fmt} run file of `wavlm {task.name}` that can be "
                         f"read back ({type(e).__name__}: {e}){stop}") from None
    by_key = {task.run_key(i): i for i in inputs}
    resumed = Resumed()
    for key, result in found.items():
        item = by_key.get(key)
        if item is None:
            item = Input(key, Path(task.resumed_paths.get(key, key)))
            resumed.others.append(item)
        resumed.results[item.id] = result
    if dist.dist_info().rank == 0:
        log(f"--resume: {len(resumed.results) - len(resumed.others)} of {len(inputs)} inputs already in {path}"
            + (f"; the {len(resumed.others)} records of other inputs there are kept" if resumed.others else ""))
    return resumed


def execute(task: Task, inputs: list[Input], opts: RunOptions, output: io.Output,
            resumed: Resumed | None = None, run_started: float | None = None) -> int:
    """Run a bound task over `inputs` and write its outputs; returns the exit code (1 when an input failed).
    `resumed`: what read_resumed found (read here when not given)."""
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
            if resumed is None:
                resumed = read_resumed(task, output, opts, inputs)
            given = {i.id for i in inputs}
            done = {k: v for k, v in resumed.results.items() if k in given}
            anchor = output.path if output.kind == "file" else None
            outcome = gather(task, inputs, lengths, opts, done=done, merge_anchor=anchor, run_started=run_started)
            if outcome.is_main and task.writes_per_input:
                # the file's records first, in its order (those of inputs not given this time kept), then the new
                by_id = {i.id: i for i in [*inputs, *resumed.others]}
                order = [*resumed.results, *(i.id for i in inputs if i.id not in resumed.results)]
                results = {**{i.id: resumed.results[i.id] for i in resumed.others}, **outcome.results}
                pairs = [(by_id[k], results[k]) for k in order if k in results]
                io.write_output(output, task.dumps(pairs, output.fmt), f"{len(pairs)} results")
                if output.kind == "file":
                    _write_run_record(task, opts, output)
        outcome.headers = headers
        summary = task.summarize(outcome, inputs)
        if summary is not None and outcome.is_main:
            io.write_output(output, summary.content, "summary")
            if summary.notes:
                io.write_notes(summary.notes, to_stdout=output.kind != "stdout")
        return 1 if outcome.failed else 0
    finally:
        dist.leave_process_group()


def _write_run_record(task: Task, opts: RunOptions, output: io.Output) -> None:
    try:
        io.atomic_write(run_record_path(output.path), json.dumps(run_record(task, opts, output.fmt), indent=1,
                                                                 default=str) + "\n")
    except OSError as e:
        log(f"warning: could not record the run's options beside {output.path} ({e}); --resume will not be able "
            "to check them")


def gather(task: Task, inputs: list[Input], lengths: dict[str, int], opts: RunOptions,
           done: dict[str, Any] | None = None, merge_anchor: Path | None = None,
           on_result: Callable[[Input, Any], None] | None = None, keep: bool = True,
           run_started: float | None = None) -> RunResult:
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
    merged = dist.gather_records(records, failed, where, merge_anchor, started, run_started)
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
                    try:
                        on_result(item, result)
                    except OSError as e:  # its output cannot be written
                        if e.errno in io.STOP_ERRNOS:  # nor can any later one: stop, keep what is written
                            raise OutputError(f"cannot write the output of {item.path}: {e}; stopped after "
                                              f"{progress.done} of {len(items)} inputs; the outputs written so "
                                              "far are kept (rerun with --resume to go on)") from None
                        fail(item, f"cannot write its output: {e}")
            progress.update(len(batch))
    finally:
        progress.close()
    return failed
