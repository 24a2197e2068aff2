"""Sharing a run over the ranks of a torchrun job (or a job array that sets RANK and WORLD_SIZE): where this process
stands, which inputs it takes (length-balanced), and how rank 0 collects the others' results: through torchrun's
gloo process group, or through part files next to the output without one."""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


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


def join_process_group(dist: DistInfo) -> bool:
    """Join torchrun's gloo process group when there is one to join; False without a rendezvous."""
    if dist.world_size == 1 or not os.environ.get("MASTER_ADDR"):
        return False
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group("gloo", rank=dist.rank, world_size=dist.world_size,
                                 timeout=datetime.timedelta(hours=24))
    return True


def leave_process_group() -> None:
    """Leave the process group if this process joined one (at the end of every run)."""
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.destroy_process_group()


def total_over_ranks(count: int, dist: DistInfo) -> int:
    """`count` summed over the ranks where a process group joins them; this rank's count otherwise."""
    if dist.world_size == 1 or not join_process_group(dist):
        return count
    import torch.distributed as tdist

    counts: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(counts, count)
    return sum(counts)


def part_path(anchor: Path, rank: int, world: int) -> Path:
    """Where rank `rank` leaves its records for rank 0 without a process group: a hidden file next to `anchor`."""
    run = os.environ.get("WAVLM_RUN_ID", "run")
    return anchor.parent / f".{anchor.name}.{run}.part{rank:05d}-of-{world:05d}.jsonl"


def gather_records(records: list[dict[str, Any]], failed: int, dist: DistInfo, anchor: Path, started: float
                   ) -> tuple[list[dict[str, Any]], int] | None:
    """Every rank's JSON records and failure count, on rank 0 (None on the other ranks): through the process group
    when there is one, else through JSONL part files next to `anchor`, which rank 0 waits for (written after
    `started`, up to WAVLM_MERGE_TIMEOUT seconds), reads and removes."""
    from wavlm.cli.io import read_jsonl, write_jsonl

    if join_process_group(dist):
        import torch.distributed as tdist

        gathered: list[Any] | None = [None] * dist.world_size if dist.rank == 0 else None
        tdist.gather_object((records, failed), gathered, dst=0)
        if dist.rank != 0:
            return None
        return [r for recs, _ in gathered for r in recs], sum(n for _, n in gathered)
    write_jsonl(part_path(anchor, dist.rank, dist.world_size), records + [{"__failed__": failed}])
    if dist.rank != 0:
        return None
    parts = [part_path(anchor, r, dist.world_size) for r in range(dist.world_size)]
    timeout = float(os.environ.get("WAVLM_MERGE_TIMEOUT", 24 * 3600))
    while not all(p.is_file() and p.stat().st_mtime >= started - 1 for p in parts):
        if time.time() - started > timeout:
            raise RuntimeError(f"rank 0 gave up waiting for {[str(p) for p in parts if not p.is_file()]}")
        time.sleep(0.5)
    merged, total_failed = [], 0
    for p in parts:
        for record in read_jsonl(p):
            if "__failed__" in record:
                total_failed += int(record["__failed__"])
            else:
                merged.append(record)
        p.unlink()
    return merged, total_failed
