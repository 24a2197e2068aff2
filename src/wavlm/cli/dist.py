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

from wavlm.cli.report import UsageError

T = TypeVar("T")
# how long a rank waits for the others to start (the process group's rendezvous; without one, a peer's start
# marker), and for their results at the merge; WAVLM_PEER_TIMEOUT and WAVLM_MERGE_TIMEOUT override them (seconds)
PEER_TIMEOUT_S = 300.0
MERGE_TIMEOUT_S = 24 * 3600.0


class LaunchError(UsageError, ValueError):
    """RANK, WORLD_SIZE, LOCAL_RANK or a WAVLM_* timeout that cannot be used, or ranks that never met: exit 2."""


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name` (default when unset or empty)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise LaunchError(f"environment variable {name} must be a positive number of seconds, got {raw!r}")
    return value


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
            raise LaunchError(f"environment variable {name} must be an integer, got {raw!r} (set by torchrun or "
                              "the job launcher; unset it to run one process)") from None
    info = DistInfo(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise LaunchError(f"inconsistent RANK={info.rank}, WORLD_SIZE={info.world_size}, "
                          f"LOCAL_RANK={info.local_rank}: RANK must be in 0..WORLD_SIZE-1 and LOCAL_RANK >= 0")
    return info


def check_environment() -> DistInfo:
    """Before anything runs: the launcher variables and the WAVLM_* timeouts parse (LaunchError otherwise)."""
    info = dist_info()
    env_seconds("WAVLM_PEER_TIMEOUT", PEER_TIMEOUT_S)
    env_seconds("WAVLM_MERGE_TIMEOUT", MERGE_TIMEOUT_S)
    run_id()
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
        timeout = env_seconds("WAVLM_PEER_TIMEOUT", PEER_TIMEOUT_S)
        try:
            tdist.init_process_group("gloo", rank=dist.rank, world_size=dist.world_size,
                                     timeout=datetime.timedelta(seconds=timeout))
        except Exception as e:  # noqa: BLE001 - a rendezvous that fails or times out
            where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT', '?')}"
            reason = str(e).strip().splitlines()[0][:300].rstrip(".") if str(e).strip() else type(e).__name__
            raise LaunchError(f"rank {dist.rank} of {dist.world_size}: the ranks did not all meet at {where} "
                              f"within {timeout:g} s (WAVLM_PEER_TIMEOUT): {reason}. Start every rank (torchrun "
                              "does), or unset RANK and WORLD_SIZE to run one process") from None
    return True


def wait_for_ranks(dist: DistInfo) -> None:
    """In a process group, wait (up to WAVLM_MERGE_TIMEOUT) until every rank has finished its share; a rank that
    died is named instead of the collective's timeout."""
    import torch.distributed as tdist

    timeout = env_seconds("WAVLM_MERGE_TIMEOUT", MERGE_TIMEOUT_S)
    try:
        tdist.monitored_barrier(timeout=datetime.timedelta(seconds=timeout), wait_all_ranks=True)
    except RuntimeError as e:
        raise LaunchError(f"rank {dist.rank}: not every rank finished within {timeout:g} s "
                          f"(WAVLM_MERGE_TIMEOUT): {str(e).strip().splitlines()[0][:300]}") from None


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

    wait_for_ranks(dist)
    counts: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(counts, count)
    return sum(counts)


def run_id() -> str:
    """WAVLM_RUN_ID (default 'run'), which names the part files of a run: a plain name, so that they stay next to
    the output (LaunchError for one with a path separator)."""
    run = os.environ.get("WAVLM_RUN_ID", "run")
    if "/" in run or os.sep in run or "\0" in run:
        raise LaunchError(f"environment variable WAVLM_RUN_ID must be a name without '/', got {run!r}")
    return run


def part_path(anchor: Path, rank: int, world: int) -> Path:
    """Where rank `rank` leaves its records for rank 0 without a process group: a hidden file next to `anchor`."""
    return anchor.parent / f".{anchor.name}.{run_id()}.part{rank:05d}-of-{world:05d}.jsonl"


def start_path(anchor: Path, rank: int, world: int) -> Path:
    """The marker a rank leaves next to `anchor` when it starts (without a process group): rank 0 waits only
    WAVLM_PEER_TIMEOUT for a rank that never started, and WAVLM_MERGE_TIMEOUT for one that did."""
    part = part_path(anchor, rank, world)
    return part.with_name(part.name[:-len(".jsonl")] + ".started")


def announce(dist: DistInfo, anchor: Path | None) -> float:
    """At the start of a run: join the process group when there is one (waiting WAVLM_PEER_TIMEOUT for the
    others), else leave this rank's start marker next to `anchor`. Returns the time the run started."""
    started = time.time()
    if dist.world_size > 1 and not join_process_group(dist) and anchor is not None:
        marker = start_path(anchor, dist.rank, dist.world_size)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{os.getpid()}\n")
    return started


def gather_records(records: list[dict[str, Any]], failed: int, dist: DistInfo, anchor: Path, started: float,
                   run_started: float | None = None) -> tuple[list[dict[str, Any]], int] | None:
    """Every rank's JSON records and failure count, on rank 0 (None on the other ranks): through the process group
    when there is one, else through JSONL part files next to `anchor`, which rank 0 waits for (written after
    `started`), reads and removes. Rank 0 waits WAVLM_PEER_TIMEOUT seconds (from `run_started`, see announce)
    for a rank that left no start marker, and WAVLM_MERGE_TIMEOUT in all; then LaunchError names the missing
    ranks and the part file that keeps this rank's results."""
    from wavlm.cli.io import read_jsonl, write_jsonl

    if join_process_group(dist):
        import torch.distributed as tdist

        wait_for_ranks(dist)
        gathered: list[Any] | None = [None] * dist.world_size if dist.rank == 0 else None
        tdist.gather_object((records, failed), gathered, dst=0)
        if dist.rank != 0:
            return None
        return [r for recs, _ in gathered for r in recs], sum(n for _, n in gathered)
    mine = write_jsonl(part_path(anchor, dist.rank, dist.world_size), records + [{"__failed__": failed}])
    start_path(anchor, dist.rank, dist.world_size).unlink(missing_ok=True)
    if dist.rank != 0:
        return None
    parts = [part_path(anchor, r, dist.world_size) for r in range(dist.world_size)]
    peer_timeout = env_seconds("WAVLM_PEER_TIMEOUT", PEER_TIMEOUT_S)
    timeout = env_seconds("WAVLM_MERGE_TIMEOUT", MERGE_TIMEOUT_S)
    run_started = started if run_started is None else run_started

    def fresh(p: Path, since: float) -> bool:
        try:
            return p.stat().st_mtime >= since
        except OSError:
            return False

    while True:
        missing = [r for r, p in enumerate(parts) if not fresh(p, started - 1)]
        if not missing:
            break
        now = time.time()
        never = [r for r in missing if not fresh(start_path(anchor, r, dist.world_size), run_started - peer_timeout)]
        if (never and now - run_started > peer_timeout) or now - run_started > timeout:
            what = (f"rank(s) {', '.join(map(str, never))} never started (no start marker beside {anchor} after "
                    f"{peer_timeout:g} s, WAVLM_PEER_TIMEOUT)" if never and now - run_started > peer_timeout else
                    f"rank(s) {', '.join(map(str, missing))} did not finish within {timeout:g} s "
                    "(WAVLM_MERGE_TIMEOUT)")
            raise LaunchError(f"rank 0 of {dist.world_size}: {what}; this rank's results are kept in {mine}. Start "
                              "every rank with the same RANK/WORLD_SIZE, output and WAVLM_RUN_ID, or unset RANK and "
                              "WORLD_SIZE to run one process")
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
