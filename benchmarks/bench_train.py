"""One training step (forward, backward, AdamW) of WavLM base on a batch of 4 x 10 s, fp32, wavlm vs transformers
with the same weights and optimizer: step time and peak memory as ratios. Each library runs in its own process
so that peak RSS (CPU) or peak CUDA memory is its own.

    python benchmarks/bench_train.py [--batch 4] [--seconds 10] [--layers 12] [--steps 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import json

from _steps import in_own_process, time_steps


def one(lib: str, args: argparse.Namespace) -> dict:
    import torch

    torch.manual_seed(0)
    from wavlm import WavLMConfig

    config = WavLMConfig(num_hidden_layers=args.layers, vocab_size=32, layerdrop=0.0, mask_time_prob=0.0)
    if lib == "wavlm":
        from wavlm import WavLMForCTC

        model = WavLMForCTC(config)
    else:
        import transformers

        model = transformers.WavLMForCTC(transformers.WavLMConfig(**config.to_dict()))
    device = torch.device(args.device)
    model.to(device).train()
    model.freeze_feature_encoder()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(args.batch, int(args.seconds * 16000), device=device)
    labels = torch.randint(5, 32, (args.batch, int(args.seconds * 12)), device=device)

    def step() -> None:
        model(x, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step_s, peak = time_steps(step, args.steps, device)
    return {"lib": lib, "step_s": step_s, "peak_bytes": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lib", choices=["wavlm", "transformers"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.lib:
        print(json.dumps(one(args.lib, args)))
        return
    rows = {lib: in_own_process(__file__, "lib", lib, args) for lib in ("wavlm", "transformers")}
    w, t = rows["wavlm"], rows["transformers"]
    print(f"training step, base config with {args.layers} layers, {args.batch} x {args.seconds:g} s, fp32, "
          f"{args.device}, AdamW, feature encoder frozen")
    for r in (w, t):
        print(f"  {r['lib']:12s} {r['step_s']:8.3f} s/step   peak {r['peak_bytes'] / 2**20:9.1f} MiB")
    print(f"  speed-up {t['step_s'] / w['step_s']:.2f}x   memory ratio {w['peak_bytes'] / max(t['peak_bytes'], 1):.2f}")


if __name__ == "__main__":
    main()
