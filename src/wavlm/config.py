"""WavLMConfig: every field of the transformers WavLM configuration with the same defaults, json I/O and validation.

`config.json` files written by transformers load here and the files written here load in transformers; keys this
class does not know are kept as attributes and written back, so nothing in a hub config is lost. Every field is
type-checked (as transformers 5.23 does) and checked for consistency; a bad value raises ConfigError naming the
field (and the file it came from).
"""
from __future__ import annotations

import copy
import inspect
import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wavlm import frames

CONFIG_NAME = "config.json"

# The activations a config may name: name -> (torch.nn class, its arguments). The one table, read by validation here
# and by `wavlm.model.activation` to build them ("QuickGELU" is wavlm.model's).
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "gelu": ("GELU", {}), "gelu_new": ("GELU", {"approximate": "tanh"}),
    "gelu_pytorch_tanh": ("GELU", {"approximate": "tanh"}), "relu": ("ReLU", {}), "selu": ("SELU", {}),
    "silu": ("SiLU", {}), "swish": ("SiLU", {}), "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}),
    "mish": ("Mish", {}), "relu6": ("ReLU6", {}), "quick_gelu": ("QuickGELU", {}), "linear": ("Identity", {}),
}


# torch dtype names a model can be stored in (config.json's "dtype"; transformers 4.x wrote "torch_dtype")
_DTYPES = ("float32", "float16", "bfloat16", "float64", "float", "half", "double")


class ConfigError(ValueError):
    """A configuration value (or a configuration file: config.json, preprocessor_config.json, vocab.json,
    tokenizer_config.json) is malformed or inconsistent; the message names the field and, when read from a file,
    the file. A ValueError, which is what transformers raises for an invalid configuration."""


def _tuple(n: int, value: int) -> tuple[int, ...]:
    return tuple([value] * n)


@dataclass(init=False, repr=False, eq=False)
class WavLMConfig:
    """Configuration of a WavLM model; the defaults give microsoft/wavlm-base.

    Accepts every argument of `transformers.WavLMConfig` (same names and defaults) plus the keys common to all
    transformers configs (`num_labels`, `id2label`, `label2id`, `torch_dtype`/`dtype`, `problem_type`, ...).
    Unknown keyword arguments are stored as attributes and round-trip through `config.json`.
    """

    # architecture
    vocab_size: int = 32
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_dim: tuple[int, ...] = _tuple(7, 512)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    num_buckets: int = 320
    max_bucket_distance: int = 800
    do_stable_layer_norm: bool = False

    # regularisation
    hidden_dropout: float = 0.1
    activation_dropout: float = 0.1
    attention_dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    final_dropout: float = 0.1
    layerdrop: float = 0.1

    # SpecAugment
    apply_spec_augment: bool = True
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    # transformers reads this field without declaring it (AttributeError with mask_feature_prob > 0); hub configs
    # carry 0, which is the default here.
    mask_feature_min_masks: int = 0

    # pre-training quantiser fields: declared by transformers, used by no public class
    num_codevectors_per_group: int = 320
    num_codevector_groups: int = 2
    contrastive_logits_temperature: float = 0.1
    num_negatives: int = 100
    codevector_dim: int = 256
    proj_codevector_dim: int = 256
    diversity_loss_weight: float = 0.1
    num_ctc_classes: int = 80

    # heads
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = False
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    tdnn_dim: tuple[int, ...] = (512, 512, 512, 512, 1500)
    tdnn_kernel: tuple[int, ...] = (5, 3, 3, 1, 1)
    tdnn_dilation: tuple[int, ...] = (1, 2, 3, 1, 1)
    xvector_output_dim: int = 512
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None

    # adapter
    add_adapter: bool = False
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 3
    output_hidden_size: int | None = None

    # wavlm-only options (not in transformers; transformers keeps them as unknown keys)
    # Compute the first conv layer's GroupNorm statistics over each utterance's own samples only, so that a padded
    # batch gives the same valid-frame outputs as each utterance run alone. Off by default to match transformers.
    mask_padding_in_group_norm: bool = False
    # Pool x-vector statistics only over TDNN frames computed from real audio (transformers ignores the TDNN
    # dilation when it shortens the lengths, so padded batches pool a few frames that saw padding).
    xvector_exact_pooling: bool = False

    # common to every transformers config
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True  # these three accept None (transformers' annotation) and then take the default
    dtype: str | None = None
    architectures: list[str] | None = None
    chunk_size_feed_forward: int = 0
    is_encoder_decoder: bool = False
    # the transformers version a config was written with; save_pretrained writes the format version it follows
    transformers_version: str | None = None

    model_type = "wavlm"

    def __init__(self, /, **kwargs: Any) -> None:
        num_labels = kwargs.pop("num_labels", None)
        if "torch_dtype" in kwargs:  # the transformers 4.x spelling
            torch_dtype = kwargs.pop("torch_dtype")
            kwargs.setdefault("dtype", torch_dtype)
        # values transformers derives and writes, recomputed here
        for key in _DERIVED:
            kwargs.pop(key, None)
        model_type = kwargs.pop("model_type", None)
        if model_type not in (None, self.model_type):
            raise ConfigError(f"config has model_type {_show(model_type)}; wavlm loads only model_type 'wavlm'")
        self._extra: dict[str, Any] = {}
        self._name_or_path = str(kwargs.pop("name_or_path", kwargs.pop("_name_or_path", "")))
        for f in fields(self):
            value = kwargs.pop(f.name) if f.name in kwargs else copy.deepcopy(f.default)
            setattr(self, f.name, value)
        for key, value in kwargs.items():
            if key in _RESERVED or key.startswith("__"):
                raise ConfigError(f"config key {key!r} is the name of a WavLMConfig attribute or method and cannot "
                                  "be stored as an extra key; rename or remove it")
            self._extra[key] = value
            setattr(self, key, value)
        self._check_fields()
        if self.output_hidden_size is None:
            self.output_hidden_size = self.hidden_size
        self._set_labels(num_labels)
        self.validate()

    # ----------------------------------------------------------------------------------------------- labels
    def _set_labels(self, num_labels: int | None) -> None:
        """id2label / label2id from what was given, with transformers' rules: `num_labels` wins over an id2label
        of another size; a missing or differently sized label2id is derived from id2label."""
        if num_labels is not None:
            if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 1:
                raise ConfigError(f"num_labels must be a positive integer, got {_show(num_labels)}")
            num_labels = int(num_labels)
        if self.id2label is not None:
            self.id2label = _id2label(self.id2label)
        if num_labels is not None and (self.id2label is None or len(self.id2label) != num_labels):
            self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
            self.label2id = None
        if self.id2label is None:
            self.id2label = {i: f"LABEL_{i}" for i in range(2)}
        if self.label2id is not None:
            self.label2id = _label2id(self.label2id)
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {v: k for k, v in self.id2label.items()}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        self.id2label = None
        self.label2id = None
        self._set_labels(n)

    @property
    def torch_dtype(self) -> str | None:
        return self.dtype

    @property
    def name_or_path(self) -> str:
        """Where the config was read from ("" for a new one); not written to config.json."""
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: str | os.PathLike) -> None:
        self._name_or_path = str(value)

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    # ------------------------------------------------------------------------------------------ derived values
    @property
    def num_feat_extract_layers(self) -> int:
        return len(self.conv_dim)

    @property
    def inputs_to_logits_ratio(self) -> int:
        return self.frame_stride

    @property
    def frame_stride(self) -> int:
        """Samples between consecutive output frames of the conv feature encoder (320 for the defaults)."""
        return frames.frame_stride(self.conv_stride)

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the conv feature encoder (400 for the defaults)."""
        return frames.receptive_field(self.conv_kernel, self.conv_stride)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # ------------------------------------------------------------------------------------------- validation
    def _check_fields(self) -> None:
        """Check every field's type, naming it, and normalise what JSON cannot spell (tuples, torch dtypes)."""
        for f in fields(self):
            setattr(self, f.name, _checked(f.name, f.type, getattr(self, f.name)))

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the first field of the wrong type or inconsistent value."""
        self._check_fields()
        if not (len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel)):
            raise ConfigError(
                "conv_dim, conv_stride and conv_kernel must have one entry per conv layer, got "
                f"{len(self.conv_dim)}, {len(self.conv_stride)} and {len(self.conv_kernel)}")
        if len(self.conv_dim) == 0:
            raise ConfigError("conv_dim must list at least one conv layer")
        if not (len(self.tdnn_dim) == len(self.tdnn_kernel) == len(self.tdnn_dilation)):
            raise ConfigError(
                "tdnn_dim, tdnn_kernel and tdnn_dilation must have one entry per TDNN layer, got "
                f"{len(self.tdnn_dim)}, {len(self.tdnn_kernel)} and {len(self.tdnn_dilation)}")
        if len(self.tdnn_dim) == 0:
            raise ConfigError("tdnn_dim must list at least one TDNN layer")
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "num_buckets",
                    "max_bucket_distance", "mask_time_length", "mask_feature_length", "classifier_proj_size",
                    "xvector_output_dim", "adapter_kernel_size", "adapter_stride", "output_hidden_size")
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("conv_dim", "conv_stride", "conv_kernel", "tdnn_dim", "tdnn_kernel", "tdnn_dilation"):
            if any(v < 1 for v in getattr(self, name)):
                raise ConfigError(f"every entry of {name} must be a positive integer, got {list(getattr(self, name))}")
        for name in ("num_adapter_layers", "mask_time_min_masks", "mask_feature_min_masks", "chunk_size_feed_forward"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                              f"({self.num_attention_heads})")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                              f"({self.num_conv_pos_embedding_groups})")
        if self.num_buckets < 4:
            raise ConfigError(f"num_buckets must be at least 4, got {self.num_buckets}")
        if self.max_bucket_distance <= self.num_buckets // 4:
            raise ConfigError(f"max_bucket_distance ({self.max_bucket_distance}) must exceed num_buckets // 4 "
                              f"({self.num_buckets // 4}), where the logarithmic buckets start")
        for name in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout",
                     "final_dropout", "layerdrop", "mask_time_prob", "mask_feature_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} is a probability and must lie in [0, 1], got {value!r}")
        if self.layer_norm_eps <= 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ConfigError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
        for name in ("hidden_act", "feat_extract_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not supported; choose one of "
                                  f"{tuple(ACTIVATIONS)}")
        if self.ctc_loss_reduction not in ("mean", "sum", "none"):
            raise ConfigError(f"ctc_loss_reduction must be 'mean', 'sum' or 'none', got {self.ctc_loss_reduction!r}")
        if self.problem_type not in (None, "regression", "single_label_classification",
                                     "multi_label_classification"):
            raise ConfigError(f"problem_type {self.problem_type!r} is not one of 'regression', "
                              "'single_label_classification', 'multi_label_classification'")
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} is not a floating-point torch dtype; use one of {_DTYPES}")
        self._check_labels()

    def _check_labels(self) -> None:
        """id2label must name the classes 0..num_labels-1 (the classifier's outputs); label2id must map names to
        those ids, one name per id."""
        id2label = _id2label(self.id2label)
        ids = sorted(id2label)
        if ids != list(range(len(ids))):
            missing = sorted(set(range(len(ids))) - set(ids))
            raise ConfigError(f"id2label must have the keys 0..{len(ids) - 1} (one per output of the classifier, "
                              f"num_labels={len(ids)}), got keys {_few(ids)}; missing {_few(missing)}")
        label2id = _label2id(self.label2id)
        bad = sorted(v for v in label2id.values() if v not in id2label)
        if bad:
            raise ConfigError(f"label2id maps to id(s) {_few(bad)}, but the ids are 0..{len(ids) - 1} "
                              f"(num_labels={len(ids)})")
        if len(set(label2id.values())) != len(label2id):
            counts = {v: sum(1 for x in label2id.values() if x == v) for v in label2id.values()}
            twice = sorted(v for v, c in counts.items() if c > 1)
            raise ConfigError(f"label2id gives id(s) {_few(twice)} to more than one label")
        self.id2label, self.label2id = id2label, label2id

    # ----------------------------------------------------------------------------------------------- json I/O
    def to_dict(self) -> dict[str, Any]:
        """All fields (plus unknown keys) as JSON-ready values, in the layout transformers writes."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else copy.deepcopy(value)
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}
        if out["transformers_version"] is None:
            del out["transformers_version"]
        out["num_feat_extract_layers"] = self.num_feat_extract_layers
        out["model_type"] = self.model_type
        for key in self._extra:
            out[key] = copy.deepcopy(getattr(self, key, self._extra[key]))
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> "WavLMConfig" | tuple["WavLMConfig", dict]:
        """A config from a dict as `to_dict` or config.json holds it; keyword arguments override values as in
        `from_pretrained` (`return_unused_kwargs=True` returns the keywords that are not config values)."""
        return_unused = kwargs.pop("return_unused_kwargs", False)
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping of field names to values, got {_show(data)}")
        data = dict(data)
        model_type = data.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ConfigError(f"config has model_type {_show(model_type)}; wavlm loads only model_type 'wavlm'")
        data.pop("transformers_version", None)
        config = cls(**data)
        unused = config.apply_overrides(kwargs)
        if return_unused:
            return config, unused
        _refuse_unused(unused, f"{cls.__name__}.from_dict()")
        return config

    def apply_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Set the `overrides` that are config values and return the others, untouched (as transformers: a
        keyword is a config value when it is a field, `num_labels`/`torch_dtype`/`name_or_path`, or a key this
        config already holds, e.g. one of its config.json's unknown keys). `dtype="auto"` is not a value."""
        unused = {}
        for key, value in overrides.items():
            if key in ("dtype", "torch_dtype") and value == "auto":
                continue
            if key in _FIELD_NAMES or key in self._extra or key in ("torch_dtype", "name_or_path"):
                setattr(self, key, value)
            else:
                unused[key] = value
        if len(unused) < len(overrides):
            self.validate()
        return unused

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "WavLMConfig":
        path = Path(path)
        data = read_json_object(path, "a config")
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike,
                        **kwargs: Any) -> "WavLMConfig" | tuple["WavLMConfig", dict]:
        """Read `config.json` from a directory (or its `subfolder`), a json file, or a Hub repo id.

        Keyword arguments are download options (`revision`, `cache_dir`, `token`, `local_files_only`,
        `force_download`, `subfolder`) or config values that override the file's (`num_labels=5`). With
        `return_unused_kwargs=True` the result is `(config, other_keywords)`, as in transformers; without it a
        keyword that is neither raises TypeError naming it (transformers drops it silently)."""
        from wavlm.hub import IGNORED_FLAGS, hub_options, resolve_files

        return_unused = kwargs.pop("return_unused_kwargs", False)
        hub = hub_options(kwargs, drop=IGNORED_FLAGS)
        path = Path(pretrained_model_name_or_path).expanduser()
        if path.is_file():
            config = cls.from_json_file(path)
        else:
            folder = Path(resolve_files(pretrained_model_name_or_path, [CONFIG_NAME], **hub))
            if not (folder / CONFIG_NAME).is_file():
                raise FileNotFoundError(f"{folder if hub.get('subfolder') else pretrained_model_name_or_path} "
                                        f"has no {CONFIG_NAME}")
            config = cls.from_json_file(folder / CONFIG_NAME)
        unused = config.apply_overrides(kwargs)
        if return_unused:
            return config, unused
        _refuse_unused(unused, f"{cls.__name__}.from_pretrained()")
        return config

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_pretrained needs a directory, but {directory} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        data["transformers_version"] = "5.23.0"  # the format version these files follow
        target = directory / CONFIG_NAME
        target.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return target

    # ---------------------------------------------------------------------------------------------- dunders
    def __setattr__(self, key: str, value: Any) -> None:
        if key == "torch_dtype":
            key = "dtype"
        if (key not in _FIELD_NAMES and not key.startswith("_") and "_extra" in self.__dict__
                and not isinstance(getattr(type(self), key, None), property)):
            self._extra[key] = value
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        if key in _FIELD_NAMES:
            raise AttributeError(f"{key} is a WavLMConfig field and cannot be deleted; set it instead")
        self._extra.pop(key, None)
        object.__delattr__(self, key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WavLMConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"WavLMConfig {self.to_json_string()}"

    def __deepcopy__(self, memo: dict) -> "WavLMConfig":
        copied = WavLMConfig.from_dict(self.to_dict())
        copied._name_or_path = self.name_or_path
        return copied

    def copy(self, **changes: Any) -> "WavLMConfig":
        """A deep copy with some fields changed."""
        return WavLMConfig.from_dict({**self.to_dict(), **changes})


# ------------------------------------------------------------------------------------------- field checks
# Fields whose annotation is `bool` but which transformers also accepts as None, meaning the default.
_NONE_IS_DEFAULT = ("output_hidden_states", "output_attentions", "return_dict")
# Keys of a config.json that are derived from other fields: read-only here, recomputed, never stored.
_DERIVED = ("num_feat_extract_layers", "inputs_to_logits_ratio", "frame_stride", "receptive_field", "head_dim",
            "use_return_dict")


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`; ConfigError naming the file when it is not UTF-8 JSON holding an object,
    FileNotFoundError when it does not exist."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not {what} file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}), so not valid JSON") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not usable JSON: it nests too deeply") from None
    except ValueError as e:  # e.g. an integer too long to convert
        raise ConfigError(f"{path} is not usable JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object ({{...}}), found {type(data).__name__}")
    return data


def _show(value: Any) -> str:
    """A value as a message shows it: its repr (cut to 60 characters) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({'null' if value is None else type(value).__name__})"


def _few(items: list, limit: int = 10) -> str:
    """At most `limit` items of a list, then how many more."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{f', ... ({len(items) - limit} more)' if len(items) > limit else ''}]"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_list(name: str, value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    if _is_int(value):
        raise ConfigError(f"{name} must be a list of integers, got the single integer {value}")
    if isinstance(value, (list, tuple)):
        bad = next(v for v in value if not _is_int(v))
        raise ConfigError(f"{name} must be a list of integers, but it holds {_show(bad)}")
    return None


def _checked(name: str, kind: str, value: Any) -> Any:
    """`value` checked against the field's annotation `kind` (and normalised: tuples for integer lists, floats
    for numbers, dtype names for torch dtypes); ConfigError naming the field otherwise."""
    if name in _NONE_IS_DEFAULT and value is None:
        return _DEFAULTS[name]
    optional = kind.endswith(" | None")
    if optional:
        if value is None:
            return None
        kind = kind[: -len(" | None")]
    if name == "dtype" and type(value).__module__ == "torch":  # a torch.dtype
        value = str(value).replace("torch.", "")
    expected = None
    if kind == "bool":
        if isinstance(value, bool) or type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
            return bool(value)
        expected = "true or false"
    elif kind == "int":
        if _is_int(value):
            return int(value)
        expected = "an integer"
    elif kind == "float":
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
            return float(value)
        expected = "a number"
    elif kind == "str":
        if isinstance(value, str):
            return value
        expected = "a string"
    elif kind == "tuple[int, ...]":
        checked = _int_list(name, value)
        if checked is not None:
            return checked
        expected = "a list of integers"
    elif kind == "int | list[int]":
        if _is_int(value):
            return int(value)
        checked = _int_list(name, value)
        if checked is not None:
            return list(checked)
        expected = "an integer or a list of integers"
    elif kind == "list[str]":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        if isinstance(value, str):  # transformers accepts (and writes back) one class name as a plain string
            return [value]
        expected = "a list of strings (class names such as [\"WavLMForCTC\"])"
    elif kind.startswith("dict["):
        if isinstance(value, dict):
            return value
        expected = "a mapping (a JSON object)"
    else:  # a field whose annotation has no checker: WavLMConfig() itself fails, so every test catches it
        raise AssertionError(f"no type check for {name}: {kind}")
    raise ConfigError(f"{name} must be {expected}{' or null' if optional else ''}, got {_show(value)}")


def _class_id(value: Any) -> int | None:
    """A class id given as an int or as its decimal string (JSON object keys are strings), else None."""
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _id2label(mapping: Any) -> dict[int, str]:
    """{id: name} with integer ids (JSON writes them as strings) and string names."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"id2label must be a mapping of class ids to names, got {_show(mapping)}")
    out = {}
    for key, name in mapping.items():
        idx = _class_id(key)
        if idx is None:
            raise ConfigError(f"id2label keys must be class ids 0, 1, ..., got the key {_show(key)}")
        if isinstance(name, (dict, list, tuple)) or name is None:
            raise ConfigError(f"id2label[{idx}] must be a label name, got {_show(name)}")
        if idx in out:
            raise ConfigError(f"id2label gives the id {idx} twice")
        out[idx] = str(name)
    return out


def _label2id(mapping: Any) -> dict[str, int]:
    """{name: id} with string names and integer ids (some files write the ids as strings)."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"label2id must be a mapping of label names to class ids, got {_show(mapping)}")
    out = {}
    for name, idx in mapping.items():
        value = _class_id(idx)
        if value is None:
            raise ConfigError(f"label2id[{str(name)!r}] must be a class id, got {_show(idx)}")
        out[str(name)] = value
    return out


def _refuse_unused(unused: dict[str, Any], where: str) -> None:
    if unused:
        names = ", ".join(sorted(unused))
        raise TypeError(f"{where} got keyword argument(s) that are neither WavLMConfig fields nor loading options: "
                        f"{names}" + _did_you_mean(unused))


def _did_you_mean(unknown: dict[str, Any] | list[str], known: Any = None) -> str:
    """' (did you mean ...?)' for names close to known ones (config fields by default), else ''."""
    import difflib

    choices = sorted(known if known is not None else _FIELD_NAMES)
    hints = [f"{name} -> {close[0]}" for name in sorted(unknown)
             if (close := difflib.get_close_matches(name, choices, n=1, cutoff=0.8))]
    return f" (did you mean: {', '.join(hints)}?)" if hints else ""


_FIELD_NAMES = frozenset(f.name for f in fields(WavLMConfig)) | {"num_labels"}
_DEFAULTS = {f.name: f.default for f in fields(WavLMConfig)}
# Names an extra config key must not take: they would hide a method or property, or the private state.
_RESERVED = frozenset(name for name in dir(WavLMConfig) if not name.startswith("__")) | {"_extra", "_name_or_path"}
_RESERVED -= _FIELD_NAMES

# The dataclass fields make the signature; expose it so `inspect.signature(WavLMConfig)` lists every argument.
WavLMConfig.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
       for f in fields(WavLMConfig)]
    + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
