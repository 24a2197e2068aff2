"""Pre-training targets (HuBERT's k-means pipeline, fairseq examples/hubert/simple_kmeans): frame features of a
corpus (39-dim MFCC with deltas for the first iteration, hidden states of one layer of a model later), k-means over a
sample of them (scikit-learn's MiniBatchKMeans on CPU, or the torch k-means here on any device), and one cluster id
per frame of every utterance at the model's frame rate (one label per conv frame), written as a targets folder:

    targets.json    clusters, feature kind, frame geometry, cluster counts
    labels.jsonl    {"id", "frames", "labels": "3 3 17 ..."} per manifest entry, in manifest order
    centroids.npy   (clusters, dim) float32

Under torchrun every rank computes the features of its share of the corpus; rank 0 fits the k-means.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from wavlm.frames import DEFAULT_KERNELS, DEFAULT_STRIDES, frame_stride, num_frames

SAMPLE_RATE = 16000
MFCC_HOP = 160      # 10 ms
MFCC_WINDOW = 400   # 25 ms
TARGETS_JSON = "targets.json"
LABELS_JSONL = "labels.jsonl"
CENTROIDS = "centroids.npy"


# ---------------------------------------------------------------------------------------------------------- MFCC
def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def mel_filterbank(num_bins: int = 23, n_fft: int = 512, sample_rate: int = SAMPLE_RATE, low: float = 20.0,
                   high: float = 0.0) -> torch.Tensor:
    """(num_bins, n_fft // 2 + 1) triangular filters equally spaced on Kaldi's mel scale (1127 ln(1 + f/700))
    between `low` and `high` Hz (high <= 0: that far below Nyquist)."""
    nyquist = sample_rate / 2
    high = nyquist + high if high <= 0 else high
    if not 0 <= low < high <= nyquist:
        raise ValueError(f"mel filterbank needs 0 <= low < high <= {nyquist} Hz, got {low} and {high}")
    edges = torch.linspace(float(_mel(torch.tensor(low))), float(_mel(torch.tensor(high))), num_bins + 2,
                           dtype=torch.float64)
    freqs = _mel(torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - left) / (centre - left)
    down = (right - freqs[None]) / (right - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0)


def dct_matrix(num_ceps: int, num_bins: int) -> torch.Tensor:
    """(num_bins, num_ceps) orthonormal DCT-II, as Kaldi's (row 0 scaled sqrt(1/N), the others sqrt(2/N))."""
    n = torch.arange(num_bins, dtype=torch.float64)[:, None]
    k = torch.arange(num_ceps, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi / num_bins * (n + 0.5) * k) * math.sqrt(2.0 / num_bins)
    basis[:, 0] = math.sqrt(1.0 / num_bins)
    return basis


def mfcc(wav: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE, num_ceps: int = 13, num_bins: int = 23,
         preemphasis: float = 0.97, lifter: float = 22.0) -> torch.Tensor:
    """Kaldi-style MFCC (use_energy=False, no dither, snip_edges): 25 ms Povey windows every 10 ms, DC removal and
    pre-emphasis per frame, 512-point power spectrum, 23 mel bins from 20 Hz to Nyquist, log, DCT, cepstral lifter.
    wav (N,) float at 16 kHz -> (1 + (N - 400) // 160, num_ceps) float32."""
    wav = torch.as_tensor(wav, dtype=torch.float64).flatten()
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"MFCC targets are computed at {SAMPLE_RATE} Hz, got {sample_rate}")
    if wav.numel() < MFCC_WINDOW:
        raise ValueError(f"audio of {wav.numel()} samples is shorter than one 25 ms MFCC window ({MFCC_WINDOW})")
    frames = wav.unfold(0, MFCC_WINDOW, MFCC_HOP)  # (F, 400)
    frames = frames - frames.mean(-1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=-1)
    frames = frames - preemphasis * previous
    window = torch.hann_window(MFCC_WINDOW, periodic=False, dtype=torch.float64).pow(0.85)
    spectrum = torch.fft.rfft(frames * window, n=512).abs().pow(2)
    energies = spectrum @ mel_filterbank(num_bins).t()
    logs = torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))
    ceps = logs @ dct_matrix(num_ceps, num_bins)
    ceps = ceps * (1.0 + 0.5 * lifter * torch.sin(math.pi * torch.arange(num_ceps, dtype=torch.float64) / lifter))
    return ceps.float()


def deltas(x: torch.Tensor, window: int = 2) -> torch.Tensor:
    """Regression deltas over time (Kaldi compute-deltas / torchaudio compute_deltas): x (F, D) ->
    sum_n n (x[t+n] - x[t-n]) / (2 sum_n n^2), with the first and last frames repeated at the edges."""
    padded = torch.cat([x[:1].expand(window, -1), x, x[-1:].expand(window, -1)])
    n = x.shape[0]
    num = sum(k * (padded[window + k:window + k + n] - padded[window - k:window - k + n]) for k in
              range(1, window + 1))
    return num / (2 * sum(k * k for k in range(1, window + 1)))


def mfcc_features(wav: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(F, 39) float32: 13 MFCC, their deltas and delta-deltas, at 100 frames/s."""
    c = mfcc(wav)
    d = deltas(c)
    return torch.cat([c, d, deltas(d)], dim=-1)


# --------------------------------------------------------------------------------------------- frame geometry
@dataclass(frozen=True)
class FrameGeometry:
    """The conv stack the labels are counted for (one label per output frame)."""
    kernels: tuple[int, ...] = DEFAULT_KERNELS
    strides: tuple[int, ...] = DEFAULT_STRIDES

    @classmethod
    def of(cls, config: Any) -> "FrameGeometry":
        return cls(tuple(config.conv_kernel), tuple(config.conv_stride))

    @property
    def stride(self) -> int:
        return frame_stride(self.strides)

    def frames(self, num_samples: int) -> int:
        return int(num_frames(int(num_samples), self.kernels, self.strides))


def at_frame_rate(features: torch.Tensor, hop: int, geometry: FrameGeometry, num_samples: int) -> torch.Tensor:
    """Rows of `features` (one every `hop` samples, row i starting at sample i * hop) picked at the model's frame
    starts: (geometry.frames(num_samples), D). MFCC row 2i starts where conv frame i starts (320 = 2 x 160)."""
    count = geometry.frames(num_samples)
    index = torch.clamp(torch.round(torch.arange(count) * geometry.stride / hop).long(), max=features.shape[0] - 1)
    return features[index]


# ------------------------------------------------------------------------------------------------- extractors
class MfccExtractor:
    """39-dim MFCC + deltas at the model's frame rate."""

    def __init__(self, geometry: FrameGeometry = FrameGeometry()) -> None:
        self.geometry = geometry
        self.description: dict[str, Any] = {"kind": "mfcc", "dim": 39}

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        return at_frame_rate(mfcc_features(wav), MFCC_HOP, self.geometry, len(wav)).numpy()


class LayerExtractor:
    """Hidden states of layer `layer` (0 = the encoder input after the positional conv, L = after layer L) of a
    WavLM model, computed without the layers above it. `normalize`: zero-mean unit-variance audio first (models
    trained on normalised audio, e.g. WavLM Large)."""

    def __init__(self, model: Any, layer: int, normalize: bool = False, source: str = "model",
                 max_chunk: int = 1_600_000) -> None:
        layers = model.config.num_hidden_layers
        if not isinstance(layer, int) or not 0 <= layer <= layers:
            raise ValueError(f"layer must be in 0..{layers} for this {layers}-layer model, got {layer!r}")
        self.model, self.layer, self.normalize = model.eval(), layer, normalize
        self.geometry = FrameGeometry.of(model.config)
        self.max_chunk = max_chunk
        self.description = {"kind": "layer", "model": source, "layer": layer, "normalize": normalize,
                            "dim": model.config.hidden_size}

    @torch.inference_mode()
    def __call__(self, wav: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(wav, dtype=torch.float32)
        if self.normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        model = self.model
        encoder = model.encoder
        kept = encoder.layers
        encoder.layers = kept[:max(self.layer, 1)]  # layer 0 holds the position-bias table
        try:
            out = model(x[None].to(model.device, model.dtype), output_hidden_states=True)
        finally:
            encoder.layers = kept
        return out.hidden_states[self.layer][0].float().cpu().numpy()


# ----------------------------------------------------------------------------------------------------- k-means
def kmeans_sklearn(features: np.ndarray, clusters: int, seed: int = 0, n_init: int = 20, max_iter: int = 100,
                   batch_size: int = 10000) -> np.ndarray:
    """MiniBatchKMeans with fairseq's learn_kmeans.py settings (k-means++, reassignment_ratio 0,
    max_no_improvement 100) -> (clusters, D) float32 centroids."""
    try:
        from sklearn.cluster import MiniBatchKMeans
    except ImportError:  # pragma: no cover - the extra is part of the train/test installs
        raise ImportError("k-means targets need scikit-learn: pip install 'wavlm[train]'") from None
    km = MiniBatchKMeans(n_clusters=clusters, init="k-means++", max_iter=max_iter, batch_size=batch_size,
                         n_init=n_init, max_no_improvement=100, reassignment_ratio=0.0, random_state=seed,
                         compute_labels=False, tol=0.0)
    km.fit(features)
    return km.cluster_centers_.astype(np.float32)


def _nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, squared distance) of the nearest centroid for each row of x, in chunks of rows."""
    c2 = centroids.pow(2).sum(-1)
    index, dist = [], []
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk]
        d = part.pow(2).sum(-1, keepdim=True) - 2 * part @ centroids.t() + c2
        value, arg = d.min(-1)
        index.append(arg)
        dist.append(value.clamp(min=0))
    return torch.cat(index), torch.cat(dist)


def kmeans_torch(features: np.ndarray | torch.Tensor, clusters: int, seed: int = 0, max_iter: int = 100,
                 tol: float = 1e-6, device: str | torch.device = "cpu") -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding on `device` (a GPU for large samples) -> (clusters, D) float32.
    An emptied cluster is re-seeded at the point farthest from its centroid."""
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    n = x.shape[0]
    if n < clusters:
        raise ValueError(f"k-means needs at least as many frames ({n}) as clusters ({clusters})")
    g = torch.Generator(device=x.device).manual_seed(seed)
    centroids = torch.empty(clusters, x.shape[1], device=x.device)
    centroids[0] = x[torch.randint(n, (1,), generator=g, device=x.device)]
    closest = (x - centroids[0]).pow(2).sum(-1)
    for k in range(1, clusters):  # k-means++: the next seed with probability proportional to squared distance
        total = closest.sum()
        pick = torch.randint(n, (1,), generator=g, device=x.device) if total <= 0 else \
            torch.multinomial(closest / total, 1, generator=g)
        centroids[k] = x[pick]
        closest = torch.minimum(closest, (x - centroids[k]).pow(2).sum(-1))
    previous = math.inf
    for _ in range(max_iter):
        index, dist = _nearest(x, centroids)
        inertia = float(dist.sum())
        sums = torch.zeros_like(centroids).index_add_(0, index, x)
        counts = torch.bincount(index, minlength=clusters).to(x.dtype)
        empty = (counts == 0).nonzero().flatten()
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        if len(empty):
            far = dist.topk(len(empty)).indices
            centroids[empty] = x[far]
        if len(empty) == 0 and previous - inertia <= tol * max(previous, 1e-12):
            break
        previous = inertia
    return centroids.cpu().numpy()


def assign(features: np.ndarray | torch.Tensor, centroids: np.ndarray | torch.Tensor,
           device: str | torch.device = "cpu") -> np.ndarray:
    """Nearest-centroid cluster id (int64) for each row of features (F, D)."""
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    c = torch.as_tensor(centroids, dtype=torch.float32, device=device)
    if x.shape[-1] != c.shape[-1]:
        raise ValueError(f"features have {x.shape[-1]} dimensions but the centroids {c.shape[-1]}")
    return _nearest(x, c)[0].cpu().numpy()


def fit_kmeans(features: np.ndarray, clusters: int, backend: str = "sklearn", seed: int = 0, n_init: int = 20,
               max_iter: int = 100, device: str | torch.device = "cpu") -> np.ndarray:
    """Centroids (clusters, D) from a (N, D) sample: backend "sklearn" (MiniBatchKMeans, CPU) or "torch"."""
    if not isinstance(clusters, int) or clusters < 2:
        raise ValueError(f"clusters must be an integer >= 2, got {clusters!r}")
    if features.ndim != 2 or features.shape[0] < clusters:
        raise ValueError(f"k-means with {clusters} clusters needs a (frames, dim) sample of at least {clusters} "
                         f"frames, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("k-means features contain NaN or infinite values")
    if backend == "sklearn":
        return kmeans_sklearn(features, clusters, seed=seed, n_init=n_init, max_iter=max_iter)
    if backend == "torch":
        return kmeans_torch(features, clusters, seed=seed, max_iter=max_iter, device=device)
    raise ValueError(f"k-means backend must be 'sklearn' or 'torch', got {backend!r}")


# --------------------------------------------------------------------------------------------- whole corpus
@dataclass
class Targets:
    """A targets folder: labels per utterance id (int64 arrays at the model's frame rate) and its description."""
    root: Path
    info: dict[str, Any]
    labels: dict[str, np.ndarray] = field(repr=False)

    @property
    def clusters(self) -> int:
        return int(self.info["clusters"])

    @property
    def geometry(self) -> FrameGeometry:
        return FrameGeometry(tuple(self.info["conv_kernel"]), tuple(self.info["conv_stride"]))

    def for_frames(self, uid: str, frames: int) -> np.ndarray:
        """The labels of utterance `uid` for a model giving `frames` frames: the stored ones (same frame starts),
        cut or padded with -100 (unscored) where another receptive field gives a frame more or less."""
        if uid not in self.labels:
            raise KeyError(f"no targets for utterance {uid!r} in {self.root}; compute targets for this manifest")
        stored = self.labels[uid]
        if len(stored) >= frames:
            return stored[:frames]
        return np.concatenate([stored, np.full(frames - len(stored), -100, dtype=np.int64)])


def load_targets(path: str | os.PathLike) -> Targets:
    """Read a targets folder written by compute_targets."""
    root = Path(path)
    meta, lines = root / TARGETS_JSON, root / LABELS_JSONL
    if not meta.is_file() or not lines.is_file():
        raise FileNotFoundError(f"{root} is not a targets folder (needs {TARGETS_JSON} and {LABELS_JSONL}; make one "
                                "with `wavlm pretrain targets`)")
    info = json.loads(meta.read_text(encoding="utf-8"))
    labels = {}
    with open(lines, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            record = json.loads(line)
            values = np.array(record["labels"].split(), dtype=np.int64)
            if len(values) != record["frames"]:
                raise ValueError(f"{lines}:{n}: {len(values)} labels but frames = {record['frames']}")
            labels[record["id"]] = values
    return Targets(root, info, labels)


def _sample(records: Sequence[dict[str, Any]], fraction: float, min_seconds: float, seed: int) -> list[int]:
    """Indices of a random sample of utterances: `fraction` of them, more while under `min_seconds` of audio."""
    order = np.random.default_rng(seed).permutation(len(records)).tolist()
    want = max(1, int(round(fraction * len(records))))
    chosen, seconds = [], 0.0
    for i in order:
        if len(chosen) >= want and seconds >= min_seconds:
            break
        chosen.append(i)
        seconds += float(records[i].get("duration", 0.0) or 0.0)
    return sorted(chosen)


def _barrier(joined: bool) -> None:
    if joined:
        import torch.distributed as tdist

        tdist.barrier()


def compute_targets(data: str | os.PathLike | Sequence[Any], out_dir: str | os.PathLike, clusters: int,
                    extractor: Callable[[np.ndarray], np.ndarray] | None = None, *, sample_fraction: float = 0.1,
                    min_sample_seconds: float = 600.0, backend: str = "sklearn", seed: int = 0, n_init: int = 20,
                    max_iter: int = 100, device: str | torch.device = "cpu",
                    log: Callable[[str], None] | None = None) -> Path:
    """Features of every utterance of `data` (a JSONL manifest, lhotse cuts file or audio folder, read as the
    training loop reads it, or a list of its Items; MFCC when `extractor` is None), k-means with `clusters`
    clusters over a random sample (`sample_fraction` of the utterances, and at least `min_sample_seconds` of audio
    when the corpus has it), and labels for all utterances keyed by the loop's item ids, written to `out_dir`
    (see the module docstring).

    Under torchrun (RANK / WORLD_SIZE set, gloo process group) each rank extracts its share; rank 0 fits and
    merges. Returns out_dir."""
    from wavlm.cli.dist import dist_info, join_process_group, shard
    from wavlm.train.data import load_items

    source = str(data) if isinstance(data, (str, os.PathLike)) else "items"
    items = load_items(data) if isinstance(data, (str, os.PathLike)) else list(data)
    out = Path(out_dir)
    records = [{"id": it.id, "duration": it.duration} for it in items]
    if not records:
        raise ValueError(f"{source} has no entries")
    extractor = MfccExtractor() if extractor is None else extractor
    if not 0.0 < sample_fraction <= 1.0:
        raise ValueError(f"sample_fraction must be in (0, 1], got {sample_fraction}")
    dist = dist_info()
    joined = join_process_group(dist)
    if dist.world_size > 1 and not joined:
        raise RuntimeError("targets over several processes need torchrun's process group (MASTER_ADDR unset)")
    out.mkdir(parents=True, exist_ok=True)
    say = log if (log is not None and dist.rank == 0) else (lambda _: None)
    t0 = time.perf_counter()

    def features_of(i: int) -> np.ndarray:
        return extractor(items[i].audio())

    durations = [float(r.get("duration", 0.0) or 0.0) for r in records]
    sample = _sample(records, sample_fraction, min_sample_seconds, seed)
    mine = shard(sample, dist.rank, dist.world_size, [durations[i] for i in sample])
    feats = [features_of(i) for i in mine]
    part = out / f".sample.rank{dist.rank:05d}.npy"
    np.save(part, np.concatenate(feats) if feats else np.zeros((0, 0), np.float32))
    _barrier(joined)
    if dist.rank == 0:
        parts = [out / f".sample.rank{r:05d}.npy" for r in range(dist.world_size)]
        arrays = [a for a in (np.load(p) for p in parts) if a.size]
        for p in parts:
            p.unlink()
        data = np.concatenate(arrays).astype(np.float32)
        say(f"k-means: {clusters} clusters on {data.shape[0]} frames x {data.shape[1]} dims from {len(sample)} "
            f"utterances ({backend})")
        centroids = fit_kmeans(data, clusters, backend=backend, seed=seed, n_init=n_init, max_iter=max_iter,
                               device=device)
        np.save(out / CENTROIDS, centroids)
    _barrier(joined)
    centroids = np.load(out / CENTROIDS)

    mine = shard(list(range(len(records))), dist.rank, dist.world_size, durations)
    lines = []
    for i in mine:
        labels = assign(features_of(i), centroids, device=device)
        lines.append((i, json.dumps({"id": records[i]["id"], "frames": int(len(labels)),
                                     "labels": " ".join(map(str, labels.tolist()))})))
    part = out / f".labels.rank{dist.rank:05d}.jsonl"
    part.write_text("".join(f"{i}\t{line}\n" for i, line in lines), encoding="utf-8")
    _barrier(joined)
    if dist.rank == 0:
        merged = []
        for r in range(dist.world_size):
            p = out / f".labels.rank{r:05d}.jsonl"
            merged += [(int(a), b) for a, b in (ln.split("\t", 1) for ln in p.read_text(encoding="utf-8").splitlines())]
            p.unlink()
        merged.sort()
        tmp = out / (LABELS_JSONL + ".tmp")
        tmp.write_text("".join(line + "\n" for _, line in merged), encoding="utf-8")
        os.replace(tmp, out / LABELS_JSONL)
        counts = np.zeros(clusters, dtype=np.int64)
        for _, line in merged:
            counts += np.bincount(np.array(json.loads(line)["labels"].split(), dtype=np.int64), minlength=clusters)
        geometry = extractor.geometry
        info = {"clusters": clusters, "features": extractor.description,
                "data": str(Path(source).resolve()) if source != "items" else source,
                "sample_rate": SAMPLE_RATE, "frame_stride": geometry.stride, "conv_kernel": list(geometry.kernels),
                "conv_stride": list(geometry.strides), "utterances": len(records), "frames": int(counts.sum()),
                "sample_utterances": len(sample), "kmeans": {"backend": backend, "seed": seed, "n_init": n_init,
                                                             "max_iter": max_iter},
                "counts": counts.tolist(), "majority_rate": float(counts.max() / max(counts.sum(), 1)),
                "used_clusters": int((counts > 0).sum()), "seconds": round(time.perf_counter() - t0, 2)}
        (out / TARGETS_JSON).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        say(f"targets: {len(records)} utterances, {info['frames']} frames, {info['used_clusters']}/{clusters} "
            f"clusters used, majority class {info['majority_rate']:.3f} -> {out}")
    _barrier(joined)
    return out
