"""Frame timing helpers: conv output lengths, sample -> frame masks, frames <-> seconds."""
from __future__ import annotations

import numpy as np
import pytest

from wavlm.frames import (frame_lengths, frame_mask, frame_stride, frame_to_seconds, num_frames, receptive_field,
                          seconds_to_frame)


def test_defaults():
    assert receptive_field() == 400 and frame_stride() == 320


@pytest.mark.parametrize("n", [0, 1, 399, 400, 719, 720, 16000, 16399, 123457])
def test_num_frames_closed_form(n):
    expected = (n - 400) // 320 + 1 if n >= 400 else 0
    assert num_frames(n) == expected
    assert num_frames(np.array([n]))[0] == expected


def test_num_frames_custom_stack_and_torch():
    assert num_frames(10, kernels=(3,), strides=(2,)) == 4
    torch = pytest.importorskip("torch")
    lengths = torch.tensor([0, 399, 400, 16000])
    assert num_frames(lengths).tolist() == [0, 0, 1, 49]
    with pytest.raises(ValueError, match="one entry per conv layer"):
        num_frames(10, kernels=(3, 3), strides=(2,))


def test_frame_mask_numpy_and_torch():
    mask = np.zeros((3, 1000), dtype=np.int32)
    mask[0, :] = 1
    mask[1, :720] = 1
    mask[2, :100] = 1
    frames = frame_mask(mask)
    assert frames.shape == (3, num_frames(1000)) and frames.dtype == bool
    assert frames.sum(-1).tolist() == [2, 2, 0] and frame_lengths(mask).tolist() == [2, 2, 0]
    torch = pytest.importorskip("torch")
    assert frame_mask(torch.from_numpy(mask)).tolist() == frames.tolist()


def test_seconds_round_trip():
    assert frame_to_seconds(50) == pytest.approx(1.0)
    assert frame_to_seconds(1, sampling_rate=8000) == pytest.approx(0.04)
    frames = np.arange(1000)
    assert (seconds_to_frame(frame_to_seconds(frames)) == frames).all()
    assert seconds_to_frame(0.0399) == 1 and seconds_to_frame(-1.0) == 0
    torch = pytest.importorskip("torch")
    assert seconds_to_frame(frame_to_seconds(torch.arange(10))).tolist() == list(range(10))
