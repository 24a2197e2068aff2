"""Waveform feature extractor: per-utterance normalisation, padding and sample-level attention masks.

Reads and writes `preprocessor_config.json` in the format of transformers' `Wav2Vec2FeatureExtractor`.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wavlm.config import ConfigError, read_json_object
from wavlm.hub import hub_options

CONFIG_NAME = "preprocessor_config.json"
PROCESSOR_CONFIG_NAME = "processor_config.json"
# Written into preprocessor_config.json so that transformers' AutoFeatureExtractor picks its own class.
HF_FEATURE_EXTRACTOR_TYPE = "Wav2Vec2FeatureExtractor"
_NORM_EPS = 1e-7  # parity: transformers adds 1e-7 to the (biased) variance
FIELDS = ("feature_size", "sampling_rate", "padding_value", "return_attention_mask", "do_normalize", "padding_side")


def _is_torch(x: Any) -> bool:
    # Checked by module name so that torch is never imported just to test a type.
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class BatchFeature(dict):
    """A dict of model inputs with attribute access (`batch.input_values`) and `.to(device)` for torch tensors.

    Values are lists of numpy arrays, stacked numpy arrays or torch tensors, depending on `tensor_type`
    (None, "np" or "pt"). `model(**batch)` works because this is a plain dict underneath.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, tensor_type: str | None = None,
                 skip_tensor_conversion: Sequence[str] | None = None) -> None:
        super().__init__(data or {})
        self.skip_tensor_conversion = set(skip_tensor_conversion or ())
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str) -> Any:
        # Dunder lookups (copy, pickle) must fall through to AttributeError, not to a key.
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchFeature has no field {name!r}; fields: {list(self)}") from None

    @property
    def data(self) -> dict[str, Any]:
        """The fields as a plain dict (transformers' `BatchFeature.data`)."""
        return dict(self)

    def convert_to_tensors(self, tensor_type: str | None = None,
                           skip_tensor_conversion: Sequence[str] | None = None) -> BatchFeature:
        """Stack every field into one array per key: "np" -> numpy, "pt" -> torch, None -> unchanged.

        Fields in `skip_tensor_conversion` and fields that hold no numbers (strings, dicts) are left as they are.
        Raises ValueError naming the field when its rows have different lengths (pass `padding=True`).
        """
        if tensor_type is None:
            return self
        tensor_type = str(getattr(tensor_type, "value", tensor_type))
        if tensor_type not in ("np", "pt"):
            raise ValueError(f"return_tensors must be 'np', 'pt' or None, got {tensor_type!r}")
        skip = self.skip_tensor_conversion | set(skip_tensor_conversion or ())
        for key, value in self.items():
            if key not in skip and _is_numeric(value):
                self[key] = _stack(key, value, tensor_type)
        return self

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Move torch tensors to a device and/or cast floating tensors to a dtype (like `Tensor.to`).

        Integer tensors (attention masks, labels) keep their dtype when a floating dtype is given.
        """
        import torch

        dtype = next((a for a in args if isinstance(a, torch.dtype)), kwargs.get("dtype"))
        device = next((a for a in args if not isinstance(a, torch.dtype)), kwargs.get("device"))
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype=dtype)
                if device is not None:
                    value = value.to(device=device)
                self[key] = value
        return self

    def __repr__(self) -> str:
        return f"BatchFeature({dict.__repr__(self)})"


def _is_numeric(value: Any) -> bool:
    """Arrays, tensors, numbers and (nested) lists of them; not strings, dicts or None."""
    while isinstance(value, (list, tuple)):
        if not value:
            return True
        value = value[0]
    return isinstance(value, (int, float, np.ndarray, np.number)) or _is_torch(value)


def _stack(key: str, value: Any, tensor_type: str) -> Any:
    if tensor_type == "pt":
        import torch

        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            value = [v.detach().cpu().numpy() for v in value]
    if isinstance(value, np.ndarray) and value.dtype != object:
        array = value
    else:
        rows = [_to_numpy(v) for v in value] if isinstance(value, (list, tuple)) else [_to_numpy(value)]
        shapes = {r.shape for r in rows}
        if len(shapes) > 1:
            lengths = [r.shape[0] if r.ndim else 1 for r in rows]
            raise ValueError(f"cannot stack {key!r}: its rows have different lengths {lengths}; pass padding=True "
                             f"(or padding='max_length' with max_length and truncation=True)")
        array = np.stack(rows) if isinstance(value, (list, tuple)) else rows[0]
    if tensor_type == "np":
        return array
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _padding_strategy(padding: bool | str) -> str:
    strategy = getattr(padding, "value", padding)  # accept transformers' PaddingStrategy enum too
    if strategy is True or strategy == "longest":
        return "longest"
    if strategy is False or strategy is None or strategy == "do_not_pad":
        return "do_not_pad"
    if strategy == "max_length":
        return "max_length"
    raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")


def check_lengths(max_length: Any, pad_to_multiple_of: Any) -> None:
    """`max_length` (>= 0) and `pad_to_multiple_of` (>= 1) are integers or None; ValueError naming them (a negative
    max_length would cut samples off the end, a zero multiple divide by zero)."""
    for name, value, least in (("max_length", max_length, 0), ("pad_to_multiple_of", pad_to_multiple_of, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least):
            what = "a non-negative" if least == 0 else "a positive"
            raise ValueError(f"{name} must be {what} integer or None, got {value!r}")


def pad_sequences(
    sequences: Sequence[np.ndarray],
    padding: bool | str = True,
    max_length: int | None = None,
    truncation: bool = False,
    pad_to_multiple_of: int | None = None,
    padding_value: float = 0.0,
    padding_side: str = "right",
) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Truncate and pad 1-D sequences to a common length, with transformers' `pad` semantics.

    Returns (padded sequences, int32 masks with 1 = real element, resolved strategy). Order: truncate to
    `max_length` (rounded up to `pad_to_multiple_of`), then pad to the longest / `max_length`, rounded up
    to `pad_to_multiple_of`. A sequence longer than the target without `truncation` is left as is.
    """
    strategy = _padding_strategy(padding)
    check_lengths(max_length, pad_to_multiple_of)
    if strategy == "max_length" and max_length is None:
        raise ValueError("padding='max_length' needs max_length")
    if truncation and max_length is None:
        raise ValueError("truncation=True needs max_length")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")

    def round_up(n: int) -> int:
        if pad_to_multiple_of and n % pad_to_multiple_of:
            return (n // pad_to_multiple_of + 1) * pad_to_multiple_of
        return n

    seqs = list(sequences)
    if truncation:
        limit = round_up(max_length)
        seqs = [s[:limit] for s in seqs]
    if strategy == "longest":
        target = round_up(max((len(s) for s in seqs), default=0))
    elif strategy == "max_length":
        target = round_up(max_length)
    else:
        target = None

    padded, masks = [], []
    for s in seqs:
        n = len(s)
        missing = 0 if target is None else max(target - n, 0)
        mask = np.ones(n + missing, dtype=np.int32)
        if missing:
            fill = np.full(missing, padding_value, dtype=s.dtype)
            if padding_side == "right":
                s, mask[n:] = np.concatenate([s, fill]), 0
            else:
                s, mask[:missing] = np.concatenate([fill, s]), 0
        padded.append(s)
        masks.append(mask)
    return padded, masks, strategy


class WavLMFeatureExtractor:
    """Turns raw 16 kHz mono waveforms into WavLM `input_values` (and optionally `attention_mask`).

    Compatible with transformers' `Wav2Vec2FeatureExtractor`: same arguments, same outputs (to float32
    rounding) and the same `preprocessor_config.json`. Deliberate differences, each documented where it
    happens: NaN/inf samples raise instead of propagating; ragged batches with `return_tensors` raise
    instead of building an object array; left padding normalises the real samples (transformers normalises
    the first `length` samples, i.e. partly the padding); integer input is cast to float32 unscaled even
    without normalisation (transformers leaves it as integers); a (batch, samples) tensor is a batch; keywords
    it does not take raise TypeError (transformers ignores them).

    Args:
        feature_size: channels per time step; must be 1 (raw mono waveform).
        sampling_rate: rate in Hz the model was trained at; inputs at another rate are rejected.
        padding_value: value written into padded positions.
        return_attention_mask: default for `__call__`/`pad`. Should be True for models with
            `feat_extract_norm="layer"` (large); group-norm (base) checkpoints were trained without it.
        do_normalize: zero-mean unit-variance normalisation of each utterance over its real samples.
        padding_side: "right" (default) or "left".
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        return_attention_mask: bool = False,
        do_normalize: bool = True,
        padding_side: str = "right",
        **kwargs: Any,
    ) -> None:
        settings = check_settings(dict(feature_size=feature_size, sampling_rate=sampling_rate,
                                       padding_value=padding_value, return_attention_mask=return_attention_mask,
                                       do_normalize=do_normalize, padding_side=padding_side))
        self.feature_size = settings["feature_size"]
        self.sampling_rate = settings["sampling_rate"]
        self.padding_value = settings["padding_value"]
        self.return_attention_mask = settings["return_attention_mask"]
        self.do_normalize = settings["do_normalize"]
        self.padding_side = settings["padding_side"]
        kwargs.pop("feature_extractor_type", None)  # always written back as HF_FEATURE_EXTRACTOR_TYPE
        kwargs.pop("processor_class", None)  # belongs to the processor, which writes it (as transformers does)
        # Unknown keys of a saved file (auto_map, ...) are kept and written back, never dropped.
        self.extra_config: dict[str, Any] = kwargs
        self._warned_no_rate = False

    # ----------------------------------------------------------------------------------------- calling
    def __call__(
        self,
        raw_speech: Any,
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        sampling_rate: int | None = None,
    ) -> BatchFeature:
        """Normalise and pad one utterance or a batch.

        Args:
            raw_speech: one utterance (1-D array/tensor or list of floats) or a batch (list of those, or a
                2-D array/tensor of shape (batch, samples): rows are utterances, not channels; mix
                multi-channel audio down first, as `wavlm.load_audio` does). Floats in [-1, 1]; float64 and
                integer input are cast to float32 (integers unscaled, as transformers does).
            padding: True/"longest", "max_length" (needs `max_length`) or False/"do_not_pad".
            max_length: target length in samples for "max_length" padding and for truncation.
            truncation: cut utterances longer than `max_length`.
            pad_to_multiple_of: round the padded length up to a multiple of this.
            return_attention_mask: override `self.return_attention_mask`.
            return_tensors: None (lists of float32 arrays), "np" (B, S) arrays or "pt" torch tensors.
            sampling_rate: rate of `raw_speech` in Hz; must equal `self.sampling_rate`.

        Returns:
            BatchFeature with `input_values` (B, S) float32 and, if asked, `attention_mask` (B, S) int32
            with 1 for real samples.
        """
        if sampling_rate is None:
            if not self._warned_no_rate:
                warnings.warn(f"no sampling_rate passed to {type(self).__name__}; pass sampling_rate="
                              f"{self.sampling_rate} so that audio at a wrong rate is caught", UserWarning,
                              stacklevel=2)
                self._warned_no_rate = True
        elif not _same_rate(sampling_rate, self.sampling_rate):
            raise ValueError(f"audio sampled at {sampling_rate} Hz, but this feature extractor expects "
                             f"{self.sampling_rate} Hz: resample first, e.g. wavlm.load_audio(path, "
                             f"sampling_rate={self.sampling_rate}) or soxr.resample(x, {sampling_rate}, "
                             f"{self.sampling_rate})")
        utterances = _as_utterances(raw_speech)
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask
        values, masks, strategy = pad_sequences(
            utterances, padding, max_length, truncation, pad_to_multiple_of, self.padding_value, self.padding_side)
        if self.do_normalize:
            # parity: the mask restricts the statistics only when one is returned and padding happened;
            # otherwise transformers normalises the whole (possibly padded) vector, and so do we.
            use_mask = return_attention_mask and strategy != "do_not_pad"
            values = [self._normalize(v, m if use_mask else None) for v, m in zip(values, masks)]
            for i, v in enumerate(values):
                if not np.isfinite(v).all():
                    raise ValueError(f"utterance {i} is too large to normalise in float32 (max |x| = "
                                     f"{np.abs(utterances[i]).max():.3g}); expected samples in [-1, 1]")
        if not self.do_normalize and return_tensors is None and len({len(v) for v in values}) == 1:
            # parity: without normalisation transformers returns its padded (B, S) array, not a list of rows
            values = np.stack(values)
        data: dict[str, Any] = {"input_values": values}
        if return_attention_mask:
            data["attention_mask"] = masks
        return BatchFeature(data, tensor_type=return_tensors)

    def _normalize(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by the caller
            return self._normalize_unchecked(x, mask)

    def _normalize_unchecked(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            if x.size == 0:
                return x
            return _standardise(x)
        real = mask.astype(bool)
        out = np.full_like(x, self.padding_value)
        if real.any():
            # Padding is contiguous at one end, so the real samples are one slice (left or right padding).
            start, stop = int(np.argmax(real)), len(real) - int(np.argmax(real[::-1]))
            out[start:stop] = _standardise(x[start:stop])
        return out

    def pad(
        self,
        processed_features: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Pad already-extracted features (no normalisation), e.g. in a data collator.

        Args:
            processed_features: a BatchFeature or any mapping of lists (`{"input_values": [...], ...}`), or a list
                of per-utterance mappings. A given `attention_mask` is kept (and padded with zeros); other keys
                are stacked as given.
            return_tensors: None infers it ("pt" for torch input, else "np"; lists when left ragged).

        Returns:
            BatchFeature with padded `input_values` and, if asked (default: `self.return_attention_mask`, or
            when the input had one), `attention_mask` int32.
        """
        key = self.model_input_names[0]
        if isinstance(processed_features, (list, tuple)) and processed_features and \
                all(isinstance(f, Mapping) for f in processed_features):
            batch = {k: [f[k] for f in processed_features] for k in processed_features[0]}
        elif isinstance(processed_features, Mapping):
            batch = dict(processed_features)
        else:
            raise ValueError(f"pad() takes a mapping of lists (e.g. a BatchFeature) or a list of mappings such as "
                             f"[{{'{key}': x}}, ...], got {type(processed_features).__name__}")
        if key not in batch:
            raise ValueError(f"pad() needs the key {key!r}, got keys {list(batch)}")
        rows = batch[key]
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask or "attention_mask" in batch
        if len(rows) == 0:
            if return_attention_mask:
                batch["attention_mask"] = []
            return BatchFeature(batch)
        if return_tensors is None:
            return_tensors = "pt" if _is_torch(rows[0]) or _is_torch(rows) else "np"
        utterances = [_as_float32(_to_numpy(r), i) for i, r in enumerate(rows)]
        values, masks, _ = pad_sequences(utterances, padding, max_length, truncation, pad_to_multiple_of,
                                         self.padding_value, self.padding_side)
        if "attention_mask" in batch:
            given, _, _ = pad_sequences([_to_numpy(m).astype(np.int32) for m in batch["attention_mask"]],
                                        padding, max_length, truncation, pad_to_multiple_of, 0, self.padding_side)
            masks = given
        out: dict[str, Any] = {k: v for k, v in batch.items() if k not in (key, "attention_mask")}
        out[key] = values
        if return_attention_mask:
            out["attention_mask"] = masks
        if len({len(v) for v in values}) > 1:
            return BatchFeature(out)  # left ragged on purpose (padding=False): nothing to stack
        return BatchFeature(out, tensor_type=return_tensors)

    # -------------------------------------------------------------------------------------- config I/O
    def to_dict(self) -> dict[str, Any]:
        """The `preprocessor_config.json` content (transformers' key names)."""
        return {
            **self.extra_config,
            "do_normalize": self.do_normalize,
            "feature_extractor_type": HF_FEATURE_EXTRACTOR_TYPE,
            "feature_size": self.feature_size,
            "padding_side": self.padding_side,
            "padding_value": self.padding_value,
            "return_attention_mask": self.return_attention_mask,
            "sampling_rate": self.sampling_rate,
        }

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        """Write `to_json_string()` into a file (any name; `save_pretrained` uses preprocessor_config.json)."""
        Path(json_file_path).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> WavLMFeatureExtractor:
        """Build from a json file of settings (keys it does not know are kept and written back)."""
        config = _read_settings(Path(json_file))
        return cls(**config)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False) -> list[str]:
        """Write `preprocessor_config.json` into `save_directory` (created if needed); returns the paths."""
        if push_to_hub:
            raise NotImplementedError("push_to_hub is not supported; save locally and upload with huggingface_hub")
        path = Path(save_directory)
        if path.is_file():
            raise ValueError(f"save_pretrained needs a directory, {path} is a file")
        path.mkdir(parents=True, exist_ok=True)
        self.to_json_file(path / CONFIG_NAME)
        return [str(path / CONFIG_NAME)]

    @classmethod
    def from_dict(cls, config: dict[str, Any], **kwargs: Any) -> Any:
        """Build from saved settings; keyword arguments override them.

        A keyword that is neither a setting of the extractor nor a key of `config` raises TypeError naming it
        (transformers drops it silently), unless `return_unused_kwargs=True`, which returns
        `(extractor, unused keywords)` as transformers does.
        """
        return_unused = kwargs.pop("return_unused_kwargs", False)
        known = set(FIELDS) | set(config)
        unused = {k: v for k, v in kwargs.items() if k not in known}
        if unused and not return_unused:
            raise TypeError(f"unexpected keyword argument(s) for {cls.__name__}: {', '.join(sorted(unused))}; "
                            f"its settings are {', '.join(FIELDS)}")
        extractor = cls(**{**config, **{k: v for k, v in kwargs.items() if k in known}})
        return (extractor, unused) if return_unused else extractor

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """Load from a directory, a json file or a Hub id; keyword arguments override saved values.

        Reads `preprocessor_config.json`, or the `feature_extractor` entry of `processor_config.json`
        (what transformers 5 writes for a whole processor). Hub options (revision, cache_dir, token,
        local_files_only, force_download, subfolder) select the files; `return_unused_kwargs=True` as in
        `from_dict`.
        """
        hub = hub_options(kwargs)
        config = load_feature_extractor_config(pretrained_model_name_or_path, **hub)
        return cls.from_dict(config, **kwargs)

    def __eq__(self, other: object) -> bool:
        # Same processing settings; bookkeeping keys such as processor_class do not change the output.
        return isinstance(other, WavLMFeatureExtractor) and all(getattr(self, f) == getattr(other, f) for f in FIELDS)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


Wav2Vec2FeatureExtractor = WavLMFeatureExtractor


def load_feature_extractor_config(pretrained_model_name_or_path: str | os.PathLike, **hub: Any) -> dict[str, Any]:
    """The feature extractor settings saved in a directory, json file or Hub repo, as a dict.

    `hub`: the download options of `wavlm.hub.resolve_files` (revision, cache_dir, token, local_files_only,
    force_download, subfolder).
    """
    source = Path(pretrained_model_name_or_path)
    if source.is_file():
        return _read_settings(source, nested=source.name == PROCESSOR_CONFIG_NAME)
    from wavlm.hub import resolve_files

    directory = resolve_files(str(pretrained_model_name_or_path), [CONFIG_NAME, PROCESSOR_CONFIG_NAME], **hub)
    # As in transformers: a processor_config.json with a nested entry wins over preprocessor_config.json.
    if (directory / PROCESSOR_CONFIG_NAME).is_file():
        config = _read_settings(directory / PROCESSOR_CONFIG_NAME, nested=True, required=False)
        if config is not None:
            return config
    if (directory / CONFIG_NAME).is_file():
        return _read_settings(directory / CONFIG_NAME)
    raise OSError(f"no {CONFIG_NAME} (nor a {PROCESSOR_CONFIG_NAME} with a 'feature_extractor' entry) in "
                  f"{pretrained_model_name_or_path}")


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The feature extractor settings among `settings` (the others are left alone), type-checked and normalised;
    ConfigError (a ValueError) naming the setting otherwise. `return_attention_mask`/`do_normalize` null take the
    default, as in transformers."""
    out = dict(settings)
    for name in ("return_attention_mask", "do_normalize"):
        if name in out:
            value = out[name]
            if value is None:
                value = name == "do_normalize"
            elif not isinstance(value, (bool, np.bool_)):
                raise ConfigError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
            out[name] = bool(value)
    for name, minimum in (("feature_size", 1), ("sampling_rate", 1)):
        if name in out:
            value = out[name]
            integral = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
                and value == int(value)
            if not integral or value < minimum:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
            out[name] = int(value)
    if out.get("feature_size", 1) != 1:
        raise ConfigError(f"feature_size must be 1 (the extractor takes raw mono waveforms), got {out['feature_size']}")
    if "padding_value" in out:
        value = out["padding_value"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"padding_value must be a finite number, got {value!r}")
        out["padding_value"] = float(value)
    if "padding_side" in out and out["padding_side"] not in ("right", "left"):
        raise ConfigError(f"padding_side must be 'right' or 'left', got {out['padding_side']!r}")
    return out


def _read_settings(file: Path, nested: bool = False, required: bool = True) -> dict[str, Any] | None:
    """The feature extractor settings in a json file (a processor_config.json's `feature_extractor` entry when
    `nested`; None when it has none and not `required`), checked; ConfigError naming the file otherwise."""
    config = read_json_object(file, "a feature extractor config")
    if nested:
        entry = next((config[k] for k in ("feature_extractor", "audio_processor") if k in config), None)
        if entry is None and not required:
            return None
        config = config if entry is None else entry
        if not isinstance(config, dict):
            raise ConfigError(f"{file}: its feature_extractor entry must be a JSON object, found "
                              f"{type(config).__name__}")
    try:
        check_settings(config)
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    return config


def _same_rate(given: Any, expected: int) -> bool:
    """True when `given` is the rate `expected` (an int or an integral float); ValueError when it is no rate."""
    if isinstance(given, bool) or not isinstance(given, numbers.Real) or not math.isfinite(given) or given <= 0:
        raise ValueError(f"sampling_rate must be a positive number of Hz, got {given!r}")
    return given == expected


def _standardise(x: np.ndarray) -> np.ndarray:
    """(x - mean) / sqrt(var + 1e-7) as float32. Computed in float32 like transformers; where that overflows
    (samples above about 1e17: the sum of squares exceeds float32's range and the result would be all zeros or
    NaN), recomputed in float64, which holds the statistics of any float32 input."""
    mean, var = x.mean(), x.var()
    if np.isfinite(mean) and np.isfinite(var):
        out = (x - mean) / np.sqrt(var + _NORM_EPS)
        if np.isfinite(out).all():
            return out
    wide = x.astype(np.float64)
    return ((wide - wide.mean()) / np.sqrt(wide.var() + _NORM_EPS)).astype(x.dtype)


def _as_float32(x: np.ndarray, index: int) -> np.ndarray:
    if x.ndim != 1:
        raise ValueError(f"utterance {index} has shape {x.shape}; expected a 1-D mono waveform (mix channels "
                         f"down first, e.g. with wavlm.load_audio)")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"utterance {index} has dtype {x.dtype}; expected float or integer samples")
    wide = x
    with np.errstate(over="ignore"):
        x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        if wide.dtype.kind == "f" and np.isfinite(wide).all():
            raise ValueError(f"utterance {index} has samples up to |x| = {np.abs(wide).max():.3g}, beyond the range "
                             f"of float32 (3.4e38) that the model computes in; expected samples in [-1, 1]")
        raise ValueError(f"utterance {index} contains NaN or infinite samples")
    return x


def _as_utterances(raw_speech: Any) -> list[np.ndarray]:
    """One utterance or a batch -> a list of 1-D float32 arrays (see `WavLMFeatureExtractor.__call__`)."""
    if _is_torch(raw_speech) or isinstance(raw_speech, np.ndarray):
        array = _to_numpy(raw_speech)
        if array.ndim == 0:
            raise ValueError("raw_speech is a scalar; expected a 1-D waveform or a batch of them")
        if array.ndim > 2:
            raise ValueError(f"raw_speech has shape {array.shape}; only mono audio is supported: pass a 1-D "
                             f"waveform, a list of them or a (batch, samples) array")
        rows = [array] if array.ndim == 1 else list(array)
    elif isinstance(raw_speech, (list, tuple)):
        if len(raw_speech) == 0:
            raise ValueError("raw_speech is empty; expected a waveform or a non-empty list of waveforms")
        first = raw_speech[0]
        batched = isinstance(first, (list, tuple, np.ndarray)) or _is_torch(first)
        if batched and isinstance(first, np.ndarray) and first.ndim == 0:
            batched = False  # a list of numpy scalars is one utterance
        rows = [_to_numpy(r) for r in raw_speech] if batched else [np.asarray(raw_speech)]
    else:
        raise ValueError(f"raw_speech must be an array, a tensor or a list, got {type(raw_speech).__name__}")
    return [_as_float32(r, i) for i, r in enumerate(rows)]
