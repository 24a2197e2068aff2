"""Exact long-audio attention on the base model (random weights): the blockwise path equals the full path, and 10
minutes of 16 kHz audio run in one full-context call with a small peak memory.

    python benchmarks/verify_long_audio.py                 # 60 s, 120 s equality + 10 min memory (~10-15 min, 2 cores)
    python benchmarks/verify_long_audio.py --minutes 0     # equality checks only

Equality: max |blockwise - full| over last_hidden_state for one utterance and for a right-padded batch of two,
with the automatic block size and with 128-row blocks; also against transformers at 60 s (one utterance).
Memory: the 10-minute call runs in a child process whose peak resident set (VmHWM, reset just before the call with
/proc/self/clear_refs) is reported, weights included.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import torch
from bench_speed import status_mb  # this script's folder is on sys.path when it runs

warnings.filterwarnings("ignore")
SR = 16000


def base_model(seed: int = 0):
    import wavlm
    torch.manual_seed(seed)
    return wavlm.WavLMModel(wavlm.WavLMConfig()).eval()




def equality(seconds: float, model, with_transformers: bool) -> list[str]:
    from wavlm.kernels.attention import block_size
    lines = []
    generator = torch.Generator().manual_seed(int(seconds))
    long, short = int(seconds * SR), int(seconds * SR * 0.8)
    single = torch.randn(1, long, generator=generator)
    batch = torch.zeros(2, long)
    batch[0], batch[1, :short] = single[0], torch.randn(short, generator=generator)
    mask = torch.ones(2, long, dtype=torch.long)
    mask[1, short:] = 0
    with torch.inference_mode():
        for name, values, attention_mask in (("1 utterance", single, None), ("padded batch of 2", batch, mask)):
            frames = model._get_feat_extract_output_lengths(long)
            auto = block_size(torch.empty(values.shape[0], frames, model.config.hidden_size), model.config.num_attention_heads)
            start = time.perf_counter()
            full = model(values, attention_mask=attention_mask, attention_block_size=0).last_hidden_state
            full_s = time.perf_counter() - start
            for block in (None, 128):
                start = time.perf_counter()
                out = model(values, attention_mask=attention_mask, attention_block_size=block).last_hidden_state
                took = time.perf_counter() - start
                label = f"auto ({auto} rows)" if block is None else f"{block} rows"
                lines.append(f"| {seconds:.0f} s | {name} | {label} | {(out - full).abs().max().item():.2e} | "
                             f"{took:.1f} s | {full_s:.1f} s |")
            if with_transformers and attention_mask is None:
                import transformers
                theirs = transformers.WavLMModel(transformers.WavLMConfig()).eval()
                theirs.load_state_dict(model.state_dict())
                reference = theirs(values).last_hidden_state
                out = model(values).last_hidden_state
                lines.append(f"| {seconds:.0f} s | {name} | auto vs transformers | "
                             f"{(out - reference).abs().max().item():.2e} | - | - |")
                del theirs
    return lines


def child_long(minutes: float) -> dict:
    model = base_model()
    values = torch.randn(1, int(minutes * 60 * SR), generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        model(values[:, :SR])  # weight caches
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_mb("VmRSS")
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(values).last_hidden_state
    took = time.perf_counter() - start
    return {"frames": out.shape[1], "seconds": took, "peak_mb": status_mb("VmHWM"), "before_mb": before,
            "finite": bool(torch.isfinite(out).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="60,120", help="lengths for the equality checks")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the memory check (0: skip)")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_long(args.child)))
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    model = base_model()
    print("\n| length | input | blockwise | max abs diff to full | blockwise time | full time |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for seconds in (float(s) for s in args.seconds.split(",") if s):
        for line in equality(seconds, model, with_transformers=seconds <= 60):
            print(line, flush=True)
            worst = max(worst, float(line.split("|")[4]))
    print(f"\nworst difference: {worst:.2e} ({'PASS' if worst <= 1e-5 else 'FAIL'} at 1e-5)")
    if args.minutes:
        done = subprocess.run([sys.executable, __file__, "--child", str(args.minutes)], capture_output=True,
                              text=True)
        if done.returncode:
            print(done.stderr[-2000:])
            sys.exit(1)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\n{args.minutes:g} min in one call: {result['frames']} frames in {result['seconds']:.0f} s, peak RSS "
              f"{result['peak_mb']:.0f} MB (weights and runtime included; {result['peak_mb'] - result['before_mb']:.0f}"
              f" MB above the resident set before the call), finite={result['finite']} "
              f"({'PASS' if result['peak_mb'] < 4096 else 'FAIL'} at 4 GB); load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
