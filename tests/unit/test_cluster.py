"""Clustering: synthetic speakers recovered, eigengap count, average linkage against a naive reference and
scikit-learn, sliding windows and their labels on the timeline."""
import numpy as np
import pytest
import torch

from wavlm.tasks.cluster import (agglomerative_cluster, average_linkage, cosine_similarity_matrix,
                                 estimate_num_clusters, kmeans, refine_affinity, sliding_windows, spectral_cluster,
                                 spectral_embedding, windows_to_segments, windows_to_turns)
from wavlm.tasks.rttm import Turn


def _speakers(k, per, dim=32, noise=0.15, seed=0):
    """k random directions with `per` noisy copies each, shuffled; returns (x, true labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    y = np.repeat(np.arange(k), per)
    x = centres[y] + noise * np.linalg.norm(centres[y], axis=1, keepdims=True) / np.sqrt(dim) * rng.normal(
        size=(k * per, dim))
    order = rng.permutation(k * per)
    return x[order], y[order]


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return all(len(set(b[a == v])) == 1 for v in set(a)) and all(len(set(a[b == v])) == 1 for v in set(b))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_all_methods_recover_separated_speakers(k):
    x, y = _speakers(k, 12, seed=k)
    assert _same_partition(agglomerative_cluster(x, num_clusters=k), y)
    assert _same_partition(agglomerative_cluster(x, threshold=0.5), y)
    assert _same_partition(spectral_cluster(x, num_clusters=k), y)
    assert _same_partition(spectral_cluster(x), y)  # eigengap finds k
    assert _same_partition(spectral_cluster(x, p_pruning=0.3, row_threshold=0.5), y)
    assert _same_partition(kmeans(x / np.linalg.norm(x, axis=1, keepdims=True), k)[0], y)
    assert _same_partition(agglomerative_cluster(torch.tensor(x, dtype=torch.float32), num_clusters=k), y)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_eigengap_estimates_count(k):
    x, _ = _speakers(k, 10, seed=10 + k)
    vals, _ = spectral_embedding(refine_affinity(cosine_similarity_matrix(x)))
    assert estimate_num_clusters(vals, 1, 10) == k
    assert len(set(spectral_cluster(x, max_clusters=10).tolist())) == k


def test_labels_are_in_order_of_first_appearance():
    x, _ = _speakers(3, 5, seed=3)
    for labels in (agglomerative_cluster(x, num_clusters=3), spectral_cluster(x, num_clusters=3), kmeans(x, 3)[0]):
        firsts = [int(np.argmax(labels == v)) for v in range(3)]
        assert labels[0] == 0 and firsts == sorted(firsts)


def _naive_average_linkage(d):
    clusters = [[i] for i in range(len(d))]
    heights = []
    while len(clusters) > 1:
        best = min(((np.mean(d[np.ix_(a, b)]), i, j) for i, a in enumerate(clusters)
                    for j, b in enumerate(clusters) if i < j))
        h, i, j = best
        heights.append(h)
        clusters[i] = clusters[i] + clusters[j]
        del clusters[j]
    return heights


def test_average_linkage_heights_match_naive():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(15, 4))
    d = 1 - cosine_similarity_matrix(x)
    np.testing.assert_allclose([m[2] for m in average_linkage(d)], _naive_average_linkage(d), atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_agglomerative_matches_sklearn(seed):
    cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6))  # no clear structure: every merge decision matters
    for k in (2, 3, 5, 8):
        ref = cluster.AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(x)
        assert _same_partition(agglomerative_cluster(x, num_clusters=k), ref)
    for thr in (0.5, 0.9):
        ref = cluster.AgglomerativeClustering(n_clusters=None, distance_threshold=thr, metric="cosine",
                                              linkage="average").fit_predict(x)
        assert _same_partition(agglomerative_cluster(x, threshold=thr), ref)


def test_kmeans_deterministic_and_centres_follow_labels():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), [[5, 5]] * 3])
    l1, c1 = kmeans(x, 2, seed=3)
    l2, c2 = kmeans(x, 2, seed=3)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(c1, c2)
    for j in range(2):
        np.testing.assert_allclose(c1[j], x[l1 == j].mean(0))
    assert kmeans(np.ones((4, 2)), 2)[0].shape == (4,)  # duplicates do not break k-means++


def test_refine_affinity_is_symmetric_non_negative_and_pruned():
    rng = np.random.default_rng(1)
    s = cosine_similarity_matrix(rng.normal(size=(10, 5)))
    a = refine_affinity(s, p_pruning=0.2)
    np.testing.assert_allclose(a, a.T)
    assert (a >= 0).all()
    assert ((refine_affinity(s, p_pruning=0.2) > 0).sum(1) <= 4).all()  # 2 kept per row, plus symmetrisation
    with pytest.raises(ValueError, match="p_pruning"):
        refine_affinity(s, p_pruning=0)


def test_cluster_argument_errors():
    x = np.eye(3)
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative_cluster(x)
    with pytest.raises(ValueError, match="num_clusters"):
        spectral_cluster(x, num_clusters=4)
    assert spectral_cluster(x[:1]).tolist() == [0]


def test_sliding_windows():
    assert sliding_windows(100, 10, 3, 1.5) == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90), (70, 100)]
    assert sliding_windows(90, 10, 3, 1.5) == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90)]
    assert sliding_windows(20, 10, 3, 1.5) == [(0, 20)]
    assert sliding_windows(0, 10, 3, 1.5) == []
    for n in range(1, 200, 7):  # every sample is covered, windows have equal length and ascending starts
        w = sliding_windows(n, 16, 1.5, 0.75)
        covered = np.zeros(n, dtype=bool)
        for s, e in w:
            covered[s:e] = True
        assert covered.all() and len({e - s for s, e in w}) == 1 and all(a[0] < b[0] for a, b in zip(w, w[1:]))
    with pytest.raises(ValueError, match="must not exceed"):
        sliding_windows(100, 10, 1, 2)


def test_windows_to_segments_hand_case():
    # centres 15, 30, 45 samples; boundaries half way: 22.5 and 37.5 samples = 2.25 s and 3.75 s at 10 Hz
    segs = windows_to_segments([(0, 30), (15, 45), (30, 60)], [0, 0, 1], sr=10)
    assert segs == [(0.0, 3.75, 0), (3.75, 6.0, 1)]
    segs = windows_to_segments([(0, 30), (15, 45), (30, 60)], [0, -1, 1], sr=10)  # -1: no speech
    assert segs == [(0.0, 2.25, 0), (3.75, 6.0, 1)]
    assert windows_to_turns([(0, 30), (15, 45)], [1, 1], 10, uri="rec") == [Turn(0.0, 4.5, "spk01", "rec")]


def test_windows_to_segments_nearest_centre_brute_force():
    rng = np.random.default_rng(5)
    windows = sliding_windows(1000, 10, 6.0, 2.5)  # end-aligned last window
    labels = rng.integers(0, 3, len(windows)).tolist()
    segs = windows_to_segments(windows, labels, sr=10)
    assert all(a[1] <= b[0] for a, b in zip(segs, segs[1:]))
    for t in np.arange(0.05, 100, 0.1):  # seconds
        sample = t * 10
        covering = [i for i, (s, e) in enumerate(windows) if s <= sample < e]
        nearest = min(covering, key=lambda i: abs(sum(windows[i]) / 2 - sample))
        (label,) = [l for s, e, l in segs if s <= t < e]
        assert label == labels[nearest]
