"""Speaker clustering of window embeddings: average-linkage agglomerative and spectral clustering, k-means++.

Spectral clustering follows Ng, Jordan & Weiss (2002) on a cosine affinity, with the affinity refinements of
Wang et al. 2018 (row-wise thresholding) and Park et al. 2019 (p-pruning) and an eigengap speaker count.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from wavlm.tasks.arrays import as_float64
from wavlm.tasks.rttm import Turn


def _embeddings(x: Any) -> np.ndarray:
    x = as_float64(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) matrix, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or infinite values")
    return x


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..K-1 in order of first appearance (a canonical form that tests and outputs can rely on)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse.ravel()]


def cosine_similarity_matrix(embeddings: Any, eps: float = 1e-12) -> np.ndarray:
    """(N, D) embeddings -> (N, N) float64 cosine similarities."""
    x = _embeddings(embeddings)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)
    return np.clip(x @ x.T, -1.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# agglomerative clustering

def average_linkage(distances: np.ndarray) -> list[tuple[int, int, float]]:
    """Average-linkage (UPGMA) merges of an (N, N) symmetric distance matrix, by the nearest-neighbour chain
    algorithm (O(N^2) memory and time). Returns N-1 merges (kept_slot, merged_slot, height), heights ascending;
    slot i starts as point i and after a merge holds the union.
    """
    d = np.array(distances, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n):
        raise ValueError(f"distances must be a square matrix, got shape {d.shape}")
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    active = np.ones(n, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    chain: list[int] = []
    for _ in range(n - 1):
        if not chain:
            chain.append(int(np.argmax(active)))
        while True:
            a = chain[-1]
            b = int(np.argmin(d[a]))
            if len(chain) > 1 and d[a, chain[-2]] <= d[a, b]:
                b = chain[-2]  # reciprocal nearest neighbours: merge (ties prefer the chain, so it terminates)
                break
            chain.append(b)
        chain.pop()
        chain.pop()
        keep, drop = min(a, b), max(a, b)
        height = float(d[a, b])
        row = (size[keep] * d[keep] + size[drop] * d[drop]) / (size[keep] + size[drop])
        d[keep], d[:, keep] = row, row
        d[drop], d[:, drop] = np.inf, np.inf
        d[keep, keep] = np.inf
        size[keep] += size[drop]
        active[drop] = False
        merges.append((keep, drop, height))
    merges.sort(key=lambda m: m[2])  # stable; average-linkage heights are monotone, so prefixes are valid cuts
    return merges


def _cut(n: int, merges: Sequence[tuple[int, int, float]], n_merges: int) -> np.ndarray:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for keep, drop, _ in merges[:n_merges]:
        parent[find(drop)] = find(keep)
    return _first_seen(np.array([find(i) for i in range(n)]))


def agglomerative_cluster(embeddings: Any, num_clusters: int | None = None,
                          threshold: float | None = None) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance (1 - cosine similarity).

    embeddings: (N, D). Give exactly one of num_clusters (stop at that many clusters) or threshold (merge
    while the average cosine distance between two clusters is < threshold; in [0, 2]). Returns (N,) int64
    labels numbered in order of first appearance.
    """
    if (num_clusters is None) == (threshold is None):
        raise ValueError("give exactly one of num_clusters or threshold")
    x = _embeddings(embeddings)
    n = x.shape[0]
    if num_clusters is not None and not 1 <= num_clusters <= n:
        raise ValueError(f"num_clusters must be in [1, {n}] for {n} embeddings, got {num_clusters}")
    merges = average_linkage(1.0 - cosine_similarity_matrix(x))
    if num_clusters is not None:
        return _cut(n, merges, n - num_clusters)
    return _cut(n, merges, sum(1 for m in merges if m[2] < threshold))


# ---------------------------------------------------------------------------------------------------------------
# k-means and spectral clustering

def kmeans(x: Any, k: int, seed: int = 0, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007), best of n_init runs by inertia.

    x: (N, D) float; returns (labels (N,) int64 in order of first appearance, centres (k, D) in label order).
    Deterministic for a given seed.
    """
    x = _embeddings(x)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for {n} points, got {k}")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(n_init):
        centres = _kmeans_pp(x, k, rng)
        for _ in range(max_iter):
            d2 = _sq_dists(x, centres)
            labels = d2.argmin(1)
            new = centres.copy()
            for j in range(k):
                members = labels == j
                if members.any():
                    new[j] = x[members].mean(0)
                else:  # an empty cluster takes the point worst served by its centre
                    far = int(d2[np.arange(n), labels].argmax())
                    new[j], labels[far] = x[far], j
            shift = ((new - centres) ** 2).sum()
            centres = new
            if shift <= tol:
                break
        d2 = _sq_dists(x, centres)
        labels = d2.argmin(1)
        inertia = float(d2[np.arange(n), labels].sum())
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, labels, centres)
    _, labels, centres = best
    canon = _first_seen(labels)
    first = {int(c): int(labels[i]) for i, c in reversed(list(enumerate(canon)))}  # canonical -> original
    order = [first[c] for c in sorted(first)]
    order += [j for j in range(k) if j not in order]  # centres that ended up without points
    return canon, centres[order]


def _sq_dists(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N, K) squared Euclidean distances without an (N, K, D) temporary."""
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    centres = [x[int(rng.integers(n))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return np.stack(centres)


def refine_affinity(similarity: np.ndarray, p_pruning: float | None = None,
                    row_threshold: float | None = None) -> np.ndarray:
    """Affinity refinement before the Laplacian: (N, N) similarities -> symmetric non-negative (N, N).

    p_pruning in (0, 1]: keep the ceil(p * N) largest entries of each row, zero the rest (Park et al. 2019).
    row_threshold in [0, 1): entries below their row's row_threshold-quantile are multiplied by 0.01 (Wang et
    al. 2018). Negative similarities are set to 0, then the matrix is symmetrised as (A + A^T) / 2.
    """
    a = np.maximum(np.array(similarity, dtype=np.float64), 0.0)
    n = a.shape[0]
    if row_threshold is not None:
        if not 0.0 <= row_threshold < 1.0:
            raise ValueError(f"row_threshold must be in [0, 1), got {row_threshold}")
        q = np.quantile(a, row_threshold, axis=1, keepdims=True)
        a = np.where(a < q, 0.01 * a, a)
    if p_pruning is not None:
        if not 0.0 < p_pruning <= 1.0:
            raise ValueError(f"p_pruning must be in (0, 1], got {p_pruning}")
        keep = max(1, math.ceil(p_pruning * n))
        order = np.argsort(-a, axis=1, kind="stable")[:, keep:]
        np.put_along_axis(a, order, 0.0, axis=1)
    return 0.5 * (a + a.T)


def spectral_embedding(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the symmetric normalised Laplacian I - D^-1/2 A D^-1/2 of an (N, N) affinity.

    Returns (eigenvalues (N,) ascending, eigenvectors (N, N) as columns).
    """
    a = np.asarray(affinity, dtype=np.float64)
    deg = a.sum(1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    lap = np.eye(a.shape[0]) - inv_sqrt[:, None] * a * inv_sqrt[None, :]
    return np.linalg.eigh(0.5 * (lap + lap.T))


def estimate_num_clusters(eigenvalues: np.ndarray, min_clusters: int = 1, max_clusters: int | None = None) -> int:
    """Eigengap estimate: the k in [min_clusters, max_clusters] maximising eigenvalues[k] - eigenvalues[k-1]
    (ascending Laplacian eigenvalues, so k is the number of near-zero eigenvalues)."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    n = lam.size
    hi = n - 1 if max_clusters is None else min(max_clusters, n - 1)
    lo = max(1, min_clusters)
    if hi < lo:
        return max(1, min(lo, n))
    gaps = lam[lo:hi + 1] - lam[lo - 1:hi]
    return lo + int(np.argmax(gaps))


def spectral_cluster(embeddings: Any, num_clusters: int | None = None, min_clusters: int = 1,
                     max_clusters: int | None = 20, p_pruning: float | None = None,
                     row_threshold: float | None = None, seed: int = 0) -> np.ndarray:
    """Spectral clustering of (N, D) embeddings on the refined cosine affinity (see refine_affinity).

    The number of clusters is num_clusters when given, else the eigengap estimate within [min_clusters,
    max_clusters]. The k eigenvectors of the smallest Laplacian eigenvalues, rows normalised to unit length,
    are clustered by k-means++ with the given seed. Returns (N,) int64 labels in order of first appearance.
    """
    x = _embeddings(embeddings)
    n = x.shape[0]
    if num_clusters is not None and not 1 <= num_clusters <= n:
        raise ValueError(f"num_clusters must be in [1, {n}] for {n} embeddings, got {num_clusters}")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    affinity = refine_affinity(cosine_similarity_matrix(x), p_pruning, row_threshold)
    eigenvalues, eigenvectors = spectral_embedding(affinity)
    k = num_clusters if num_clusters is not None else estimate_num_clusters(eigenvalues, min_clusters, max_clusters)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    v = eigenvectors[:, :k]
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return kmeans(v, k, seed=seed)[0]


# ---------------------------------------------------------------------------------------------------------------
# sliding windows and their labels on the timeline

def sliding_windows(n_samples: int, sr: int, window_s: float, step_s: float) -> list[tuple[int, int]]:
    """[start, end) sample windows of window_s seconds every step_s seconds covering a whole recording.

    The last window is aligned to the end of the recording, so all windows have the same length; a recording
    shorter than one window gives the single window (0, n_samples); an empty one gives [].
    """
    win, step = round(window_s * sr), round(step_s * sr)
    if win <= 0 or step <= 0:
        raise ValueError(f"window ({window_s} s) and step ({step_s} s) must be at least one sample at {sr} Hz")
    if step > win:
        raise ValueError(f"step ({step_s} s) must not exceed the window ({window_s} s), or audio would be skipped")
    if n_samples <= 0:
        return []
    if n_samples <= win:
        return [(0, n_samples)]
    out, start = [], 0
    while start + win < n_samples:
        out.append((start, start + win))
        start += step
    out.append((n_samples - win, n_samples))
    return out


def windows_to_segments(windows: Sequence[tuple[int, int]], labels: Sequence[int],
                        sr: int) -> list[tuple[float, float, int]]:
    """Window labels -> (start_s, end_s, label) segments on the timeline, sorted and non-overlapping.

    Where windows overlap, each instant belongs to the window whose centre is nearest (ties go to the earlier
    window); for equal-length windows this is exact among the windows covering that instant. Adjacent pieces
    with the same label are merged; label < 0 marks a window without speech, whose share is left out.
    """
    if len(windows) != len(labels):
        raise ValueError(f"got {len(windows)} windows but {len(labels)} labels")
    if not windows:
        return []
    w = np.asarray(windows, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.int64)
    centres = w.mean(1)
    order = np.argsort(centres, kind="stable")
    w, lab, centres = w[order], lab[order], centres[order]
    mid = 0.5 * (centres[1:] + centres[:-1])
    lo = np.maximum(w[:, 0], np.concatenate([[-np.inf], mid]))
    hi = np.minimum(w[:, 1], np.concatenate([mid, [np.inf]]))
    out: list[list] = []
    for s, e, l in zip(lo.tolist(), hi.tolist(), lab.tolist()):
        if e <= s:
            continue
        if out and out[-1][2] == l and abs(out[-1][1] - s) < 1e-9:
            out[-1][1] = e
        else:
            out.append([s, e, l])
    return [(s / sr, e / sr, l) for s, e, l in out if l >= 0]


def windows_to_turns(windows: Sequence[tuple[int, int]], labels: Sequence[int], sr: int, uri: str = "file",
                     speaker_format: str = "spk{:02d}") -> list[Turn]:
    """Window labels -> RTTM turns (see windows_to_segments); speaker names are speaker_format.format(label)."""
    return [Turn(s, e, speaker_format.format(l), uri=uri) for s, e, l in windows_to_segments(windows, labels, sr)]
