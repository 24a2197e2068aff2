"""Feature extractor: normalisation, padding, masks, errors, BatchFeature and preprocessor_config.json I/O."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from wavlm import BatchFeature, Wav2Vec2FeatureExtractor, WavLMFeatureExtractor


def test_alias_and_defaults():
    assert Wav2Vec2FeatureExtractor is WavLMFeatureExtractor
    fe = WavLMFeatureExtractor()
    assert (fe.feature_size, fe.sampling_rate, fe.padding_value, fe.return_attention_mask, fe.do_normalize,
            fe.padding_side) == (1, 16000, 0.0, False, True, "right")


def test_normalisation_uses_only_real_samples():
    fe = WavLMFeatureExtractor(return_attention_mask=True)
    x = np.array([1.0, 2.0, 3.0, 4.0])
    out = fe([x, x[:2]], sampling_rate=16000, padding=True, return_tensors="np")
    expected = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    np.testing.assert_allclose(out.input_values[0], expected, atol=1e-6)
    np.testing.assert_allclose(out.input_values[1], [-1, 1, 0, 0], atol=1e-4)
    assert out.attention_mask.dtype == np.int32 and out.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert out.input_values.dtype == np.float32


def test_without_mask_the_padded_vector_is_normalised_whole():
    out = WavLMFeatureExtractor()([np.ones(4), np.array([1.0, 3.0])], sampling_rate=16000, padding=True,
                                  return_tensors="np")
    assert "attention_mask" not in out
    assert abs(out.input_values[1].mean()) < 1e-6 and out.input_values[1, 2] != 0


def test_left_padding_normalises_real_samples():
    fe = WavLMFeatureExtractor(return_attention_mask=True, padding_side="left", padding_value=-5.0)
    out = fe([np.arange(4.0), np.array([2.0, 4.0])], sampling_rate=16000, padding=True, return_tensors="np")
    assert out.attention_mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    np.testing.assert_allclose(out.input_values[1], [-5, -5, -1, 1], atol=1e-4)


def test_padding_options():
    fe = WavLMFeatureExtractor(return_attention_mask=True, do_normalize=False)
    xs = [np.ones(10), np.ones(3)]
    assert fe(xs, sampling_rate=16000, padding="max_length", max_length=12, return_tensors="np").input_values.shape == (2, 12)
    assert fe(xs, sampling_rate=16000, padding=True, pad_to_multiple_of=4, return_tensors="np").input_values.shape == (2, 12)
    out = fe(xs, sampling_rate=16000, padding="max_length", max_length=5, truncation=True, return_tensors="np")
    assert out.input_values.shape == (2, 5) and out.attention_mask[1].tolist() == [1, 1, 1, 0, 0]
    unpadded = fe(xs, sampling_rate=16000)
    assert [len(v) for v in unpadded.input_values] == [10, 3]
    with pytest.raises(ValueError, match="max_length"):
        fe(xs, sampling_rate=16000, padding="max_length")
    with pytest.raises(ValueError, match="max_length"):
        fe(xs, sampling_rate=16000, truncation=True)
    with pytest.raises(ValueError, match="padding must be"):
        fe(xs, sampling_rate=16000, padding="everything")
    with pytest.raises(ValueError, match="different lengths"):
        fe(xs, sampling_rate=16000, return_tensors="np")


def test_input_kinds():
    fe = WavLMFeatureExtractor(do_normalize=False)
    ints = fe(np.array([1, -2, 3], dtype=np.int16), sampling_rate=16000, return_tensors="np")
    assert ints.input_values.dtype == np.float32 and ints.input_values.tolist() == [[1, -2, 3]]
    assert fe([0.5, 0.25], sampling_rate=16000, return_tensors="np").input_values.shape == (1, 2)
    assert fe(np.zeros((3, 7)), sampling_rate=16000, return_tensors="np").input_values.shape == (3, 7)
    assert fe([[0.1, 0.2], [0.3]], sampling_rate=16000, padding=True, return_tensors="np").input_values.shape == (2, 2)


def test_errors_name_the_problem():
    fe = WavLMFeatureExtractor()
    with pytest.raises(ValueError, match="8000 Hz.*16000 Hz.*resample"):
        fe(np.zeros(10), sampling_rate=8000)
    with pytest.raises(ValueError, match="utterance 1 contains NaN"):
        fe([np.zeros(3), np.array([0.0, np.nan])], sampling_rate=16000)
    with pytest.raises(ValueError, match="utterance 0 contains NaN or infinite"):
        fe(np.array([np.inf, 0.0]), sampling_rate=16000)
    with pytest.raises(ValueError, match="mono"):
        fe(np.zeros((2, 2, 3)), sampling_rate=16000)
    with pytest.raises(ValueError, match="utterance 0 has shape"):
        fe([np.zeros((2, 3))], sampling_rate=16000)
    with pytest.raises(ValueError, match="empty"):
        fe([], sampling_rate=16000)
    with pytest.raises(ValueError, match="feature_size"):
        WavLMFeatureExtractor(feature_size=2)


def test_missing_sampling_rate_warns_once():
    fe = WavLMFeatureExtractor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fe(np.zeros(5))
        fe(np.zeros(5))
        fe(np.zeros(5), sampling_rate=16000)
    assert len([w for w in caught if "sampling_rate" in str(w.message)]) == 1


def test_empty_utterance_in_batch():
    out = WavLMFeatureExtractor(return_attention_mask=True)([np.zeros(0), np.arange(3.0)], sampling_rate=16000,
                                                            padding=True, return_tensors="np")
    assert out.input_values[0].tolist() == [0, 0, 0] and out.attention_mask[0].tolist() == [0, 0, 0]


def test_batch_feature_behaves_like_transformers():
    torch = pytest.importorskip("torch")
    fe = WavLMFeatureExtractor(return_attention_mask=True)
    out = fe([np.ones(4), np.ones(2)], sampling_rate=16000, padding=True, return_tensors="pt")
    assert isinstance(out, BatchFeature) and isinstance(out, dict)
    assert out.input_values is out["input_values"] and out.attention_mask.dtype == torch.int32
    moved = out.to("cpu")
    assert moved is out and moved.input_values.device.type == "cpu"
    half = out.to(torch.float16)
    assert half.input_values.dtype == torch.float16 and half.attention_mask.dtype == torch.int32
    assert set(pickle.loads(pickle.dumps(out))) == {"input_values", "attention_mask"}
    with pytest.raises(AttributeError, match="no field 'labels'"):
        out.labels
    # a list of tensors is a batch, and padded like arrays
    batch = fe([torch.ones(3), torch.zeros(5)], sampling_rate=16000, padding=True, return_tensors="pt")
    assert batch.input_values.shape == (2, 5)


def test_pad_does_not_normalise_and_keeps_mask():
    fe = WavLMFeatureExtractor(return_attention_mask=False)
    out = fe.pad([{"input_values": [1.0, 2.0, 3.0]}, {"input_values": [5.0]}])
    assert out.input_values.tolist() == [[1, 2, 3], [5, 0, 0]] and "attention_mask" not in out
    out = fe.pad({"input_values": [np.ones(2), np.ones(1)], "attention_mask": [[1, 1], [1]]}, return_tensors="np")
    assert out.attention_mask.tolist() == [[1, 1], [1, 0]]
    with pytest.raises(ValueError, match="input_values"):
        fe.pad({"labels": [[1]]})


def test_config_round_trip_keeps_unknown_keys(tmp_path):
    fe = WavLMFeatureExtractor(return_attention_mask=True, do_normalize=False, auto_map={"x": "y"},
                               processor_class="Wav2Vec2Processor")
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "Wav2Vec2FeatureExtractor" and saved["auto_map"] == {"x": "y"}
    assert "processor_class" not in saved  # the processor's key, written by the processor (as in transformers)
    loaded = WavLMFeatureExtractor.from_pretrained(tmp_path)
    assert loaded == fe and loaded.to_dict() == fe.to_dict()
    assert WavLMFeatureExtractor.from_pretrained(tmp_path, return_attention_mask=False).return_attention_mask is False
    assert WavLMFeatureExtractor.from_pretrained(tmp_path / "preprocessor_config.json") == fe
    with pytest.raises(OSError, match="no such directory"):
        WavLMFeatureExtractor.from_pretrained(tmp_path / "nothing_here" / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="no preprocessor_config.json"):
        WavLMFeatureExtractor.from_pretrained(tmp_path / "empty")


def test_import_does_not_import_torch():
    code = ("import sys, wavlm.features, wavlm.tokenizer, wavlm.processor, wavlm.audio, wavlm.frames, wavlm.auto;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_json_files_and_keyword_checks(tmp_path):
    fe = WavLMFeatureExtractor(return_attention_mask=True, padding_value=0.5)
    fe.to_json_file(tmp_path / "fe.json")
    assert WavLMFeatureExtractor.from_json_file(tmp_path / "fe.json") == fe
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        WavLMFeatureExtractor.from_json_file(tmp_path / "list.json")
    fe.save_pretrained(tmp_path / "d")
    with pytest.raises(TypeError, match="return_attention_masks.*settings are"):
        WavLMFeatureExtractor.from_pretrained(tmp_path / "d", return_attention_masks=False)
    loaded, unused = WavLMFeatureExtractor.from_pretrained(tmp_path / "d", return_unused_kwargs=True,
                                                           do_normalize=False, bos_token="<s>")
    assert unused == {"bos_token": "<s>"} and not loaded.do_normalize and "bos_token" not in loaded.to_dict()


def test_pad_takes_any_mapping_and_empty_batches():
    from collections import UserDict

    fe = WavLMFeatureExtractor(return_attention_mask=True)
    rows = [np.ones(4, np.float32), np.ones(2, np.float32)]
    for given in (UserDict({"input_values": rows}), [UserDict({"input_values": r}) for r in rows]):
        out = fe.pad(given)
        assert out.input_values.shape == (2, 4) and out.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert fe.pad({"input_values": []}) == {"input_values": [], "attention_mask": []}
    with pytest.raises(ValueError, match="mapping of lists.*got int"):
        fe.pad(3)
