"""JSONL manifests (one JSON object per line: `audio` relative to the manifest, `id`, `duration`, and `text`,
`label`, `speaker`, `rttm`, `voice`, `split` as the corpus needs) and their conversion to a lhotse CutSet.

This is the format `wavlm finetune` reads (issue 11). lhotse is optional (`pip install 'wavlm[train]'`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

MANIFEST_NAME = "manifest.jsonl"
CUTS_NAME = "cuts.jsonl.gz"


def write_manifest(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write records as JSONL (keys in the records' own order, UTF-8, "\\n" line ends): byte-identical for equal
    records. Written to a temporary file first and renamed, so a reader never sees half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike, check_audio: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL manifest as records (dicts; `audio` relative to the manifest's folder when inside it). Lines are
    parsed by the command line's reader (wavlm.tasks.manifest.read_manifest: an `audio` path is required, `id`
    defaults to the audio path without extension); ids must be unique. With check_audio, every audio (and rttm)
    file must exist.

    Raises ValueError naming the file and line of a malformed record or the entries sharing an id,
    FileNotFoundError for a missing file.
    """
    from wavlm.tasks.manifest import read_manifest as read_inputs

    path = Path(path)
    records, seen = [], {}
    for n, item in enumerate(read_inputs(path), start=1):
        audio = item.path.relative_to(path.parent) if item.path.is_relative_to(path.parent) else item.path
        record = {"audio": audio.as_posix(), "id": item.id, **item.meta}
        if item.id in seen:
            raise ValueError(f"{path}: entries {seen[item.id]} and {n} have the same id {item.id!r}")
        seen[item.id] = n
        if check_audio:
            for key in ("audio", "rttm"):
                if key in record and not resolve(path, record[key]).is_file():
                    raise FileNotFoundError(f"{path}: {key} file {record[key]!r} of entry {n} does not exist "
                                            f"(paths are relative to the manifest's folder)")
        records.append(record)
    return records


def resolve(manifest: str | os.PathLike, relative: str) -> Path:
    """A path from a manifest record, relative to the manifest's folder (absolute paths are kept)."""
    p = Path(relative)
    return p if p.is_absolute() else Path(manifest).resolve().parent / p


def _lhotse():
    try:
        import lhotse
    except ImportError as e:
        raise ImportError(f"writing a lhotse CutSet needs lhotse ({e}); install it with "
                          f"`pip install 'wavlm[train]'`") from None
    return lhotse


def manifest_to_cuts(path: str | os.PathLike):
    """A lhotse CutSet of a manifest: one cut per record (its whole recording, absolute audio path), with one
    supervision carrying text / speaker and, as `custom`, label / voice / split; a record with an `rttm` gets one
    supervision per RTTM turn instead (speaker, start, duration)."""
    lhotse = _lhotse()
    from wavlm.tasks.rttm import read_rttm

    path = Path(path)
    cuts = []
    for r in read_manifest(path, check_audio=True):
        # the cut is named by the record's id: CutSet.from_manifests would name it "{id}-{position}", so the same
        # utterance would get another id in another manifest (and miss its pre-training targets, for one)
        cut = lhotse.Recording.from_file(resolve(path, r["audio"]), recording_id=r["id"]).to_cut()
        custom = {k: r[k] for k in ("label", "voice", "split") if k in r} or None
        if "rttm" in r:
            turns = sorted(read_rttm(resolve(path, r["rttm"])))
            cut.supervisions = [lhotse.SupervisionSegment(
                id=f"{r['id']}-{k:03d}", recording_id=r["id"], start=turn.start, duration=turn.duration,
                speaker=turn.speaker, custom=custom) for k, turn in enumerate(turns)]
        else:
            cut.supervisions = [lhotse.SupervisionSegment(
                id=r["id"], recording_id=r["id"], start=0.0, duration=cut.duration, text=r.get("text"),
                speaker=r.get("speaker"), custom=custom)]
        cuts.append(cut)
    return lhotse.CutSet.from_cuts(cuts)


def write_cuts(manifest: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write manifest_to_cuts(manifest) as `cuts.jsonl.gz` beside the manifest (or to `out`); returns its path."""
    out = Path(out) if out is not None else Path(manifest).with_name(CUTS_NAME)
    manifest_to_cuts(manifest).to_file(out)
    return out
