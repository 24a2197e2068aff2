"""Auto loaders: pick the feature extractor, tokenizer or processor class from the files in a directory / Hub repo.

Mirrors transformers' AutoProcessor / AutoFeatureExtractor / AutoTokenizer for the classes this package has.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wavlm.config import read_json_object
from wavlm.features import CONFIG_NAME, PROCESSOR_CONFIG_NAME, WavLMFeatureExtractor, load_feature_extractor_config
from wavlm.hub import IGNORED_FLAGS, hub_options
from wavlm.processor import WavLMProcessor
from wavlm.tokenizer import TOKENIZER_CONFIG_NAME, VOCAB_NAME, WavLMCTCTokenizer

_FEATURE_EXTRACTORS = {"Wav2Vec2FeatureExtractor", "WavLMFeatureExtractor"}
_TOKENIZERS = {"Wav2Vec2CTCTokenizer", "WavLMCTCTokenizer"}
_PROCESSORS = {"Wav2Vec2Processor", "WavLMProcessor"}
# transformers' Auto* flags: `use_fast` chooses among implementations (wavlm has one of each), the others mean
# nothing here (wavlm never runs Hub code)
_AUTO_FLAGS = ("use_fast", *IGNORED_FLAGS)


def _split_hub(kwargs: dict[str, Any]) -> dict[str, Any]:
    return hub_options(kwargs, drop=_AUTO_FLAGS)


def _read_json(directory: Path, name: str) -> dict[str, Any]:
    file = directory / name
    return read_json_object(file, "a settings") if file.is_file() else {}


class AutoFeatureExtractor:
    """`AutoFeatureExtractor.from_pretrained(dir_or_hub_id)` -> `WavLMFeatureExtractor`."""

    def __init__(self) -> None:
        raise TypeError("use AutoFeatureExtractor.from_pretrained(dir_or_hub_id)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> WavLMFeatureExtractor:
        """Read preprocessor_config.json (or processor_config.json); keywords override saved values."""
        hub = _split_hub(kwargs)
        config = load_feature_extractor_config(pretrained_model_name_or_path, **hub)
        kind = config.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if kind not in _FEATURE_EXTRACTORS:
            raise ValueError(f"{pretrained_model_name_or_path} holds a {kind}; wavlm supports "
                             f"{sorted(_FEATURE_EXTRACTORS)} (raw-waveform models)")
        return WavLMFeatureExtractor.from_dict(config, **kwargs)


class AutoTokenizer:
    """`AutoTokenizer.from_pretrained(dir_or_hub_id)` -> `WavLMCTCTokenizer`."""

    def __init__(self) -> None:
        raise TypeError("use AutoTokenizer.from_pretrained(dir_or_hub_id)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> WavLMCTCTokenizer:
        """Read tokenizer_config.json to check the class, then load vocab.json and the rest."""
        from wavlm.hub import resolve_files

        hub = _split_hub(kwargs)
        directory = resolve_files(pretrained_model_name_or_path, [TOKENIZER_CONFIG_NAME, VOCAB_NAME], **hub)
        kind = _read_json(directory, TOKENIZER_CONFIG_NAME).get("tokenizer_class") or "Wav2Vec2CTCTokenizer"
        if kind not in _TOKENIZERS:
            raise ValueError(f"{pretrained_model_name_or_path} holds a {kind}; wavlm supports {sorted(_TOKENIZERS)}")
        return WavLMCTCTokenizer.from_pretrained(pretrained_model_name_or_path, **hub, **kwargs)


class AutoProcessor:
    """`AutoProcessor.from_pretrained(dir_or_hub_id)` -> `WavLMProcessor`, or the feature extractor alone when
    the source has no tokenizer (pre-trained-only checkpoints such as microsoft/wavlm-base-plus)."""

    def __init__(self) -> None:
        raise TypeError("use AutoProcessor.from_pretrained(dir_or_hub_id)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike,
                        **kwargs: Any) -> WavLMProcessor | WavLMFeatureExtractor:
        """Pick the class from processor_class / the files present; keywords go as in `WavLMProcessor`."""
        from wavlm.hub import resolve_files

        hub = _split_hub(kwargs)
        directory = resolve_files(pretrained_model_name_or_path,
                                  [CONFIG_NAME, PROCESSOR_CONFIG_NAME, TOKENIZER_CONFIG_NAME, VOCAB_NAME], **hub)
        for name in (PROCESSOR_CONFIG_NAME, CONFIG_NAME, TOKENIZER_CONFIG_NAME):
            kind = _read_json(directory, name).get("processor_class")
            if kind and kind not in _PROCESSORS:
                raise ValueError(f"{pretrained_model_name_or_path} holds a {kind}; wavlm supports {sorted(_PROCESSORS)}")
        if (directory / VOCAB_NAME).is_file():
            return WavLMProcessor.from_pretrained(pretrained_model_name_or_path, **hub, **kwargs)
        kwargs.pop("target_lang", None)
        return AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **hub, **kwargs)
