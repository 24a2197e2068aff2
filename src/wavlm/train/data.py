"""Training data: a JSONL manifest, a lhotse CutSet file or a folder of audio becomes a list of Items (lhotse cuts
with the fields the tasks read); batches are bounded by padded seconds within length buckets, and ranks take
turns on one global batch order that depends only on (seed, epoch), so resuming and re-sharding are exact.

lhotse (`pip install 'wavlm[train]'`) reads the manifests and the audio. Its DynamicBucketingSampler is not used:
its batches depend on the number of ranks and its position is restored by replay, while a global batch order that
is a pure function of (seed, epoch) gives a 2-rank run the same global batches as a 1-rank run that accumulates 2.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def _lhotse():
    try:
        import lhotse
    except ImportError as e:
        raise ImportError(f"wavlm training reads its data with lhotse ({e}); install it with "
                          "`pip install 'wavlm[train]'`") from None
    return lhotse


@dataclass
class Item:
    """One training example: a lhotse cut and what the tasks read from its supervisions. duration in seconds;
    turns (start, end, speaker) in seconds from the cut's start, for diarization."""
    id: str
    duration: float
    cut: Any = field(repr=False)
    text: str | None = None
    label: str | None = None
    speaker: str | None = None
    turns: list[tuple[float, float, str]] | None = None

    def audio(self) -> np.ndarray:
        """The cut's audio as mono float32 at 16 kHz."""
        wav = self.cut.load_audio()
        wav = np.asarray(wav, dtype=np.float32)
        wav = wav.mean(axis=0) if wav.ndim == 2 else wav
        rate = int(self.cut.sampling_rate)
        if rate != SAMPLE_RATE:
            import soxr

            wav = soxr.resample(wav, rate, SAMPLE_RATE).astype(np.float32)
        return wav


def _is_manifest(path: Path) -> bool:
    """A wavlm JSONL manifest (records with "audio") rather than a lhotse cuts file."""
    if path.suffix != ".jsonl":
        return False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return "audio" in json.loads(line)
    return True


def _folder_manifest(folder: Path) -> list[dict[str, Any]]:
    """Records for a folder of audio: `x.txt` beside `x.wav` is its transcript, `x.rttm` its turns, and the name
    of the sub-folder holding it (when not the top folder) its label."""
    records = []
    for audio in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()):
        rel = audio.relative_to(folder)
        record: dict[str, Any] = {"audio": str(audio), "id": rel.with_suffix("").as_posix()}
        if audio.with_suffix(".txt").is_file():
            record["text"] = audio.with_suffix(".txt").read_text(encoding="utf-8").strip()
        if audio.with_suffix(".rttm").is_file():
            record["rttm"] = str(audio.with_suffix(".rttm"))
        if len(rel.parts) > 1:
            record["label"] = rel.parts[-2]
        records.append(record)
    if not records:
        raise FileNotFoundError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return records


def load_cuts(source: str | os.PathLike):
    """A lhotse CutSet from a JSONL manifest (`audio`, optional `id`, `text` / `label` / `speaker` / `rttm`), a
    lhotse cuts file (.jsonl.gz, .jsonl, .json) or a folder of audio (see _folder_manifest)."""
    lhotse = _lhotse()
    from wavlm.synth.manifest import manifest_to_cuts, write_manifest

    path = Path(source)
    if path.is_dir():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            manifest = write_manifest(_folder_manifest(path), Path(tmp) / "manifest.jsonl")
            return manifest_to_cuts(manifest).to_eager()
    if not path.is_file():
        raise FileNotFoundError(f"training data {path} does not exist (a JSONL manifest, a lhotse CutSet file or a "
                                "folder of audio)")
    if _is_manifest(path):
        return manifest_to_cuts(path)
    try:
        return lhotse.CutSet.from_file(path).to_eager()
    except Exception as e:  # lhotse raises many kinds for a file that is not a CutSet
        raise ValueError(f"{path} is neither a wavlm JSONL manifest (objects with an \"audio\" key) nor a lhotse "
                         f"CutSet file: {e}") from None


def cut_to_item(cut: Any) -> Item:
    sups = list(cut.supervisions)
    custom = (sups[0].custom or {}) if sups else {}
    custom = {**(cut.custom or {}), **custom}
    item = Item(id=cut.id, duration=float(cut.duration), cut=cut, label=custom.get("label"))
    if len(sups) == 1 and sups[0].start <= 0.0 and sups[0].end >= cut.duration - 1e-3 and sups[0].text is not None:
        item.text = sups[0].text
    elif sups and all(s.text is not None for s in sups):
        item.text = " ".join(s.text for s in sorted(sups, key=lambda s: s.start))
    speakers = {s.speaker for s in sups if s.speaker is not None}
    if len(speakers) == 1:
        item.speaker = speakers.pop()
    if sups and all(s.speaker is not None for s in sups):
        item.turns = sorted((max(0.0, float(s.start)), min(float(s.end), item.duration), str(s.speaker))
                            for s in sups)
    if item.label is None and custom.get("speaker") is not None:
        item.speaker = item.speaker or str(custom["speaker"])
    return item


def load_items(source: str | os.PathLike | Any) -> list[Item]:
    """Items of a manifest, cuts file, folder or CutSet, in the source's order."""
    cuts = source if hasattr(source, "subset") or hasattr(source, "to_eager") else load_cuts(source)
    return [cut_to_item(c) for c in cuts]


# ------------------------------------------------------------------------------------------------ batching


def bucket_batches(durations: Sequence[float], max_seconds: float, num_buckets: int = 10, shuffle: bool = True,
                   seed: int = 0, epoch: int = 0) -> list[list[int]]:
    """Batches of item indices: items sorted by duration into buckets of equal count (`num_buckets`, but no more
    than the data's total seconds / max_seconds, so that a bucket fills at least one batch); each bucket
    (shuffled when `shuffle`) packed greedily so that a batch's padded length, len(batch) * its longest duration,
    stays within `max_seconds` (an item longer than that alone is a batch of one); the batch order is shuffled.
    The result depends only on (durations, max_seconds, num_buckets, shuffle, seed, epoch)."""
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be at least 1, got {num_buckets}")
    rng = np.random.default_rng([seed, epoch])
    order = np.argsort(np.asarray(durations, dtype=np.float64), kind="stable")
    batches: list[list[int]] = []
    fill = int(float(np.sum(durations)) // max_seconds)
    for bucket in np.array_split(order, max(1, min(num_buckets, fill, len(order)))):
        if shuffle:
            bucket = rng.permutation(bucket)
        batch: list[int] = []
        longest = 0.0
        for i in bucket.tolist():
            d = float(durations[i])
            if batch and (len(batch) + 1) * max(longest, d) > max_seconds:
                batches.append(batch)
                batch, longest = [], 0.0
            batch.append(i)
            longest = max(longest, d)
        if batch:
            batches.append(batch)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


@dataclass
class Sampler:
    """The global batch order of every epoch, and which batches a rank takes at an optimizer step: step s of an
    epoch uses global batches [s * W * A, (s + 1) * W * A), rank r's micro-batch a being s * W * A + a * W + r
    (W ranks, A accumulation steps). Remainder batches of an epoch that would leave a rank without one are left
    out, so every rank runs the same number of steps."""
    durations: list[float]
    max_seconds: float
    num_buckets: int = 10
    shuffle: bool = True
    seed: int = 0
    world_size: int = 1
    accumulate: int = 1

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return bucket_batches(self.durations, self.max_seconds, self.num_buckets, self.shuffle, self.seed, epoch)

    def steps_per_epoch(self, epoch: int = 0) -> int:
        return len(self.epoch_batches(epoch)) // (self.world_size * self.accumulate)

    def step_batches(self, batches: list[list[int]], step: int, rank: int) -> list[list[int]]:
        per_step = self.world_size * self.accumulate
        base = step * per_step
        return [batches[base + a * self.world_size + rank] for a in range(self.accumulate)]


def crop(wav: np.ndarray, samples: int, rng: np.random.Generator | None) -> tuple[np.ndarray, int]:
    """A window of at most `samples`: random start with a generator, centred without. Returns (window, start)."""
    if len(wav) <= samples:
        return wav, 0
    start = int(rng.integers(0, len(wav) - samples + 1)) if rng is not None else (len(wav) - samples) // 2
    return wav[start:start + samples], start


def filter_items(items: list[Item], keep: Callable[[Item], str | None], what: str,
                 log: Callable[[str], None]) -> list[Item]:
    """Items for which keep() returns None; the others are counted and reported with keep()'s reason."""
    kept, dropped = [], {}
    for item in items:
        reason = keep(item)
        if reason is None:
            kept.append(item)
        else:
            dropped.setdefault(reason, []).append(item.id)
    for reason, ids in dropped.items():
        shown = ", ".join(ids[:5]) + (f" (and {len(ids) - 5} more)" if len(ids) > 5 else "")
        log(f"{what}: skipped {len(ids)} item(s): {reason}: {shown}")
    if not kept:
        raise ValueError(f"{what}: no usable items left (of {len(items)})")
    return kept
