"""Speed and peak memory of wavlm against transformers, side by side on the same weights and inputs.

    python benchmarks/bench_speed.py                      # full table (CPU: ~15-25 min on 2 cores)
    python benchmarks/bench_speed.py --cases base-10s --reps 3 --no-memory     # one row group, timings only
    python benchmarks/bench_speed.py --device cuda        # on a GPU (fp32/bf16/fp16, SDPA backends)

Timing: both libraries run in this process, alternating call by call (wavlm, transformers, wavlm, ...), after a
warm-up call each, under torch.inference_mode, with the same thread count; the table gives medians and min-max.
Peak memory: each (case, implementation) runs once more in a fresh child process that builds the model, resets
the kernel's peak-RSS counter (/proc/self/clear_refs) and runs one forward; "peak RSS" is the child's VmHWM over
that forward (weights and runtime included), "run" is that peak minus the resident set just before it (what the
forward itself needed). On CUDA the peak column is torch.cuda.max_memory_allocated. GFLOP/s counts the multiply-adds of the
convolutions, linear layers and attention products (x2), on the padded input, divided by the median time.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

SR = 16000
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
BATCH_SECONDS = (3.0, 10.0, 4.5, 7.25, 6.0, 3.5, 9.0, 5.25)  # 8 utterances, 3-10 s, padded to 10 s

# case -> (size, seconds or None for the padded batch, wavlm implementations compared with transformers fp32)
CASES = {
    "base-1s": ("base", 1.0, ["fp32"]),
    "base-10s": ("base", 10.0, ["fp32", "bf16", "compile", "int8", "onnx"]),
    "base-30s": ("base", 30.0, ["fp32", "bf16"]),
    "base-60s": ("base", 60.0, ["fp32", "fp32-full", "bf16"]),
    "base-batch8": ("base", None, ["fp32", "bf16"]),
    "large-10s": ("large", 10.0, ["fp32", "bf16"]),
}


# ------------------------------------------------------------------------------------------------ models, inputs
def configs(size: str):
    import transformers

    import wavlm
    kwargs = LARGE if size == "large" else {}
    return transformers.WavLMConfig(**kwargs), wavlm.WavLMConfig(**kwargs)


def build(size: str, impl: str, device: str, seed: int = 0):
    """(model, callable(values, mask)) for `impl` on random weights from `seed`: transformers' model, and ours
    loaded from its state dict."""
    import transformers

    import wavlm
    from wavlm import inference
    hf_config, our_config = configs(size)
    torch.manual_seed(seed)
    theirs = transformers.WavLMModel(hf_config).eval()
    if impl == "transformers":
        model = theirs.to(device)
        return model, lambda v, m: model(v, attention_mask=m).last_hidden_state
    ours = wavlm.WavLMModel(our_config).eval()
    ours.load_state_dict(theirs.state_dict())
    del theirs
    ours = ours.to(device)
    if impl in ("fp32", "fp32-full"):
        block = 0 if impl == "fp32-full" else None
        return ours, lambda v, m: ours(v, attention_mask=m, attention_block_size=block).last_hidden_state
    if impl in ("bf16", "fp16"):
        model = inference.to_bfloat16(ours) if impl == "bf16" else ours.half()
        dtype = torch.bfloat16 if impl == "bf16" else torch.float16
        return model, lambda v, m: model(v.to(dtype), attention_mask=m).last_hidden_state
    if impl == "compile":
        compiled = inference.compile_model(ours)
        return ours, lambda v, m: compiled(v, attention_mask=m).last_hidden_state
    if impl == "int8":
        model = inference.quantize_int8(ours)
        return model, lambda v, m: model(v, attention_mask=m).last_hidden_state
    if impl == "onnx":
        from wavlm.export import export_onnx, onnx_session, run_onnx
        path = os.path.join(tempfile.mkdtemp(), "wavlm.onnx")
        export_onnx(ours, path)
        session = onnx_session(path)
        return ours, lambda v, m: torch.from_numpy(run_onnx(session, v.cpu(), None if m is None else m.cpu()))
    raise ValueError(f"unknown implementation {impl!r}")


def inputs(seconds: float | None, device: str, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    if seconds is not None:
        return torch.randn(1, int(seconds * SR), generator=generator).to(device), None
    lengths = [int(s * SR) for s in BATCH_SECONDS]
    values = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        values[row, :n] = torch.randn(n, generator=generator)
        mask[row, :n] = 1
    return values.to(device), mask.to(device)


def flops(config, batch: int, samples: int) -> float:
    """Multiply-adds x 2 of one forward on (batch, samples), padded frames included."""
    total, length, channels = 0.0, samples, 1
    for dim, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        total += 2 * length * dim * channels * kernel
        channels = dim
    frames, hidden, inner = length, config.hidden_size, config.intermediate_size
    total += 2 * frames * channels * hidden  # feature projection
    total += 2 * frames * hidden * (hidden // config.num_conv_pos_embedding_groups) * config.num_conv_pos_embeddings
    per_layer = 2 * frames * hidden * hidden * 4 + 2 * frames * hidden * inner * 2 + 4 * frames * frames * hidden
    return batch * (total + config.num_hidden_layers * per_layer)


def matmul_peaks(device: str) -> dict[str, float]:
    """Best GFLOP/s of a 2048^3 product: torch.mm (the default BLAS: MKL on CPU), oneDNN fp32, and bf16 where it is
    native."""
    n, peaks = 2048, {}
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    runs = {"mm fp32": lambda: torch.mm(a, b)}
    if device == "cpu" and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        bt = b.t().contiguous()
        runs["oneDNN fp32"] = lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], "")
    from wavlm import kernels
    if kernels.bfloat16_native(device):  # elsewhere one 2048^3 bf16 product takes minutes (no native arithmetic)
        a16, b16 = a.bfloat16(), b.bfloat16()
        runs["mm bf16"] = lambda: torch.mm(a16, b16)
    with torch.inference_mode():
        for name, run in runs.items():
            best = math.inf
            for _ in range(12):
                sync(device)
                start = time.perf_counter()
                run()
                sync(device)
                best = min(best, time.perf_counter() - start)
            peaks[name] = 2 * n ** 3 / best / 1e9
    return peaks


def describe_machine(device: str) -> dict:
    """What every figure depends on, printed before any: the CPU model, torch's CPU capability, native bf16, the
    ISA-limiting environment variables and wavlm's kernel plan for fp32 and bf16 on `device`."""
    from wavlm import kernels
    info = kernels.system_info()
    lines = [f"CPU: {info['cpu']}; capability {info['cpu_capability']}; bfloat16: {info['bfloat16']}",
             f"oneDNN {info['onednn']}, MKL {info['mkl']}; environment: "
             + (", ".join(f"{k}={v}" for k, v in info["environment"].items()) or "no ISA limits set")]
    for dtype in (torch.float32, torch.bfloat16):
        chosen = kernels.plan(device, dtype)
        lines.append(f"kernel plan {device}/{str(dtype).replace('torch.', '')}: "
                     + ", ".join(f"{c.operation}={c.kernel}" for c in chosen.choices))
    if device.startswith("cuda"):
        lines.append(f"GPU: {torch.cuda.get_device_name()}")
    info = {k: v for k, v in info.items() if k != "plans"}
    return {"header": "\n".join(lines), "info": info}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ memory (child)
def status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def child_peak(case: str, impl: str, device: str, threads: int) -> dict:
    """Build, warm up (compile/export, fused-weight caches), then reset the peak resident set (Linux clear_refs 5) and
    measure one forward: peak_mb = VmHWM during the forward (weights and runtime included), run_mb = that minus
    the resident set just before it."""
    size, seconds, _ = CASES[case]
    torch.set_num_threads(threads)
    model, run = build(size, impl, device)
    values, mask = inputs(seconds, device)
    with torch.inference_mode():  # warm-up: compile/export on the real shape, weight caches on a short input
        run(values, mask) if impl in ("compile", "onnx") else run(*inputs(1.0, device))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_mb("VmRSS")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        run(values, mask)
    sync(device)
    out = {"peak_mb": status_mb("VmHWM"), "before_mb": before}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure_peak(case: str, impl: str, device: str, threads: int) -> dict | None:
    command = [sys.executable, __file__, "--child", case, impl, "--device", device, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  memory child failed for {case}/{impl}: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ timing
def time_case(case: str, impls: list[str], reps: int, device: str) -> dict[str, list[float]]:
    """Build every implementation, warm each up, then time them alternately `reps` times."""
    size, seconds, _ = CASES[case]
    values, mask = inputs(seconds, device)
    runners = {}
    for impl in ["transformers"] + impls:
        runners[impl] = build(size, impl, device)[1]
    times: dict[str, list[float]] = {impl: [] for impl in runners}
    reference = None
    with torch.inference_mode():
        for impl, run in runners.items():
            out = run(values, mask)  # warm-up (compiles, exports, first-touch allocations)
            if impl == "transformers":
                reference = out.float()
            elif impl.startswith("fp32"):
                print(f"  {case} {impl}: max |wavlm - transformers| = "
                      f"{(out.float() - reference).abs().max().item():.2e}", file=sys.stderr)
            else:
                cosine = torch.nn.functional.cosine_similarity(out.float(), reference, dim=-1).min().item()
                print(f"  {case} {impl}: min per-frame cosine to transformers fp32 = {cosine:.5f}", file=sys.stderr)
        for _ in range(reps):
            for impl, run in runners.items():
                sync(device)
                start = time.perf_counter()
                run(values, mask)
                sync(device)
                times[impl].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per implementation (after a warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory children")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child_peak(*args.child, args.device, args.threads)))
        return
    if args.device.startswith("cuda"):
        CASES["base-10s"][2][:] = ["fp32", "bf16", "fp16", "compile"]
        print(f"GPU: {torch.cuda.get_device_name()}; SDPA flash={torch.backends.cuda.flash_sdp_enabled()} "
              f"mem_efficient={torch.backends.cuda.mem_efficient_sdp_enabled()} "
              f"math={torch.backends.cuda.math_sdp_enabled()}")

    import transformers
    machine = describe_machine(args.device)
    print(machine["header"])
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}, "
          f"threads {args.threads}, load average {os.getloadavg()[0]:.2f} at start")
    peaks = matmul_peaks(args.device)
    print("matrix-multiply peak (2048^3, best of 12): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    print(flush=True)
    fp32_peak = max(v for k, v in peaks.items() if "fp32" in k)

    rows, raw = [], {"machine": machine["info"], "peaks": peaks, "cases": {}}
    for case in args.cases.split(","):
        size, seconds, impls = CASES[case]
        print(f"timing {case} ...", file=sys.stderr)
        times = time_case(case, impls, args.reps, args.device)
        values, _ = inputs(seconds, "cpu")
        work = flops(configs(size)[1], *values.shape)
        baseline = statistics.median(times["transformers"])
        for impl, ts in times.items():
            median = statistics.median(ts)
            memory = None if args.no_memory else measure_peak(case, impl, args.device, args.threads)
            rows.append((case, impl, median, min(ts), max(ts), baseline / median, work / median / 1e9, memory))
            raw["cases"].setdefault(case, {})[impl] = {"times": ts, "memory": memory, "gflop": work / 1e9}
        print(f"  load average {os.getloadavg()[0]:.2f}", file=sys.stderr)

    print(f"\nload average {os.getloadavg()[0]:.2f} at end; GFLOP/s % is of the best fp32 matmul peak "
          f"({fp32_peak:.0f})\n")
    print("| case | implementation | median s | min-max s | speed-up vs transformers fp32 | GFLOP/s | "
          "% of fp32 peak | peak RSS MB | run MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, impl, median, low, high, ratio, gflops, memory in rows:
        peak = run_mb = "-"
        if memory:
            peak = f"{memory.get('cuda_peak_mb', memory['peak_mb']):.0f}"
            run_mb = f"{memory['peak_mb'] - memory['before_mb']:.0f}"
        print(f"| {case} | {impl} | {median:.3f} | {low:.3f}-{high:.3f} | {ratio:.2f}x | {gflops:.0f} | "
              f"{100 * gflops / fp32_peak:.0f} % | {peak} | {run_mb} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
