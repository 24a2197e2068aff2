"""The measurements behind wavlm.kernels' automatic plan, on the machine at hand.

    python benchmarks/kernel_choices.py                    # base model, 10 s and 60 s (~6 min on 2 cores)
    python benchmarks/kernel_choices.py --seconds 10 --reps 2

Two parts, both printed as Markdown tables after the machine header of bench_speed.py:
1. One operation at a time, on base-size shapes: the linear layers (F.linear on the default BLAS, oneDNN's inner
   product, and int8 dynamic quantisation through fbgemm, the one candidate the plan does not use) and one layer's
   attention (transformers-style matmul + bias + softmax, SDPA with the gated bias as a float mask, whole and in
   256-row query blocks, and wavlm's per-head oneDNN blocks).
2. The whole base model with each kernel forced through WAVLM_KERNELS (the reference, each fast kernel alone on the
   reference, the automatic plan with each operation's alternative, the plan itself) and with the opt-in int8
   quantisation, so a choice that wins alone but loses in the model shows up.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bench_speed import SR, describe_machine, matmul_peaks  # noqa: E402

HIDDEN, HEADS, INNER = 768, 12, 3072


def best_of(run, reps: int) -> float:
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def frames(seconds: float) -> int:
    return int(seconds * 50) - 1


def linear_rows(seconds: float, reps: int) -> list[tuple[str, float]]:
    """The 12 layers' linear products (q, k, v, out, two feed-forward) at `seconds`, each way."""
    t = frames(seconds)
    x = torch.randn(t, HIDDEN)
    layers = {"qkvo": torch.nn.Linear(HIDDEN, HIDDEN), "ff1": torch.nn.Linear(HIDDEN, INNER),
              "ff2": torch.nn.Linear(INNER, HIDDEN)}
    inputs = {"qkvo": x, "ff1": x, "ff2": torch.randn(t, INNER)}
    counts = {"qkvo": 4, "ff1": 1, "ff2": 1}
    quantized = {name: torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(layer), {torch.nn.Linear},
                                                              dtype=torch.qint8)
                 for name, layer in layers.items()}
    ways = {
        "F.linear (default BLAS)": lambda n: F.linear(inputs[n], layers[n].weight, layers[n].bias),
        "oneDNN inner product": lambda n: torch.ops.mkldnn._linear_pointwise(inputs[n], layers[n].weight,
                                                                             layers[n].bias, "none", [], ""),
        "int8 dynamic (fbgemm)": lambda n: quantized[n](inputs[n]),
    }
    rows = []
    with torch.inference_mode():
        for way, run in ways.items():
            total = sum(counts[n] * best_of(lambda n=n: run(n), reps) for n in layers)
            rows.append((way, 12 * total))
    return rows


def attention_rows(seconds: float, reps: int) -> list[tuple[str, float]]:
    """One layer's attention (12 heads, T frames) with a (H, T, T) gated bias, each way."""
    from wavlm.kernels.attention import ONEDNN_BLOCK_ROWS, onednn_attention
    t = frames(seconds)
    head = HIDDEN // HEADS
    q, k, v = (torch.randn(1, HEADS, t, head) for _ in range(3))
    table = torch.randn(HEADS, 2 * t - 1)
    gate = torch.rand(1, HEADS, t, 1) * 2
    index = torch.arange(t)
    bias = table[:, (index[None, :] - index[:, None]) + t - 1]  # (H, T, T), built once outside the timings
    mask = (gate * bias[None])

    def matmul_softmax():
        scores = torch.matmul(q, k.transpose(-1, -2)) / head ** 0.5 + gate * bias[None]
        return torch.matmul(scores.softmax(-1), v)

    def sdpa_blocks(rows=256):
        out = torch.empty_like(q)
        for start in range(0, t, rows):
            end = min(t, start + rows)
            block = gate[:, :, start:end] * bias[None, :, start:end]
            out[:, :, start:end] = F.scaled_dot_product_attention(q[:, :, start:end], k, v, attn_mask=block)
        return out

    ways = {
        "matmul + bias + softmax (transformers-style)": matmul_softmax,
        "SDPA, whole gated bias as a float mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        "SDPA in 256-row query blocks": sdpa_blocks,
    }
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        ways["oneDNN per-head products in 256-row blocks (wavlm)"] = lambda: onednn_attention(
            q, k, v, gate, table, None, ONEDNN_BLOCK_ROWS)
    with torch.inference_mode():
        return [(way, best_of(run, reps)) for way, run in ways.items()]


def model_rows(seconds: float, reps: int) -> list[tuple[str, float]]:
    """The base model at `seconds` with each kernel forced through WAVLM_KERNELS (plans are cached per value)."""
    import wavlm
    torch.manual_seed(0)
    model = wavlm.WavLMModel(wavlm.WavLMConfig()).eval()
    values = torch.randn(1, int(seconds * SR))
    from wavlm import inference
    from wavlm.kernels import KERNELS, REFERENCE
    # the reference, each fast kernel alone on top of it, the automatic plan with each operation's alternative
    settings = ["reference"]
    settings += [",".join(f"{o}={k if o == op else 'reference'}" for o in KERNELS)
                 for op, kernels in KERNELS.items() for k in kernels if k != REFERENCE[op]]
    settings += [f"{op}={k}" for op, kernels in KERNELS.items() for k in kernels] + ["auto"]
    rows = []
    saved = os.environ.get("WAVLM_KERNELS")
    try:
        with torch.inference_mode():
            for setting in dict.fromkeys(settings):
                os.environ["WAVLM_KERNELS"] = setting
                rows.append((f"WAVLM_KERNELS={setting}", best_of(lambda: model(values), reps)))
            os.environ["WAVLM_KERNELS"] = "auto"
            quantized = inference.quantize_int8(model)
            rows.append(("auto + inference.quantize_int8 (opt-in: int8 linear layers, changes the numbers)",
                         best_of(lambda: quantized(values), reps)))
    finally:
        os.environ.pop("WAVLM_KERNELS", None)
        if saved is not None:
            os.environ["WAVLM_KERNELS"] = saved
    return rows


def table(title: str, rows: list[tuple[str, float]]) -> str:
    fastest = min(s for _, s in rows)
    lines = [f"\n{title}\n", "| kernel | best s | vs fastest |", "|---|---|---|"]
    lines += [f"| {name} | {s:.3f} | {s / fastest:.2f}x |" for name, s in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,60", help="comma-separated input lengths")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per kernel (best is reported)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_machine("cpu")["header"])
    peaks = matmul_peaks("cpu")
    print(f"threads {args.threads}; matrix-multiply peak (2048^3): "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()), flush=True)
    for seconds in (float(s) for s in args.seconds.split(",")):
        print(table(f"Linear layers of the base encoder (12 layers, {frames(seconds)} frames = {seconds:g} s)",
                    linear_rows(seconds, args.reps)), flush=True)
        print(table(f"Attention of one base layer ({frames(seconds)} frames = {seconds:g} s)",
                    attention_rows(seconds, args.reps)), flush=True)
        print(table(f"Whole base model, {seconds:g} s", model_rows(seconds, args.reps)), flush=True)


if __name__ == "__main__":
    main()
