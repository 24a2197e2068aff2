"""The command line's files: inputs collected from the command line, each audio file's header read once (its
length, for sharding and batching), audio decoded for the model, where results go (stdout, one file for the run, or
one file per input, named in one place), and JSON-lines records."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from wavlm.cli.report import InputError, UsageError
from wavlm.files import atomic_write
from wavlm.tasks.manifest import Input, collect_inputs


def collect(paths: Sequence[str]) -> list[Input]:
    """The inputs named on the command line (files, folders, manifests); UsageError for a missing path, a bad
    manifest or no audio at all."""
    try:
        inputs = collect_inputs(paths)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not inputs:
        raise UsageError(f"no audio files found in {', '.join(paths)}")
    return inputs


@dataclass(frozen=True)
class Header:
    """What an audio file's header says, read once per input per run: its length in samples at 16 kHz (an estimate
    from the file size when the header cannot be read, for sharding and batching) and in seconds (None then)."""
    samples: int
    seconds: float | None


def read_header(path: Path) -> Header:
    """The header of one audio file (no decoding); a file that cannot be read at all gets 0 samples (decoding then
    reports the problem)."""
    try:
        import soundfile

        info = soundfile.info(str(path))
        return Header(int(info.frames * 16000 / info.samplerate), info.duration)
    except Exception:  # noqa: BLE001 - the real read reports the problem
        try:
            return Header(os.path.getsize(path) // 2, None)
        except OSError:
            return Header(0, None)


def read_audio(item: Input, sampling_rate: int, min_samples: int) -> Any:
    """Mono float32 audio (a numpy array) at sampling_rate; InputError with the reason when it cannot be used."""
    import numpy as np

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


# ---------------------------------------------------------------------------------------------------------------
# outputs

def output_path_for(item: Input, out_dir: str | Path, suffix: str) -> Path:
    """out_dir / (item.id + suffix); ids with '/' make sub-folders. Raises ValueError for an id that would
    leave out_dir (absolute, or with '..' or empty components)."""
    parts = item.id.split("/")
    if item.id.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in item.id:
        raise ValueError(f"input id {item.id!r} cannot be used as an output path under {out_dir}")
    return Path(out_dir).joinpath(*parts[:-1], parts[-1] + suffix)


@dataclass
class Output:
    """Where results go: 'stdout', one 'file' for the run, one 'item' file for a single input, or a 'dir'."""
    kind: str
    fmt: str
    path: Path | None = None

    def item_path(self, item: Input) -> Path:
        return self.path if self.kind == "item" else output_path_for(item, self.path, "." + self.fmt)


def resolve_output(task: Any, output: str | None, fmt: str | None, n_inputs: int) -> Output:
    """-o and --format -> an Output, for a task with formats (cli.executor.Task). A file name with a run format's
    extension is one file for the run; with an item format's extension and one input, that input's file; anything
    else is a folder. A task whose summary is its output (writes_per_input False) writes -o as given, or stdout.
    The one place output names are decided."""
    if not task.writes_per_input:
        if output is None or output == "-":
            return Output("stdout", task.default_run_format)
        return Output("file", task.default_run_format, Path(output))
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


def write_output(output: Output, content: str | bytes) -> None:
    """The run's content to stdout or, atomically, to the output file."""
    if output.kind == "stdout":
        if isinstance(content, bytes):
            sys.stdout.buffer.write(content)
        else:
            sys.stdout.write(content)
        sys.stdout.flush()
    else:
        atomic_write(output.path, content)


def write_notes(text: str, to_stdout: bool) -> None:
    """Results that accompany the output (verify's EER): on stdout when the output went to a file, else on stderr
    so that stdout holds the output alone."""
    stream = sys.stdout if to_stdout else sys.stderr
    stream.write(text)
    stream.flush()


# ---------------------------------------------------------------------------------------------------------------
# JSON lines

def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays/scalars and torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def jsonl_line(record: dict[str, Any]) -> str:
    """One JSON line (UTF-8 kept as is, numpy/torch values as lists/numbers), newline-terminated."""
    return json.dumps(record, ensure_ascii=False, default=_json_default) + "\n"


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON lines, atomically."""
    return atomic_write(path, "".join(jsonl_line(r) for r in records))


def read_jsonl(path: str | Path) -> list[Any]:
    """Read JSON lines (blank lines skipped); raises ValueError naming the line of invalid JSON."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    return out
