"""The command line's files: inputs collected from the command line, each audio file's header read once (its
length, for sharding and batching), audio decoded for the model, where results go (stdout, one file for the run, or
one file per input, named in one place), and JSON-lines records."""
from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from wavlm.cli.report import InputError, OutputError, UsageError
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
    leave out_dir (absolute, or with '..' or empty components). The executor names outputs with `item_names`,
    which never refuses an id."""
    parts = item.id.split("/")
    if item.id.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in item.id:
        raise ValueError(f"input id {item.id!r} cannot be used as an output path under {out_dir}")
    return Path(out_dir).joinpath(*parts[:-1], parts[-1] + suffix)


MAX_NAME_BYTES = 200  # a path component; file systems allow 255 bytes, the suffix and a counter need the rest


def _safe_part(part: str) -> str:
    part = "".join("_" if ord(c) < 32 or c in '\\:*?"<>|\x7f' else c for c in part).strip()
    while len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        part = part[:-1]
    return part


def safe_relative_name(uid: str) -> str:
    """An input id as a relative output path ('/'-separated) that stays inside the output folder: '/' makes
    sub-folders; empty, '.' and '..' components are dropped (`../wav/utt1` -> `wav/utt1`, `/abs/id` ->
    `abs/id`, `dir/` -> `dir`); a backslash, control and other characters file systems refuse become '_'; a
    component is cut to MAX_NAME_BYTES; an id with nothing left is '_'."""
    parts = [_safe_part(p) for p in uid.split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def item_names(inputs: Sequence[Input]) -> dict[str, str]:
    """Input id -> a safe, unique relative output name (safe_relative_name; a name taken by an earlier input, or
    differing only in letter case, gets `_2`, `_3`, ...). Every id is kept as is where it is already safe."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for item in inputs:
        base = safe_relative_name(item.id)
        name, k = base, 2
        while name.casefold() in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name.casefold())
        names[item.id] = name
    return names


@dataclass
class Output:
    """Where results go: 'stdout', one 'file' for the run, one 'item' file for a single input, or a 'dir' (one
    file per input, named by `item_names`)."""
    kind: str
    fmt: str
    path: Path | None = None
    names: dict[str, str] = field(default_factory=dict)  # input id -> relative name in a 'dir'

    def name_items(self, inputs: Sequence[Input]) -> None:
        self.names = item_names(inputs)

    def item_path(self, item: Input) -> Path:
        if self.kind == "item":
            return self.path
        name = self.names.get(item.id) or safe_relative_name(item.id)
        return self.path.joinpath(*name.split("/")).with_name(name.rsplit("/", 1)[-1] + "." + self.fmt)


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


# errors after which no later output can be written either: the run stops (what is written is kept)
STOP_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def _probe(folder: Path) -> None:
    """Create and remove a file in an existing folder: OSError when it cannot be written (permissions are not
    enough to tell: root, read-only mounts, ACLs)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".wavlm-probe-")
    os.close(fd)
    os.unlink(tmp)


def check_writable(path: Path, folder: bool, what: str = "-o") -> None:
    """UsageError unless `path` can be written as a file (folder=False: not a folder, its folder writable or
    creatable) or as a folder (folder=True: not a file, writable or creatable). Checked before the model runs, so
    that a run never ends in an output it cannot write; nothing is created."""
    path = Path(path)
    if not folder and path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path}: {existing} is a file, so no folder can be made under it")
    try:
        _probe(existing)
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot write in {existing} ({e.strerror or e})") from None


def keep_partial(path: Path | None, content: str | bytes, name: str) -> Path | None:
    """Save content that could not go where it belonged: beside `path` as <stem>.partial<suffix>, else in the
    temporary folder. Returns where it went (None when nowhere could take it)."""
    suffix = path.suffix if path is not None and path.suffix else f".{name}"
    candidates = [path.with_name(f"{path.stem}.partial{suffix}")] if path is not None else []
    candidates.append(Path(tempfile.gettempdir()) / f"wavlm-{os.getpid()}.partial{suffix}")
    for target in candidates:
        try:
            return atomic_write(target, content)
        except OSError:
            continue
    return None


def write_output(output: Output, content: str | bytes, what: str = "results") -> None:
    """The run's content to stdout or, atomically, to the output file. When it cannot be written (disk full,
    stdout closed or full), the content is kept in a partial file (keep_partial) and OutputError names it."""
    try:
        if output.kind == "stdout":
            if isinstance(content, bytes):
                sys.stdout.buffer.write(content)
            else:
                sys.stdout.write(content)
            sys.stdout.flush()
        else:
            atomic_write(output.path, content)
    except BrokenPipeError:
        raise
    except OSError as e:
        if output.kind == "stdout":
            silence_stdout()
        where = "stdout" if output.kind == "stdout" else str(output.path)
        kept = keep_partial(output.path if output.kind != "stdout" else None, content, output.fmt)
        raise OutputError(f"cannot write the {what} to {where}: {e.strerror or e}; "
                          + (f"what was computed is kept in {kept}" if kept else "nowhere could keep them")
                          + (f" (rename it to {output.path.name} and rerun with --resume to go on)"
                             if kept and output.kind == "file" else "")) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a closed or full stdout raises nothing
    (the way Python's documentation handles SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


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
