"""Processor: a feature extractor (audio -> input_values) and a CTC tokenizer (text <-> labels) in one object.

Saved as transformers' `Wav2Vec2Processor` saves it, so either library loads the other's directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wavlm.features import CONFIG_NAME, BatchFeature, WavLMFeatureExtractor
from wavlm.tokenizer import TOKENIZER_CONFIG_NAME, WavLMCTCTokenizer, labels_with_ignore_index

HF_PROCESSOR_CLASS = "Wav2Vec2Processor"


class WavLMProcessor:
    """Feature extractor plus CTC tokenizer, with the API of transformers' `Wav2Vec2Processor`.

    Attributes:
        feature_extractor: a `WavLMFeatureExtractor`.
        tokenizer: a `WavLMCTCTokenizer`.
    """

    def __init__(self, feature_extractor: WavLMFeatureExtractor, tokenizer: WavLMCTCTokenizer) -> None:
        if not isinstance(feature_extractor, WavLMFeatureExtractor):
            raise TypeError(f"feature_extractor must be a WavLMFeatureExtractor, got {type(feature_extractor).__name__}")
        if not isinstance(tokenizer, WavLMCTCTokenizer):
            raise TypeError(f"tokenizer must be a WavLMCTCTokenizer, got {type(tokenizer).__name__}")
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    @property
    def model_input_names(self) -> list[str]:
        return list(self.feature_extractor.model_input_names)

    def __call__(
        self,
        audio: Any = None,
        text: str | list[str] | None = None,
        *,
        sampling_rate: int | None = None,
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        label_pad_token_id: int | None = None,
    ) -> BatchFeature:
        """Extract features from `audio`, encode `text`, or both (then the ids come back as `labels`).

        Args:
            audio: waveform(s) as accepted by `WavLMFeatureExtractor.__call__`.
            text: transcript(s) as accepted by `WavLMCTCTokenizer.__call__`.
            sampling_rate: rate of `audio` in Hz.
            padding, return_tensors: apply to both audio and labels. max_length, truncation,
                pad_to_multiple_of and return_attention_mask apply to the audio.
            label_pad_token_id: value for padded label positions; None keeps the tokenizer's pad id (as
                transformers does), -100 gives labels that a CTC loss ignores in any version.

        Returns:
            audio only: `input_values` (+ `attention_mask`); text only: `input_ids`, `attention_mask`;
            both: the audio fields plus `labels`.
        """
        if audio is None and text is None:
            raise ValueError("pass audio, text or both")
        features = None
        if audio is not None:
            features = self.feature_extractor(
                audio, sampling_rate=sampling_rate, padding=padding, max_length=max_length, truncation=truncation,
                pad_to_multiple_of=pad_to_multiple_of, return_attention_mask=return_attention_mask,
                return_tensors=return_tensors)
        if text is None:
            return features
        encodings = self.tokenizer(text, padding=padding, return_tensors=return_tensors)
        if label_pad_token_id is not None:
            encodings["input_ids"] = _replace_padding(encodings, label_pad_token_id)
        if features is None:
            return encodings
        features["labels"] = encodings["input_ids"]
        return features

    def pad(
        self,
        input_features: Any = None,
        labels: Any = None,
        *,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        label_pad_token_id: int | None = None,
    ) -> BatchFeature:
        """Pad a batch for training, e.g. in a CTC data collator.

        Args:
            input_features: as accepted by `WavLMFeatureExtractor.pad` (a list of {"input_values": ...} dicts).
            labels: as accepted by `WavLMCTCTokenizer.pad` (a list of {"input_ids": [...]} dicts or id lists).
            label_pad_token_id: value for padded label positions (-100 to have them ignored by the loss);
                None keeps the pad id, as transformers does.

        Returns:
            features only: padded features; labels only: padded `input_ids` + `attention_mask`;
            both: padded features with `labels`.
        """
        if input_features is None and labels is None:
            raise ValueError("pass input_features, labels or both")
        features = None
        if input_features is not None:
            features = self.feature_extractor.pad(
                input_features, padding=padding, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                return_attention_mask=return_attention_mask, return_tensors=return_tensors)
        if labels is None:
            return features
        encodings = self.tokenizer.pad(labels, padding=padding, return_tensors=return_tensors)
        if label_pad_token_id is not None:
            encodings["input_ids"] = _replace_padding(encodings, label_pad_token_id)
        if features is None:
            return encodings
        features["labels"] = encodings["input_ids"]
        return features

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        """`WavLMCTCTokenizer.batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        """`WavLMCTCTokenizer.decode`."""
        return self.tokenizer.decode(*args, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike) -> list[str]:
        """Write preprocessor_config.json and the tokenizer files, both tagged with `processor_class`."""
        written = self.feature_extractor.save_pretrained(save_directory)
        written += self.tokenizer.save_pretrained(save_directory)
        # processor_class lets transformers' AutoProcessor pick Wav2Vec2Processor without a config.json.
        for name in (CONFIG_NAME, TOKENIZER_CONFIG_NAME):
            file = Path(save_directory) / name
            config = json.loads(file.read_text(encoding="utf-8"))
            config["processor_class"] = HF_PROCESSOR_CLASS
            file.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        return written

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> WavLMProcessor:
        """Load both parts from one directory or Hub id; hub keywords (revision, cache_dir, token,
        local_files_only) go to both, `target_lang` to the tokenizer, other keywords to the feature extractor."""
        hub_keys = ("revision", "cache_dir", "token", "local_files_only")
        hub = {k: kwargs.pop(k) for k in hub_keys if k in kwargs}
        tok_kwargs = {k: kwargs.pop(k) for k in ("target_lang", "do_lower_case") if k in kwargs}
        feature_extractor = WavLMFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **hub, **kwargs)
        tokenizer = WavLMCTCTokenizer.from_pretrained(pretrained_model_name_or_path, **hub, **tok_kwargs)
        return cls(feature_extractor=feature_extractor, tokenizer=tokenizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(feature_extractor={self.feature_extractor!r}, tokenizer={self.tokenizer!r})"


Wav2Vec2Processor = WavLMProcessor


def _replace_padding(encodings: BatchFeature, value: int) -> Any:
    ids, mask = encodings["input_ids"], encodings["attention_mask"]
    if isinstance(ids, list):  # lists (return_tensors=None): flat for one string, nested for a batch
        if ids and isinstance(ids[0], list):
            return [[i if m else value for i, m in zip(r, rm)] for r, rm in zip(ids, mask)]
        return [i if m else value for i, m in zip(ids, mask)]
    return labels_with_ignore_index(ids, mask, value)
