"""Property-based tests (hypothesis) for the feature extractor and the CTC tokenizer."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavlm import WavLMCTCTokenizer, WavLMFeatureExtractor
from wavlm.frames import num_frames

LETTERS = list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
TOK = WavLMCTCTokenizer(vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4,
                               **{c: 5 + i for i, c in enumerate(LETTERS)}})
FAST = settings(max_examples=60, deadline=None)

utterance = st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=0, max_size=50).map(
    lambda v: np.asarray(v, dtype=np.float32))


@FAST
@given(batch=st.lists(utterance, min_size=1, max_size=4), mask=st.booleans(), normalize=st.booleans(),
       padding=st.sampled_from([True, False, "longest", "max_length"]), max_length=st.integers(1, 60),
       truncation=st.booleans(), multiple=st.none() | st.integers(1, 8))
def test_extractor_never_crashes_and_masks_are_consistent(batch, mask, normalize, padding, max_length, truncation,
                                                          multiple):
    fe = WavLMFeatureExtractor(return_attention_mask=mask, do_normalize=normalize)
    out = fe(batch, sampling_rate=16000, padding=padding, max_length=max_length, truncation=truncation,
             pad_to_multiple_of=multiple)
    assert len(out.input_values) == len(batch)
    for i, x in enumerate(out.input_values):
        assert x.dtype == np.float32 and np.isfinite(x).all()
        # truncation keeps max_length rounded up to pad_to_multiple_of (transformers' rule)
        limit = -(-max_length // multiple) * multiple if multiple else max_length
        n = min(len(batch[i]), limit) if truncation else len(batch[i])
        if mask:
            m = out.attention_mask[i]
            assert m.dtype == np.int32 and m.sum() == n and len(m) == len(x)
            if normalize and padding is not False and n > 0 and np.ptp(batch[i][:n]) > 1e-2:
                assert abs(float(x[:n].mean())) < 1e-3
    if padding is not False:
        assert len({len(x) for x in out.input_values}) == 1 or (padding == "max_length" and not truncation)


@FAST
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=20))
def test_extractor_rejects_only_non_finite(values):
    x = np.asarray(values, dtype=np.float32)
    fe = WavLMFeatureExtractor()
    if not np.isfinite(x).all():
        with pytest.raises(ValueError, match="utterance 0 contains NaN or infinite"):
            fe(x, sampling_rate=16000)
        return
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            out = fe(x, sampling_rate=16000).input_values[0]
        except ValueError as e:  # float32 statistics overflow for |x| near 3e38
            assert "too large to normalise" in str(e)
            return
    assert len(out) == len(x) and np.isfinite(out).all()


words = st.text(alphabet=LETTERS, min_size=1, max_size=8)
sentences = st.lists(words, min_size=0, max_size=6).map(" ".join)


@FAST
@given(text=sentences)
def test_round_trip_without_grouping(text):
    assert TOK.decode(TOK.encode(text), group_tokens=False) == text


@FAST
@given(text=sentences, repeat=st.integers(1, 3), data=st.data())
def test_round_trip_of_ctc_alignments(text, repeat, data):
    """Any CTC alignment of the text (runs of each token, blanks between equal neighbours and anywhere else)
    decodes to the text, with and without skip_special_tokens."""
    frames: list[int] = []
    for token in TOK.encode(text):
        if frames and frames[-1] == token or data.draw(st.booleans()):
            frames.append(TOK.pad_token_id)
        frames += [token] * data.draw(st.integers(1, repeat))
    assert TOK.decode(frames) == text
    assert TOK.decode(frames, skip_special_tokens=True) == text
    words_out = [w["word"] for w in TOK.decode(frames, output_word_offsets=True).word_offsets]
    assert words_out == text.split()


@FAST
@given(text=st.text(max_size=40))
def test_tokenizer_handles_any_text(text):
    ids = TOK.encode(text)
    assert all(0 <= i < len(TOK) for i in ids)
    assert isinstance(TOK.decode(ids), str)


@FAST
@given(ids=st.lists(st.integers(-200, 200), max_size=40))
def test_decode_any_ids_and_offsets_are_ordered(ids):
    out = TOK.decode(ids, output_char_offsets=True)
    starts = [c["start_offset"] for c in out.char_offsets]
    assert starts == sorted(starts) and all(c["end_offset"] > c["start_offset"] for c in out.char_offsets)
    grouped = [k for k, _ in itertools.groupby(ids)]
    assert len(out.char_offsets) <= len(grouped)


@FAST
@given(n=st.integers(0, 10**7))
def test_num_frames_matches_closed_form(n):
    assert num_frames(n) == ((n - 400) // 320 + 1 if n >= 400 else 0)
