"""WavLMConfig: every field of the transformers WavLM configuration with the same defaults, json I/O and validation.

`config.json` files written by transformers load here and the files written here load in transformers; keys this
class does not know are kept as attributes and written back, so nothing in a hub config is lost.
"""
from __future__ import annotations

import copy
import inspect
import json
import os
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
    eos_token_id: int | None = 2
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
    return_dict: bool = True
    dtype: str | None = None
    architectures: list[str] | None = None
    chunk_size_feed_forward: int = 0
    is_encoder_decoder: bool = False
    # the transformers version a config was written with; save_pretrained writes the format version it follows
    transformers_version: str | None = None

    model_type = "wavlm"

    def __init__(self, **kwargs: Any) -> None:
        num_labels = kwargs.pop("num_labels", None)
        if "torch_dtype" in kwargs:  # the transformers 4.x spelling
            torch_dtype = kwargs.pop("torch_dtype")
            kwargs.setdefault("dtype", torch_dtype)
        # values transformers derives and writes, recomputed here
        kwargs.pop("num_feat_extract_layers", None)
        model_type = kwargs.pop("model_type", None)
        if model_type not in (None, self.model_type):
            raise ValueError(f"config has model_type {model_type!r}; wavlm loads only model_type 'wavlm'")
        self._extra: dict[str, Any] = {}
        self._name_or_path = str(kwargs.pop("name_or_path", kwargs.pop("_name_or_path", "")))
        for f in fields(self):
            value = kwargs.pop(f.name) if f.name in kwargs else copy.deepcopy(f.default)
            setattr(self, f.name, value)
        for key, value in kwargs.items():
            self._extra[key] = value
            setattr(self, key, value)

        for name in ("conv_dim", "conv_stride", "conv_kernel", "tdnn_dim", "tdnn_kernel", "tdnn_dilation"):
            value = getattr(self, name)
            if isinstance(value, int):
                raise ValueError(f"{name} must be a list of integers, got the single integer {value}")
            setattr(self, name, tuple(int(v) for v in value))
        if self.output_hidden_size is None:
            self.output_hidden_size = self.hidden_size
        if not isinstance(self.dtype, (str, type(None))):  # a torch.dtype
            self.dtype = str(self.dtype).replace("torch.", "")
        self._set_labels(num_labels)
        self.validate()

    # ----------------------------------------------------------------------------------------------- labels
    def _set_labels(self, num_labels: int | None) -> None:
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if num_labels is not None:
            if not isinstance(num_labels, int) or num_labels < 1:
                raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
            if self.id2label is None or len(self.id2label) != num_labels:
                self.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
                self.label2id = None
        if self.id2label is None:
            self.id2label = {i: f"LABEL_{i}" for i in range(2)}
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {v: k for k, v in self.id2label.items()}
        self.label2id = {str(k): int(v) for k, v in self.label2id.items()}

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
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if not (len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel)):
            raise ValueError(
                "conv_dim, conv_stride and conv_kernel must have one entry per conv layer, got "
                f"{len(self.conv_dim)}, {len(self.conv_stride)} and {len(self.conv_kernel)}")
        if len(self.conv_dim) == 0:
            raise ValueError("conv_dim must list at least one conv layer")
        if not (len(self.tdnn_dim) == len(self.tdnn_kernel) == len(self.tdnn_dilation)):
            raise ValueError(
                "tdnn_dim, tdnn_kernel and tdnn_dilation must have one entry per TDNN layer, got "
                f"{len(self.tdnn_dim)}, {len(self.tdnn_kernel)} and {len(self.tdnn_dilation)}")
        positive = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "num_buckets",
                    "max_bucket_distance", "mask_time_length", "mask_feature_length", "classifier_proj_size",
                    "xvector_output_dim", "adapter_kernel_size", "adapter_stride", "output_hidden_size")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("conv_dim", "conv_stride", "conv_kernel", "tdnn_dim", "tdnn_kernel", "tdnn_dilation"):
            if any(v < 1 for v in getattr(self, name)):
                raise ValueError(f"every entry of {name} must be a positive integer, got {list(getattr(self, name))}")
        if self.num_adapter_layers < 0 or self.mask_time_min_masks < 0 or self.mask_feature_min_masks < 0:
            raise ValueError("num_adapter_layers, mask_time_min_masks and mask_feature_min_masks must be >= 0, got "
                             f"{self.num_adapter_layers}, {self.mask_time_min_masks}, {self.mask_feature_min_masks}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                             f"({self.num_attention_heads})")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                             f"({self.num_conv_pos_embedding_groups})")
        if self.num_buckets < 4:
            raise ValueError(f"num_buckets must be at least 4, got {self.num_buckets}")
        if self.max_bucket_distance <= self.num_buckets // 4:
            raise ValueError(f"max_bucket_distance ({self.max_bucket_distance}) must exceed num_buckets // 4 "
                             f"({self.num_buckets // 4}), where the logarithmic buckets start")
        for name in ("hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout",
                     "final_dropout", "layerdrop", "mask_time_prob", "mask_feature_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value!r}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {self.feat_extract_norm!r}")
        for name in ("hidden_act", "feat_extract_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} {getattr(self, name)!r} is not supported; choose one of {tuple(ACTIVATIONS)}")
        if self.ctc_loss_reduction not in ("mean", "sum", "none"):
            raise ValueError(f"ctc_loss_reduction must be 'mean', 'sum' or 'none', got {self.ctc_loss_reduction!r}")
        if self.problem_type not in (None, "regression", "single_label_classification",
                                     "multi_label_classification"):
            raise ValueError(f"problem_type {self.problem_type!r} is not one of 'regression', "
                             "'single_label_classification', 'multi_label_classification'")

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
        data = dict(data)
        model_type = data.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ValueError(f"config has model_type {model_type!r}; wavlm loads only model_type 'wavlm'")
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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"config file {path} does not exist") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}")
        return cls.from_dict(data)

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

# The dataclass fields make the signature; expose it so `inspect.signature(WavLMConfig)` lists every argument.
WavLMConfig.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
       for f in fields(WavLMConfig)]
    + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
