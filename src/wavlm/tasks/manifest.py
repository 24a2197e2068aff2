"""Inputs of the command line, the trainers and the corpus tools: audio files, folders searched recursively for audio
extensions, and JSONL manifests (one {"audio": path, "id": optional, ...} object per line)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

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
    def unreadable(error: OSError) -> None:
        # os.walk skips a folder it cannot list; its audio would then be missing from the run without a word
        raise ValueError(f"cannot list the folder {error.filename}: {error.strerror}")

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
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
    Raises ValueError naming the line of a malformed entry, or the file when it cannot be read.
    """
    path = Path(path)
    inputs = []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ValueError(f"cannot read the manifest {path}: {e.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start})") from None
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
    get `_2`, `_3`, ... in order of appearance. Raises FileNotFoundError for a path that does not exist and ValueError
    for a manifest or folder that cannot be read.
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
