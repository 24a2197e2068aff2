"""Pre-training throughput: WavLMForPreTraining with the base config (95 M parameters, the conv encoder trained with
its gradient scaled by 0.1, as the released recipe), one step = forward, masked-prediction loss, backward and AdamW,
on random audio and random targets; reported as audio seconds per second of wall time, with the peak RSS growth.

    python benchmarks/bench_pretrain.py [--batch 4] [--seconds 10] [--clusters 500] [--steps 3]
                                        [--precision fp32,bf16] [--device cpu]

bf16 is autocast (as `wavlm pretrain --precision bf16`) and is skipped on a CPU without native bfloat16. The CPU,
its capability and the thread count are printed first: the figures hold for that CPU only.
"""
from __future__ import annotations

import argparse
import json

from _steps import in_own_process, time_steps


def one(precision: str, args: argparse.Namespace) -> dict:
    import torch

    from wavlm import WavLMConfig
    from wavlm.pretrain.model import PreTrainingConfig, WavLMForPreTraining

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = WavLMForPreTraining(WavLMConfig(layerdrop=0.0), PreTrainingConfig(num_clusters=args.clusters))
    model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    samples = int(args.seconds * 16000)
    x = torch.randn(args.batch, samples, device=device)
    labels = torch.randint(0, args.clusters, (args.batch, int(model.frames(samples))), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            out = model(x, labels=labels)
        out.loss.backward()  # the feature penalty is in the loss
        opt.step()
        opt.zero_grad(set_to_none=True)

    step_s, peak = time_steps(step, args.steps, device)
    return {"precision": precision, "step_s": step_s, "audio_s_per_s": args.batch * args.seconds / step_s,
            "peak_bytes": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clusters", type=int, default=500)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args)))
        return
    import torch

    from wavlm.kernels import bfloat16_native, dispatch

    print(f"CPU: {dispatch.cpu_model()}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads; device {args.device}")
    print(f"pre-training step, base config, {args.batch} x {args.seconds:g} s, {args.clusters} clusters, AdamW")
    for precision in args.precision.split(","):
        if precision == "bf16" and not bfloat16_native(args.device):
            print(f"  {precision}: skipped (no native bfloat16 on this {args.device})")
            continue
        res = in_own_process(__file__, "one", precision, args)  # its own peak memory
        print(f"  {precision:5s} {res['step_s']:7.2f} s/step  {res['audio_s_per_s']:6.2f} audio s/s  "
              f"peak {res['peak_bytes'] / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
