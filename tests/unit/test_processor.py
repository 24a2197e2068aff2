"""Processor, auto loaders and Hub resolution (offline behaviour only: the tests have no network)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from wavlm import (AutoFeatureExtractor, AutoProcessor, AutoTokenizer, Wav2Vec2Processor, WavLMCTCTokenizer,
                   WavLMFeatureExtractor, WavLMProcessor)
from wavlm.hub import resolve_files


@pytest.fixture
def processor(vocab_file):
    return WavLMProcessor(WavLMFeatureExtractor(return_attention_mask=True), WavLMCTCTokenizer(vocab_file))


def test_call_audio_text_and_both(processor):
    assert Wav2Vec2Processor is WavLMProcessor
    audio = [np.ones(8, np.float32), np.ones(5, np.float32)]
    feats = processor(audio, sampling_rate=16000, padding=True, return_tensors="np")
    assert set(feats) == {"input_values", "attention_mask"} and feats.input_values.shape == (2, 8)
    text = processor(text=["HI", "HELLO"])
    assert text.input_ids[0] == processor.tokenizer("HI").input_ids
    both = processor(audio=audio, text=["HI", "HELLO"], sampling_rate=16000, padding=True, return_tensors="np",
                     label_pad_token_id=-100)
    assert set(both) == {"input_values", "attention_mask", "labels"}
    assert both.labels[0].tolist() == processor.tokenizer("HI").input_ids + [-100] * 3
    with pytest.raises(ValueError, match="audio, text or both"):
        processor()


def test_pad_for_ctc_collator(processor):
    feats = [{"input_values": np.ones(6)}, {"input_values": np.ones(3)}]
    labels = [{"input_ids": [5, 6, 7]}, {"input_ids": [5]}]
    batch = processor.pad(feats, labels=labels, return_tensors="np", label_pad_token_id=-100)
    assert batch.input_values.shape == (2, 6) and batch.labels.tolist() == [[5, 6, 7], [5, -100, -100]]
    kept = processor.pad(feats, labels=labels, return_tensors="np")
    assert kept.labels.tolist() == [[5, 6, 7], [5, 0, 0]]  # transformers' default: pad id
    only = processor.pad(labels=labels, return_tensors="np")
    assert only.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_decode_forwards(processor):
    ids = [11, 11, 0, 5, 4, 7]
    assert processor.decode(ids) == processor.tokenizer.decode(ids) == "HE A"
    assert processor.batch_decode([ids]) == ["HE A"]


def test_save_load_and_auto(tmp_path, processor):
    processor.save_pretrained(tmp_path / "p")
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        assert json.loads((tmp_path / "p" / name).read_text())["processor_class"] == "Wav2Vec2Processor"
    loaded = AutoProcessor.from_pretrained(tmp_path / "p")
    assert isinstance(loaded, WavLMProcessor) and loaded.feature_extractor == processor.feature_extractor
    assert loaded.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path / "p"), WavLMFeatureExtractor)
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path / "p"), WavLMCTCTokenizer)
    # a pre-trained-only checkpoint has no tokenizer: AutoProcessor gives the feature extractor
    processor.feature_extractor.save_pretrained(tmp_path / "fe")
    assert isinstance(AutoProcessor.from_pretrained(tmp_path / "fe"), WavLMFeatureExtractor)


def test_auto_rejects_other_classes(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "WhisperFeatureExtractor"}))
    with pytest.raises(ValueError, match="WhisperFeatureExtractor"):
        AutoFeatureExtractor.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    with pytest.raises(ValueError, match="BertTokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_transformers5_processor_config_is_read(tmp_path):
    config = {"feature_extractor": {"return_attention_mask": True, "do_normalize": False,
                                    "feature_extractor_type": "Wav2Vec2FeatureExtractor"},
              "processor_class": "Wav2Vec2Processor"}
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    fe = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert fe.return_attention_mask and not fe.do_normalize


def test_hub_offline_fails_fast_with_a_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OSError, match=r"'someone/not-cached'.*HF_HUB_OFFLINE"):
        resolve_files("someone/not-cached", ["preprocessor_config.json"])
    with pytest.raises(OSError, match="someone/not-cached"):
        AutoProcessor.from_pretrained("someone/not-cached")


def test_hub_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(OSError, match=r"pip install wavlm\[hub\]"):
        resolve_files("microsoft/wavlm-base-plus", ["preprocessor_config.json"])


def test_local_paths_are_not_sent_to_the_hub(tmp_path):
    with pytest.raises(OSError, match="no such directory"):
        resolve_files(str(tmp_path / "missing"), ["vocab.json"])
    assert resolve_files(tmp_path, ["vocab.json"]) == tmp_path


def test_keywords_are_routed_and_checked(tmp_path, processor):
    audio = [np.ones(8, np.float32), np.ones(5, np.float32)]
    both = processor(audio=audio, text=["HI", "HELLO"], sampling_rate=16000, padding="max_length", max_length=10,
                     return_tensors="np")
    assert both.input_values.shape == (2, 10) and both.labels.shape == (2, 10)  # max_length reaches both parts
    with pytest.raises(TypeError, match="paddding"):
        processor(audio=audio, sampling_rate=16000, paddding=True)
    with pytest.raises(ValueError, match="padding given both in text_kwargs"):
        processor(text=["HI"], padding=True, text_kwargs={"padding": "longest"})
    with pytest.raises(ValueError, match="pass text="):
        processor("HELLO")
    assert processor.model_input_names == ["input_values", "attention_mask", "labels"]
    assert processor.to_dict()["feature_extractor"]["return_attention_mask"] is True
    processor.save_pretrained(tmp_path / "p")
    loaded = WavLMProcessor.from_pretrained(tmp_path / "p", bos_token="(BOS)", do_normalize=False)
    assert loaded.tokenizer.bos_token == "(BOS)" and loaded.tokenizer.bos_token_id == 32
    assert not loaded.feature_extractor.do_normalize and "bos_token" not in loaded.feature_extractor.to_dict()


def test_auto_loaders_accept_transformers_selection_flags(tmp_path, processor):
    processor.save_pretrained(tmp_path / "p")
    flags = dict(trust_remote_code=True, use_fast=False)
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path / "p", **flags), WavLMCTCTokenizer)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path / "p", **flags), WavLMProcessor)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path / "p", trust_remote_code=True),
                      WavLMFeatureExtractor)
    saved = json.loads((tmp_path / "p" / "tokenizer_config.json").read_text())
    AutoTokenizer.from_pretrained(tmp_path / "p", **flags).save_pretrained(tmp_path / "q")
    again = json.loads((tmp_path / "q" / "tokenizer_config.json").read_text())
    assert again == saved and "use_fast" not in again and "trust_remote_code" not in again
