"""What the training benchmarks (bench_train.py, bench_pretrain.py) share: timing one step after a warm-up with its
peak memory, and running each measurement in a process of its own so that the peak is its own."""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any, Callable


def time_steps(step: Callable[[], None], steps: int, device: Any) -> tuple[float, int]:
    """(fastest of `steps` calls of step() after one warm-up, in seconds; peak memory in bytes: max_memory_allocated
    on CUDA, growth of the peak RSS on the CPU)."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda" else
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024)
    return min(times[1:]), peak


def in_own_process(script: str, option: str, value: str, args: argparse.Namespace) -> dict:
    """Run `script --option value` with the other options of `args` and return the JSON object it prints last;
    stop with its stderr when it fails."""
    forwarded = [f"--{k}={v}" for k, v in vars(args).items() if k != option]
    r = subprocess.run([sys.executable, script, f"--{option}", value, *forwarded], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{script} --{option} {value} failed (exit {r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])
