"""Frame activity -> segments: median filter, hysteresis, minimum durations, frame timing."""
import numpy as np
import pytest
import torch

from wavlm.tasks.segmentation import activity_runs, binarize, hysteresis, median_filter


@pytest.mark.parametrize("width", [1, 3, 5, 7])
def test_median_filter_matches_direct_loop(width):
    rng = np.random.default_rng(width)
    x = rng.random((23, 3))
    got = median_filter(x, width)
    half = width // 2
    for t in range(23):
        idx = [min(max(i, 0), 22) for i in range(t - half, t + half + 1)]  # edge frames repeated
        np.testing.assert_allclose(got[t], np.median(x[idx], axis=0))
    np.testing.assert_allclose(median_filter(x[:, 0], width), got[:, 0])


def test_median_filter_removes_spikes_and_rejects_even_width():
    x = np.array([0, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    np.testing.assert_array_equal(median_filter(x, 3), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)


def test_hysteresis():
    p = [0.1, 0.6, 0.45, 0.35, 0.2, 0.7, 0.5, 0.55]
    # on at 0.6 (> 0.5), stays on at 0.45 (>= 0.4), off at 0.35; on at 0.7; 0.5 and 0.55 keep it on
    np.testing.assert_array_equal(hysteresis(p, 0.5, 0.4), [0, 1, 1, 0, 0, 1, 1, 1])
    # without hysteresis 0.45 switches off and 0.5 is not > 0.5
    np.testing.assert_array_equal(hysteresis(p, 0.5), [0, 1, 0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="offset"):
        hysteresis(p, 0.4, 0.5)


def test_activity_runs():
    assert activity_runs([1, 1, 0, 0, 1, 0, 1]) == [(0, 2), (4, 5), (6, 7)]
    assert activity_runs([0, 0]) == [] and activity_runs([]) == []


def test_binarize_times_and_tracks():
    probs = np.zeros((10, 2))
    probs[2:5, 0] = 0.9   # frames 2..4 -> 0.04..0.10 s
    probs[7:, 1] = 0.8    # frames 7..9 -> 0.14..0.20 s (runs to the end)
    segs = binarize(probs, onset=0.5)
    assert [[pytest.approx(s) for s in track] for track in segs] == [[(0.04, 0.10)], [(0.14, 0.20)]]
    shifted = binarize(torch.tensor(probs[:, 0]), onset=0.5, frame_shift_s=0.01, frame_offset_s=1.0)
    assert shifted == [[(pytest.approx(1.02), pytest.approx(1.05))]]


def test_binarize_minimum_durations():
    x = np.zeros(40)
    x[0:2] = 1     # 0.00-0.04: 2 frames
    x[3:5] = 1     # 0.06-0.10: gap of 1 frame (0.02 s) from the previous
    x[10:30] = 1   # 0.20-0.60
    x[34:35] = 1   # 0.68-0.70 after a 0.08 s gap
    assert len(binarize(x, 0.5)[0]) == 4
    # fill gaps < 0.03 s first: 0.00-0.10 is then 0.10 s long and survives min_duration_on = 0.1
    filled = binarize(x, 0.5, min_duration_on=0.1, min_duration_off=0.03)[0]
    assert filled == [(0.0, pytest.approx(0.10)), (pytest.approx(0.2), pytest.approx(0.6))]
    # without filling, both 0.04 s pieces and the 0.02 s blip are dropped
    assert binarize(x, 0.5, min_duration_on=0.05)[0] == [(pytest.approx(0.2), pytest.approx(0.6))]
    # only gaps strictly shorter than min_duration_off are filled: the 0.1 s gap at 0.10-0.20 stays at 0.1
    assert binarize(x, 0.5, min_duration_off=0.1)[0] == [(0.0, pytest.approx(0.1)), (pytest.approx(0.2),
                                                                                     pytest.approx(0.7))]
    assert binarize(x, 0.5, min_duration_off=0.11)[0] == [(0.0, pytest.approx(0.7))]
    with pytest.raises(ValueError, match="frame_shift_s"):
        binarize(x, 0.5, frame_shift_s=0)
