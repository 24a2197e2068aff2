"""torchrun support: one process per device, gloo on CPU and nccl on GPU. Gradients are summed over ranks by the
loop itself once per optimizer step (the loss is already divided by the global normaliser), so a layer skipped by
layerdrop on every rank at once, as the shared layerdrop seed makes it, needs no unused-parameter search."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> Context:
    """Join the torchrun group when WORLD_SIZE > 1 (gloo for CPU, nccl for CUDA); pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local, dev)


def cleanup(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def sum_floats(ctx: Context, values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()


def sum_gradients(ctx: Context, params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce (sum) the gradients of `params` in one flat buffer. A parameter without a gradient on every rank
    keeps none (AdamW then skips it, as in a one-process run); one with a gradient on some rank gets the sum."""
    if not ctx.distributed:
        return
    params = [p for p in params if p.requires_grad]
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=ctx.device)
    dist.all_reduce(has)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, present in zip(params, has.tolist()):
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone() if present else None
        offset += n


def gather_objects(ctx: Context, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (on every rank)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(ctx: Context, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
