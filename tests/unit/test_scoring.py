"""Speaker-verification metrics against hand-computed cases and brute force over all thresholds."""
import numpy as np
import pytest
import torch

from wavlm.tasks.scoring import Trial, compute_eer, compute_min_dcf, cosine_scores, parse_trials, read_trials


def _curves_brute(scores, labels):
    """(threshold, P_fa, P_miss) at every distinct score and +inf, counted one trial at a time."""
    out = []
    for t in sorted(set(scores)) + [np.inf]:
        fa = sum(1 for s, y in zip(scores, labels) if y == 0 and s >= t) / labels.count(0)
        miss = sum(1 for s, y in zip(scores, labels) if y == 1 and s < t) / labels.count(1)
        out.append((t, fa, miss))
    return out


def _eer_brute(scores, labels):
    pts = _curves_brute(scores, labels)
    for (t0, fa0, m0), (t1, fa1, m1) in zip(pts, pts[1:]):
        if m0 - fa0 < 0 <= m1 - fa1:  # the segment that crosses P_fa = P_miss
            a = (fa0 - m0) / ((fa0 - m0) - (fa1 - m1))
            return fa0 + a * (fa1 - fa0)
    raise AssertionError("no crossing")


def test_cosine_scores_rowwise_pairwise_and_torch():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_scores(a, b), [0.0, 1.0, 0.0], atol=1e-12)
    full = cosine_scores(a, b, pairwise=True)
    assert full.shape == (3, 3)
    np.testing.assert_allclose(full[1], [2 / np.sqrt(8), 1.0, 1 / np.sqrt(2)], atol=1e-12)
    np.testing.assert_allclose(cosine_scores(torch.tensor(a), torch.tensor(b)), [0.0, 1.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="pairwise"):
        cosine_scores(a, b[:2])


def test_eer_exact_crossing():
    # targets 0.9 0.8 0.3, non-targets 0.7 0.2 0.1. At t = 0.7: P_fa = 1/3 (0.7), P_miss = 1/3 (0.3) -> EER 1/3.
    eer, thr = compute_eer([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.7)


def test_eer_interpolated():
    # targets 0.5 0.8 0.9, non-targets 0.6 0.1.
    # t=0.6: P_fa 1/2, P_miss 1/3 (d = -1/6); t=0.8: P_fa 0, P_miss 1/3 (d = 1/3).
    # crossing fraction (1/6)/(1/2) = 1/3: P_fa = 1/2 - 1/3 * 1/2 = 1/3 = P_miss; threshold 0.6 + 0.2/3.
    eer, thr = compute_eer([0.5, 0.8, 0.9, 0.6, 0.1], [1, 1, 1, 0, 0])
    assert eer == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.6 + 0.2 / 3)


def test_eer_extremes():
    assert compute_eer([0.8, 0.9, 0.1, 0.2], [1, 1, 0, 0]) == (0.0, pytest.approx(0.8))
    assert compute_eer([0.1, 0.9], [1, 0])[0] == pytest.approx(1.0)  # every target below every non-target
    # all scores tied: the ROC is the diagonal from (1, 0) to (0, 1) -> 0.5
    assert compute_eer([0.3, 0.3, 0.3, 0.3], [1, 0, 1, 0])[0] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_eer_random_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_t, n_n = rng.integers(5, 40), rng.integers(5, 40)
    scores = np.round(np.concatenate([rng.normal(1, 1, n_t), rng.normal(0, 1, n_n)]), 1)  # ties on purpose
    labels = [1] * n_t + [0] * n_n
    eer, thr = compute_eer(scores, labels)
    assert eer == pytest.approx(_eer_brute(scores.tolist(), labels))
    pts = _curves_brute(scores.tolist(), labels)
    assert min(max(fa, m) for _, fa, m in pts) >= eer - 1e-12  # the EER is bounded by the ROC's operating points
    assert min((fa + m) / 2 for _, fa, m in pts) <= eer + 1e-12


def test_min_dcf_hand():
    s, y = [0.5, 0.8, 0.9, 0.6, 0.1], [1, 1, 1, 0, 0]
    # p_target 0.25: normaliser min(0.25, 0.75) = 0.25, DCF = P_miss + 3 P_fa.
    # t=0.1: 3; 0.5: 1.5; 0.6: 1/3 + 1.5; 0.8: 1/3 (P_fa 0); 0.9: 2/3; inf: 1  -> 1/3 at 0.8
    assert compute_min_dcf(s, y, p_target=0.25) == (pytest.approx(1 / 3), pytest.approx(0.8))
    # p_target 0.5, c_miss 10: normaliser min(5, 0.5) = 0.5, DCF = 10 P_miss + P_fa.
    # t=0.1: 1; 0.5: 0.5; 0.6: 10/3 + .5; 0.8: 10/3 ...  -> 0.5 at 0.5
    assert compute_min_dcf(s, y, p_target=0.5, c_miss=10) == (pytest.approx(0.5), pytest.approx(0.5))
    # perfect separation costs nothing
    assert compute_min_dcf([0.9, 0.1], [1, 0])[0] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_min_dcf_random_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    scores = np.round(np.concatenate([rng.normal(2, 1, 30), rng.normal(0, 1, 200)]), 2)
    labels = [1] * 30 + [0] * 200
    for p, cm, cf in [(0.01, 1, 1), (0.05, 1, 1), (0.3, 2, 1)]:
        best = min((cm * p * m + cf * (1 - p) * fa) / min(cm * p, cf * (1 - p))
                   for _, fa, m in _curves_brute(scores.tolist(), labels))
        assert compute_min_dcf(scores, labels, p, cm, cf)[0] == pytest.approx(best)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="non-target"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        compute_eer([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([np.nan, 0.2], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


def test_parse_trials_formats(tmp_path):
    text = "# comment\n\nspk1/a.wav spk1/b.wav 1\nspk1/a.wav spk2/c.wav nontarget\n\n0 x.wav y.wav\nu v target\n"
    assert parse_trials(text) == [Trial("spk1/a.wav", "spk1/b.wav", 1), Trial("spk1/a.wav", "spk2/c.wav", 0),
                                  Trial("x.wav", "y.wav", 0), Trial("u", "v", 1)]
    assert parse_trials("a b\nc d\n") == [Trial("a", "b"), Trial("c", "d")]
    path = tmp_path / "trials.txt"
    path.write_text("a b 1\nc d\n")
    with pytest.raises(ValueError, match=r"trials.txt:2: trial lacks a label"):
        read_trials(path)
    with pytest.raises(ValueError, match=r":3: expected 'enroll test \[label\]', got 4 fields"):
        parse_trials("a b 1\n\nx y z 1\n")
    with pytest.raises(ValueError, match=r":1: cannot read a label"):
        parse_trials("a b maybe\n")
