"""Task I/O: input discovery (files, folders, JSONL manifests), atomic writes, sharding across ranks, batching
by length, SRT captions and JSONL records."""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".webm"})


@dataclass(frozen=True)
class Input:
    """One input recording: a unique `id` (used to name outputs, '/'-separated), its `path`, and any extra
    manifest fields in `meta`."""
    id: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _strip_ext(rel: str) -> str:
    base, dot, ext = rel.rpartition(".")
    return base if dot and base and "/" not in ext else rel


def _walk(root: Path, extensions: frozenset[str]) -> list[Input]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            # hidden files include macOS '._x.wav' resource forks, which are not audio
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                found.append((rel, Path(dirpath) / name))
    found.sort(key=lambda x: x[0])
    return [Input(_strip_ext(rel), path) for rel, path in found]


def read_manifest(path: str | Path) -> list[Input]:
    """Inputs from a JSONL manifest: one object per line with "audio" (a path; relative paths are resolved
    against the manifest's folder) and optionally "id"; other keys go to Input.meta. Blank lines are skipped.
    The default id is the audio path without extension ('/'-separated) when relative, else the file stem.
    Raises ValueError naming the line of a malformed entry.
    """
    path = Path(path)
    inputs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            audio = record.get("audio")
            if not isinstance(audio, str) or not audio:
                raise ValueError(f"{path}:{lineno}: missing or non-string \"audio\" path")
            uid = record.get("id")
            if uid is not None and (not isinstance(uid, str) or not uid):
                raise ValueError(f"{path}:{lineno}: \"id\" must be a non-empty string, got {uid!r}")
            audio_path = Path(audio)
            if uid is None:
                uid = audio_path.stem if audio_path.is_absolute() else _strip_ext(audio.replace(os.sep, "/"))
            if not audio_path.is_absolute():
                audio_path = path.parent / audio_path
            meta = {k: v for k, v in record.items() if k not in ("audio", "id")}
            inputs.append(Input(uid, audio_path, meta))
    return inputs


def _unique_ids(inputs: list[Input]) -> list[Input]:
    taken = {i.id for i in inputs}
    seen: set[str] = set()
    out = []
    for item in inputs:
        uid = item.id
        if uid in seen:
            k = 2
            while f"{item.id}_{k}" in taken:
                k += 1
            uid = f"{item.id}_{k}"
            taken.add(uid)
            item = Input(uid, item.path, item.meta)
        seen.add(uid)
        out.append(item)
    return out


def collect_inputs(paths: Iterable[str | Path], extensions: Iterable[str] = AUDIO_EXTENSIONS) -> list[Input]:
    """Expand command-line paths into inputs, in the order given.

    A `.jsonl` file is a manifest (read_manifest); another file is taken as audio whatever its extension, with
    its stem as id; a folder is walked recursively for files with an audio extension (case-insensitive, hidden
    files and folders skipped), sorted, with ids = path relative to the folder without extension. Repeated ids
    get `_2`, `_3`, ... in order of appearance. Raises FileNotFoundError for a path that does not exist.
    """
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    inputs: list[Input] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            inputs += _walk(p, exts)
        elif p.is_file():
            inputs += read_manifest(p) if p.suffix.lower() == ".jsonl" else [Input(p.stem, p)]
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return _unique_ids(inputs)


def output_path_for(item: Input, out_dir: str | Path, suffix: str) -> Path:
    """out_dir / (item.id + suffix); ids with '/' make sub-folders. Raises ValueError for an id that would
    leave out_dir (absolute, or with '..' or empty components)."""
    parts = item.id.split("/")
    if item.id.startswith("/") or any(part in ("", ".", "..") for part in parts) or "\\" in item.id:
        raise ValueError(f"input id {item.id!r} cannot be used as an output path under {out_dir}")
    return Path(out_dir).joinpath(*parts[:-1], parts[-1] + suffix)


def atomic_write(path: str | Path, data: bytes | str | Callable[[IO[bytes]], None], fsync: bool = False) -> Path:
    """Write a file so that readers see either the old or the complete new content.

    data: bytes, str (UTF-8), or a callback that writes to the binary file object it is given. The content goes
    to a temporary file in the same folder (created if missing), which then replaces `path`; on any error the
    temporary file is removed and the error re-raised. The new file gets the usual umask-based permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


# ---------------------------------------------------------------------------------------------------------------
# distributed sharding and batching

@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job: global rank, world size, rank on this machine."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def dist_info() -> DistInfo:
    """Read RANK, WORLD_SIZE and LOCAL_RANK as set by torchrun (defaults 0, 1, 0 when unset)."""
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        raw = os.environ.get(name, "").strip()
        try:
            values[name] = int(raw) if raw else default
        except ValueError:
            raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None
    info = DistInfo(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise ValueError(f"inconsistent RANK={info.rank}, WORLD_SIZE={info.world_size}, LOCAL_RANK={info.local_rank}")
    return info


def shard(items: Sequence[T], rank: int, world_size: int, lengths: Sequence[float] | None = None) -> list[T]:
    """The items that `rank` of `world_size` processes should handle; every item goes to exactly one rank.

    With lengths, items are dealt longest first in serpentine round-robin (ranks 0..W-1, then W-1..0, ...)
    so that each rank gets about the same total length; without, plain round-robin in the given order.
    The rank's items are returned in their original order.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}) for world_size {world_size}, got {rank}")
    n = len(items)
    if lengths is None:
        return [items[i] for i in range(rank, n, world_size)]
    if len(lengths) != n:
        raise ValueError(f"got {n} items but {len(lengths)} lengths")
    order = sorted(range(n), key=lambda i: (-lengths[i], i))
    mine = []
    for pos, i in enumerate(order):
        rnd, k = divmod(pos, world_size)
        if (k if rnd % 2 == 0 else world_size - 1 - k) == rank:
            mine.append(i)
    return [items[i] for i in sorted(mine)]


def batches_by_length(items: Sequence[Any], lengths: Sequence[int], batch_size: int,
                      max_total_samples: int | None = None) -> list[list[int]]:
    """Index batches of items sorted by length, longest first (so out-of-memory shows up at once).

    Each batch has at most batch_size items and, when max_total_samples is given, at most that many samples
    after padding (len(batch) * longest length); a single item longer than the budget gets a batch of its own.
    Every index appears exactly once.
    """
    if len(items) != len(lengths):
        raise ValueError(f"got {len(items)} items but {len(lengths)} lengths")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_total_samples is not None and max_total_samples < 1:
        raise ValueError(f"max_total_samples must be >= 1, got {max_total_samples}")
    order = sorted(range(len(items)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        cur = batches[-1] if batches else None
        # sorted longest first, so the batch's first item sets its padded length
        fits = cur is not None and len(cur) < batch_size and (
            max_total_samples is None or (len(cur) + 1) * lengths[cur[0]] <= max_total_samples)
        if fits:
            cur.append(i)
        else:
            batches.append([i])
    return batches


# ---------------------------------------------------------------------------------------------------------------
# SRT and JSONL

@dataclass(frozen=True)
class Caption:
    """One subtitle: start and end in seconds and its text (may span lines)."""
    start: float
    end: float
    text: str


def _srt_time(seconds: float) -> str:
    if not seconds >= 0:
        raise ValueError(f"SRT times must be >= 0 seconds, got {seconds}")
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(entries: Iterable[Caption | tuple[float, float, str]]) -> str:
    """SubRip text: numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm` with times rounded to milliseconds."""
    blocks = []
    for n, e in enumerate(entries, start=1):
        start, end, text = (e.start, e.end, e.text) if isinstance(e, Caption) else e
        if end < start:
            raise ValueError(f"caption {n} ends ({end} s) before it starts ({start} s)")
        text = "\n".join(line for line in text.strip().splitlines() if line.strip())
        blocks.append(f"{n}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n")
    return "\n".join(blocks)


_SRT_TIMING = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})")


def parse_srt(text: str) -> list[Caption]:
    """Parse SubRip text (BOM, CRLF and a missing final blank line tolerated). Raises ValueError naming the
    line of a cue without a valid timing line."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    captions = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if lines[i].strip().isdigit() and i + 1 < len(lines):
            i += 1  # the cue number
        m = _SRT_TIMING.match(lines[i])
        if m is None:
            raise ValueError(f"SRT line {i + 1}: expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm', got {lines[i]!r}")
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + int(m.group(4).ljust(3, "0")) / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + int(m.group(8).ljust(3, "0")) / 1000
        i += 1
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i])
            i += 1
        captions.append(Caption(start, end, "\n".join(body)))
    return captions


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
