"""Original microsoft/unilm WavLM checkpoints (`{"cfg": dict, "model": state_dict}`, e.g. WavLM-Base+.pt): their
configuration and key names, translated to and from the transformers layout used by this package."""
from __future__ import annotations

import ast
import re
from typing import Any

import torch

from wavlm.checkpoint.errors import CheckpointError
from wavlm.checkpoint.keys import (ORIGINAL_IGNORED, ORIGINAL_PREFIXES, ORIGINAL_TO_HF, ORIGINAL_TO_HF_GROUP_NORM,
                                   ORIGINAL_TO_HF_LAYER_NORM, rename)
from wavlm.config import WavLMConfig

# unilm WavLMConfig class defaults; checkpoints normally spell every field out.
ORIGINAL_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "activation_fn": "gelu", "layer_norm_first": False,
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", "conv_bias": False,
    "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
    "dropout_input": 0.0, "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": False,
    "num_buckets": 320, "max_distance": 1280, "gru_rel_pos": False, "normalize": False,
    "mask_prob": 0.65, "mask_length": 10, "mask_channel_prob": 0.0, "mask_channel_length": 10,
}
# unilm cfg name -> WavLMConfig field, for values that carry over unchanged
CFG_FIELDS = {
    "encoder_layers": "num_hidden_layers", "encoder_embed_dim": "hidden_size",
    "encoder_ffn_embed_dim": "intermediate_size", "encoder_attention_heads": "num_attention_heads",
    "activation_fn": "hidden_act", "layer_norm_first": "do_stable_layer_norm", "conv_bias": "conv_bias",
    "dropout": "hidden_dropout", "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout", "encoder_layerdrop": "layerdrop", "dropout_input": "feat_proj_dropout",
    "conv_pos": "num_conv_pos_embeddings", "conv_pos_groups": "num_conv_pos_embedding_groups",
    "num_buckets": "num_buckets", "max_distance": "max_bucket_distance", "mask_prob": "mask_time_prob",
    "mask_length": "mask_time_length", "mask_channel_prob": "mask_feature_prob",
    "mask_channel_length": "mask_feature_length",
}
EXTRACTOR_MODES = {"default": "group", "layer_norm": "layer"}


def is_original_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and "cfg" in obj and "model" in obj


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """Evaluate a fairseq `conv_feature_layers` string such as "[(512,10,5)] + [(512,3,2)] * 4" without eval()."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported expression {ast.dump(node)}")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
        return [(int(d), int(k), int(s)) for d, k, s in layers]
    except (SyntaxError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read conv_feature_layers {spec!r} from the checkpoint cfg ({e})") from None


def config_from_original(cfg: dict[str, Any], **overrides: Any) -> WavLMConfig:
    """WavLMConfig for an original checkpoint's `cfg` (unilm field names)."""
    if not isinstance(cfg, dict):
        raise CheckpointError(f"the checkpoint's 'cfg' must be a dict of settings, got {type(cfg).__name__}")
    cfg = {**ORIGINAL_DEFAULTS, **cfg}
    if not cfg["relative_position_embedding"] or not cfg["gru_rel_pos"]:
        raise CheckpointError("this original checkpoint has relative_position_embedding="
                              f"{cfg['relative_position_embedding']} and gru_rel_pos={cfg['gru_rel_pos']}; "
                              "WavLM checkpoints use both, so it is not a WavLM model")
    if cfg["extractor_mode"] not in EXTRACTOR_MODES:
        raise CheckpointError(f"unknown extractor_mode {cfg['extractor_mode']!r} in the checkpoint cfg")
    layers = parse_conv_layers(cfg["conv_feature_layers"])
    fields = {field: cfg[name] for name, field in CFG_FIELDS.items()}
    fields.update(feat_extract_norm=EXTRACTOR_MODES[cfg["extractor_mode"]],
                  conv_dim=[d for d, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
                  conv_stride=[s for _, _, s in layers],
                  # the feature extractor of large models normalises waveforms; kept for the converter
                  normalize=bool(cfg["normalize"]))
    fields.update(overrides)
    return WavLMConfig(**fields)


def original_to_config_cfg(config: WavLMConfig) -> dict[str, Any]:
    """The unilm `cfg` dict describing `config` (inverse of config_from_original)."""
    cfg = {name: getattr(config, field) for name, field in CFG_FIELDS.items()}
    cfg.update(extractor_mode={v: k for k, v in EXTRACTOR_MODES.items()}[config.feat_extract_norm],
               conv_feature_layers=repr([tuple(x) for x in zip(config.conv_dim, config.conv_kernel,
                                                                config.conv_stride)]),
               relative_position_embedding=True, gru_rel_pos=True,
               normalize=normalizes_input(config))
    return cfg


def normalizes_input(config: WavLMConfig) -> bool:
    """Whether the model was trained on zero-mean unit-variance waveforms (the feature extractor's `do_normalize`):
    an original checkpoint's `normalize` when the config carries it (config_from_original keeps it), else whether
    the conv encoder has a LayerNorm in every block. unilm's WavLMConfig documents extractor_mode "layer_norm" as
    "meant to use with normalize=True" (WavLM Large), and group-norm encoders (Base, Base+) read raw waveforms;
    the encoder's pre-LN flag (do_stable_layer_norm) says nothing about the input. The one rule, used by
    conversion in both directions and by the command line's default feature extractor."""
    normalize = getattr(config, "normalize", None)
    return bool(normalize) if normalize is not None else config.feat_extract_norm == "layer"


def _norm_table(config: WavLMConfig) -> list[tuple[str, str]]:
    extra = ORIGINAL_TO_HF_GROUP_NORM if config.feat_extract_norm == "group" else ORIGINAL_TO_HF_LAYER_NORM
    return extra + ORIGINAL_TO_HF


def state_dict_from_original(state: dict[str, torch.Tensor], config: WavLMConfig) -> dict[str, torch.Tensor]:
    """Rename an original state dict to WavLMModel keys; unknown keys raise one error listing them."""
    table = _norm_table(config)
    out, unknown = {}, []
    for key, tensor in state.items():
        for prefix in ORIGINAL_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if any(re.search(p, key) for p in ORIGINAL_IGNORED):
            continue
        new = rename(key, table)
        if new is None:
            unknown.append(key)
        else:
            out[new] = tensor
    if unknown:
        raise CheckpointError(f"original checkpoint keys with no WavLM counterpart: {sorted(unknown)}")
    return out


def state_dict_to_original(state: dict[str, torch.Tensor], config: WavLMConfig) -> dict[str, torch.Tensor]:
    """WavLMModel keys (optionally under `wavlm.`) -> original names; head keys have no original form."""
    table = _norm_table(config)
    out, unknown = {}, []
    for key, tensor in state.items():
        key = key[len("wavlm."):] if key.startswith("wavlm.") else key
        new = rename(key, table, reverse=True)
        if new is None:
            unknown.append(key)
        else:
            out[new] = tensor
    if unknown:
        raise CheckpointError(f"these weights have no place in an original WavLM checkpoint (task heads are "
                              f"transformers-only): {sorted(unknown)}")
    return out
