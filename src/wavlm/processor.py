"""Processor: a feature extractor (audio -> input_values) and a CTC tokenizer (text <-> labels) in one object.

Saved as transformers' `Wav2Vec2Processor` saves it, so either library loads the other's directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from wavlm.features import CONFIG_NAME, FIELDS, BatchFeature, WavLMFeatureExtractor, load_feature_extractor_config
from wavlm.hub import hub_options
from wavlm.tokenizer import TOKENIZER_CONFIG_NAME, WavLMCTCTokenizer, check_vocab_matches, labels_with_ignore_index

HF_PROCESSOR_CLASS = "Wav2Vec2Processor"
# Keyword arguments of __call__ that reach the feature extractor / the tokenizer (transformers' audio_kwargs and
# text_kwargs); a keyword in both lists goes to both.
AUDIO_KWARGS = ("sampling_rate", "padding", "max_length", "truncation", "pad_to_multiple_of", "return_attention_mask",
                "return_tensors")
TEXT_KWARGS = ("text_pair", "text_target", "text_pair_target", "add_special_tokens", "padding", "truncation",
               "max_length", "stride", "is_split_into_words", "pad_to_multiple_of", "padding_side", "return_tensors",
               "return_token_type_ids", "return_attention_mask", "return_overflowing_tokens",
               "return_special_tokens_mask", "return_offsets_mapping", "return_length", "verbose",
               "split_special_tokens")
_FE_PAD_KWARGS = ("padding", "max_length", "truncation", "pad_to_multiple_of", "return_attention_mask",
                  "return_tensors")
_TOKENIZER_PAD_KWARGS = ("padding", "max_length", "pad_to_multiple_of", "padding_side", "return_attention_mask",
                         "return_tensors", "verbose")
# Settings of the tokenizer that share a name with a feature extractor setting: from_pretrained passes them to both.
_SHARED_SETTINGS = ("padding_side",)


def _split_kwargs(kwargs: dict[str, Any], groups: dict[str, tuple[str, ...]], where: str) -> dict[str, dict]:
    unknown = sorted(k for k in kwargs if not any(k in keys for keys in groups.values()))
    if unknown:
        valid = sorted({k for keys in groups.values() for k in keys})
        raise TypeError(f"{where} got unexpected keyword argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return {name: {k: v for k, v in kwargs.items() if k in keys} for name, keys in groups.items()}


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
        """What the model takes: the feature extractor's inputs and `labels` (as transformers lists them)."""
        return [*self.feature_extractor.model_input_names, "labels"]

    def __call__(
        self,
        audio: Any = None,
        text: Any = None,
        *,
        label_pad_token_id: int | None = None,
        audio_kwargs: dict[str, Any] | None = None,
        text_kwargs: dict[str, Any] | None = None,
        common_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Extract features from `audio`, encode `text`, or both (then the ids come back as `labels`).

        Args:
            audio: waveform(s) as accepted by `WavLMFeatureExtractor.__call__`.
            text: transcript(s) as accepted by `WavLMCTCTokenizer.__call__`.
            kwargs: `sampling_rate` goes to the feature extractor; `padding`, `max_length`, `truncation`,
                `pad_to_multiple_of`, `return_attention_mask` and `return_tensors` to both (so
                `padding="max_length", max_length=20` pads the labels to 20 too); the tokenizer's own options
                (`add_special_tokens`, `padding_side`, `return_length`, ...) to the tokenizer. Any other keyword
                raises TypeError naming it (transformers warns and ignores it).
            audio_kwargs / text_kwargs / common_kwargs: per-part options as in transformers; a keyword given both
                here and directly raises ValueError.
            label_pad_token_id: value for padded label positions; None keeps the tokenizer's pad id (as
                transformers does), -100 gives labels that a CTC loss ignores in any version.

        Returns:
            audio only: `input_values` (+ `attention_mask`); text only: `input_ids`, `attention_mask`;
            both: the audio fields plus `labels`.
        """
        if audio is None and text is None:
            raise ValueError("pass audio, text or both")
        if isinstance(audio, str) and text is None:
            raise ValueError("the first argument is audio; to encode a transcript pass text=...")
        direct = _split_kwargs(kwargs, {"audio": AUDIO_KWARGS, "text": TEXT_KWARGS}, "processor()")
        parts: dict[str, dict[str, Any]] = {"audio": {}, "text": {}}
        for name, given, valid in (("audio", audio_kwargs, AUDIO_KWARGS), ("text", text_kwargs, TEXT_KWARGS)):
            parts[name].update({k: v for k, v in (common_kwargs or {}).items() if k in valid})
            given = dict(given or {})
            _split_kwargs(given, {name: valid}, f"{name}_kwargs")
            twice = sorted(set(given) & set(kwargs))
            if twice:
                raise ValueError(f"{', '.join(twice)} given both in {name}_kwargs and as keyword argument(s)")
            parts[name].update(given)
            parts[name].update(direct[name])
        features = None
        if audio is not None:
            features = self.feature_extractor(audio, **parts["audio"])
        if text is None:
            return features
        encodings = self.tokenizer(text, **parts["text"])
        if label_pad_token_id is not None:
            encodings["input_ids"] = _replace_padding(encodings, label_pad_token_id)
        if features is None:
            return encodings
        features["labels"] = encodings["input_ids"]
        return features

    def pad(self, *args: Any, input_features: Any = None, labels: Any = None, label_pad_token_id: int | None = None,
            **kwargs: Any) -> BatchFeature:
        """Pad a batch for training, e.g. in a CTC data collator.

        Args:
            input_features (or the first positional argument): as accepted by `WavLMFeatureExtractor.pad`
                (e.g. a list of {"input_values": ...} mappings); further positional arguments go to it too.
            labels: as accepted by `WavLMCTCTokenizer.pad` (a list of {"input_ids": [...]} mappings or id lists).
            kwargs: `padding`, `max_length`, `pad_to_multiple_of`, `return_attention_mask`, `return_tensors` go to
                both pads; `truncation` to the features only, `padding_side` to the labels only.
            label_pad_token_id: value for padded label positions (-100 to have them ignored by the loss);
                None keeps the pad id, as transformers does.

        Returns:
            features only: padded features; labels only: padded `input_ids` + `attention_mask`;
            both: padded features with `labels`.
        """
        if args:
            input_features, args = args[0], args[1:]
        if input_features is None and labels is None:
            raise ValueError("pass input_features, labels or both")
        split = _split_kwargs(kwargs, {"features": _FE_PAD_KWARGS, "labels": _TOKENIZER_PAD_KWARGS}, "pad()")
        features = None
        if input_features is not None:
            features = self.feature_extractor.pad(input_features, *args, **split["features"])
        if labels is None:
            return features
        encodings = self.tokenizer.pad(labels, **split["labels"])
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

    # --------------------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        """The processor as transformers 5 serialises it: {"feature_extractor": {...}, "processor_class": ...}."""
        return {"feature_extractor": self.feature_extractor.to_dict(), "processor_class": HF_PROCESSOR_CLASS}

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        Path(json_file_path).write_text(self.to_json_string(), encoding="utf-8")

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False) -> list[str]:
        """Write preprocessor_config.json and the tokenizer files, both tagged with `processor_class`.

        preprocessor_config.json (rather than transformers 5's processor_config.json) is read by transformers 4
        and 5 alike.
        """
        if push_to_hub:
            raise NotImplementedError("push_to_hub is not supported; save locally and upload with huggingface_hub")
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
        """Load both parts from one directory or Hub id.

        Hub options (revision, cache_dir, token, local_files_only) go to both parts; settings of the feature
        extractor (`do_normalize`, `return_attention_mask`, ...) to it; everything else (`bos_token`,
        `target_lang`, `do_lower_case`, ...) to the tokenizer, as in transformers.
        """
        hub = hub_options(kwargs)
        fe_config = load_feature_extractor_config(pretrained_model_name_or_path, **hub)
        fe_keys = set(FIELDS) | set(fe_config)
        fe_kwargs = {k: v for k, v in kwargs.items() if k in fe_keys}
        tok_kwargs = {k: v for k, v in kwargs.items() if k not in fe_keys or k in _SHARED_SETTINGS}
        feature_extractor = WavLMFeatureExtractor.from_dict(fe_config, **fe_kwargs)
        tokenizer = WavLMCTCTokenizer.from_pretrained(pretrained_model_name_or_path, **hub, **tok_kwargs)
        _check_against_model(pretrained_model_name_or_path, tokenizer, hub)
        return cls(feature_extractor=feature_extractor, tokenizer=tokenizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(feature_extractor={self.feature_extractor!r}, tokenizer={self.tokenizer!r})"


Wav2Vec2Processor = WavLMProcessor


def _check_against_model(source: str | os.PathLike, tokenizer: WavLMCTCTokenizer, hub: dict[str, Any]) -> None:
    """When the processor's directory also holds a CTC model (config.json naming a ...ForCTC class), its tokenizer
    must cover the model's outputs (`check_vocab_matches`). A config.json that does not load is left to the model
    loader to report: the processor does not need it."""
    from wavlm.config import ConfigError, WavLMConfig
    from wavlm.hub import resolve_files

    try:
        file = Path(resolve_files(source, ["config.json"], **hub)) / "config.json"
        config = WavLMConfig.from_json_file(file) if file.is_file() else None
    except (OSError, ConfigError):
        return
    if config is not None and any(str(a).endswith("ForCTC") for a in config.architectures or []):
        check_vocab_matches(config, tokenizer, f"the tokenizer in {source}")


def _replace_padding(encodings: BatchFeature, value: int) -> Any:
    ids, mask = encodings["input_ids"], encodings["attention_mask"]
    if isinstance(ids, list):  # lists (return_tensors=None): flat for one string, nested for a batch
        if ids and isinstance(ids[0], list):
            return [[i if m else value for i, m in zip(r, rm)] for r, rm in zip(ids, mask)]
        return [i if m else value for i, m in zip(ids, mask)]
    return labels_with_ignore_index(ids, mask, value)
