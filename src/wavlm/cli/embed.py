"""`wavlm embed`: hidden states of chosen layers, per frame or averaged per utterance."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO, Any

from wavlm.cli import executor
from wavlm.cli.options import add_inputs
from wavlm.cli.report import UsageError
from wavlm.tasks.manifest import Input

HELP = "hidden states of chosen layers, per frame or pooled"
DESCRIPTION = ("Hidden states of chosen layers per frame (--pool none) or averaged per utterance (--pool mean). "
               "Formats: npy/safetensors per input, jsonl/npz for the run.")
RUNS_MODEL = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_inputs(p)
    p.add_argument("--layers", default="last",
                   help="'last' (default), 'all', comma-separated indices such as 6,12 (0 = encoder input), "
                        "or 'weighted' with --weights")
    p.add_argument("--weights", default=None, help="comma-separated weights of layers 0..L for --layers weighted")
    p.add_argument("--pool", choices=["mean", "none"], default="mean", help="mean over frames (default) or none")
    p.add_argument("--format", choices=["npy", "safetensors", "jsonl", "npz"], default=None)


@dataclass(frozen=True)
class EmbedOptions:
    layers: str = "last"
    weights: str | None = None
    pool: str = "mean"

    def __post_init__(self) -> None:
        if self.pool not in ("mean", "none"):
            raise UsageError(f"--pool must be 'mean' or 'none', got {self.pool!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EmbedOptions":
        return cls(args.layers, args.weights, args.pool)


def run(args: argparse.Namespace) -> int:
    return executor.run(EmbedTask(EmbedOptions.from_args(args)), args)


def parse_layers(spec: str, num_layers: int, weights: str | None = None) -> tuple[list[int], Any]:
    """`--layers` -> (layer indices, weights as a float64 array, or None). Layer 0 is the encoder input, L the last
    layer's output; 'last' (last_hidden_state), 'all', a comma list ('6,12', negatives count from the end) or
    'weighted' with --weights (L+1 numbers, used as given)."""
    import numpy as np

    n = num_layers + 1
    if spec == "weighted":
        if weights is None:
            raise UsageError(f"--layers weighted needs --weights with {n} comma-separated numbers (layers 0..{n - 1})")
        try:
            w = np.array([float(x) for x in weights.split(",")], dtype=np.float64)
        except ValueError:
            raise UsageError(f"--weights must be comma-separated numbers, got {weights!r}") from None
        if not np.isfinite(w).all():  # float() takes 'nan' and 'inf': NaN embeddings with exit 0
            raise UsageError(f"--weights must be finite numbers, got {weights!r}")
        if w.size != n:
            raise UsageError(f"--weights needs {n} numbers (layers 0..{n - 1}) for this model, got {w.size}")
        return list(range(n)), w
    if weights is not None:
        raise UsageError("--weights goes with --layers weighted")
    if spec == "last":
        return [num_layers], None
    if spec == "all":
        return list(range(n)), None
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--layers must be 'last', 'all', 'weighted' or comma-separated integers, got {spec!r}") \
            from None
    out = []
    for layer in layers:
        if not -n <= layer < n:
            raise UsageError(f"--layers {layer}: this model has layers 0..{num_layers}")
        out.append(layer % n)
    if not out:
        raise UsageError("--layers is empty")
    return out, None


class EmbedTask(executor.Task):
    """Hidden states of chosen layers: (T, D) per frame, (D,) pooled, with a leading layer axis for several."""
    name = "embed"
    item_formats = ("npy", "safetensors")
    run_formats = ("jsonl", "npz")
    default_item_format = "npy"

    def __init__(self, options: EmbedOptions = EmbedOptions()) -> None:
        super().__init__(options)
        # 'last' is last_hidden_state: for pre-LN (large) models that is after the final LayerNorm, while
        # hidden_states[L] is before it (as in transformers 5.23)
        self.last = options.layers == "last"

    def bind(self, runtime: Any) -> None:
        super().bind(runtime)
        opts = self.options
        self.layers, self.weights = parse_layers(opts.layers, runtime.config.num_hidden_layers, opts.weights)
        self.describe = "weighted" if self.weights is not None else "last" if self.last else \
            ",".join(map(str, self.layers))

    def run_batch(self, wavs: list[Any]) -> list[Any]:
        import numpy as np
        import torch

        values, mask = self.rt.inputs(wavs)
        out = self.rt.forward(values, attention_mask=mask, output_hidden_states=not self.last)
        hs = out.hidden_states
        if self.last:
            x = out.last_hidden_state.float()[:, None]
        elif self.weights is not None:
            x = sum(float(w) * hs[i].float() for i, w in zip(self.layers, self.weights))[:, None]
        else:
            x = torch.stack([hs[i].float() for i in self.layers], dim=1)  # (B, L, T, D)
        results = []
        for b, n in enumerate(self.rt.frame_lengths(mask)):
            e = x[b, :, :n]
            e = e.mean(dim=1) if self.options.pool == "mean" else e
            results.append((e[0] if e.shape[0] == 1 else e).cpu().numpy().astype(np.float32))
        return results

    def to_record(self, result: Any) -> dict[str, Any]:
        return {"layers": self.describe, "pool": self.options.pool, "shape": list(result.shape), "embedding": result}

    def from_record(self, record: dict[str, Any]) -> Any:
        import numpy as np

        return np.asarray(record["embedding"], dtype=np.float32).reshape(record["shape"])

    def write_item(self, file: IO[bytes], item: Input, result: Any, fmt: str) -> None:
        import numpy as np

        if fmt == "npy":
            np.save(file, result)
        else:
            from safetensors.numpy import save

            file.write(save({"embedding": np.ascontiguousarray(result)},
                            metadata={"id": item.id, "layers": self.describe, "pool": self.options.pool}))

    def dumps(self, pairs: list[tuple[Input, Any]], fmt: str) -> str | bytes:
        if fmt == "npz":
            import numpy as np

            buf = BytesIO()
            np.savez(buf, **{i.id: r for i, r in pairs})
            return buf.getvalue()
        return super().dumps(pairs, fmt)

    def load_run(self, path: Path, fmt: str) -> dict[str, Any]:
        if fmt == "npz":
            import zipfile

            import numpy as np

            if not zipfile.is_zipfile(path):
                raise ValueError("it is not an .npz archive")
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        return super().load_run(path, fmt)
