"""Rename tables between checkpoint spellings, as data: (pattern, template) pairs where `{i}` is a layer index and
`{p}` a parameter name (weight or bias). `rename(key, table)` applies the first matching pair.
"""
from __future__ import annotations

import re
from functools import lru_cache

# Older transformers checkpoints (torch's legacy weight_norm) -> the parametrization spelling of torch >= 2.1.
LEGACY_WEIGHT_NORM = [
    ("{prefix}pos_conv_embed.conv.weight_g", "{prefix}pos_conv_embed.conv.parametrizations.weight.original0"),
    ("{prefix}pos_conv_embed.conv.weight_v", "{prefix}pos_conv_embed.conv.parametrizations.weight.original1"),
]

# microsoft/unilm WavLM.py (and UniSpeech / s3prl copies) -> transformers WavLMModel, shared by both norm modes.
ORIGINAL_TO_HF = [
    ("mask_emb", "masked_spec_embed"),
    ("feature_extractor.conv_layers.{i}.0.{p}", "feature_extractor.conv_layers.{i}.conv.{p}"),
    ("layer_norm.{p}", "feature_projection.layer_norm.{p}"),
    ("post_extract_proj.{p}", "feature_projection.projection.{p}"),
    ("encoder.pos_conv.0.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("encoder.pos_conv.0.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias"),
    ("encoder.layer_norm.{p}", "encoder.layer_norm.{p}"),
    ("encoder.layers.{i}.self_attn.q_proj.{p}", "encoder.layers.{i}.attention.q_proj.{p}"),
    ("encoder.layers.{i}.self_attn.k_proj.{p}", "encoder.layers.{i}.attention.k_proj.{p}"),
    ("encoder.layers.{i}.self_attn.v_proj.{p}", "encoder.layers.{i}.attention.v_proj.{p}"),
    ("encoder.layers.{i}.self_attn.out_proj.{p}", "encoder.layers.{i}.attention.out_proj.{p}"),
    ("encoder.layers.{i}.self_attn.grep_linear.{p}", "encoder.layers.{i}.attention.gru_rel_pos_linear.{p}"),
    ("encoder.layers.{i}.self_attn.grep_a", "encoder.layers.{i}.attention.gru_rel_pos_const"),
    ("encoder.layers.{i}.self_attn.relative_attention_bias.weight", "encoder.layers.{i}.attention.rel_attn_embed.weight"),
    ("encoder.layers.{i}.self_attn_layer_norm.{p}", "encoder.layers.{i}.layer_norm.{p}"),
    ("encoder.layers.{i}.fc1.{p}", "encoder.layers.{i}.feed_forward.intermediate_dense.{p}"),
    ("encoder.layers.{i}.fc2.{p}", "encoder.layers.{i}.feed_forward.output_dense.{p}"),
    ("encoder.layers.{i}.final_layer_norm.{p}", "encoder.layers.{i}.final_layer_norm.{p}"),
]
# The conv-stack norms sit at different Sequential indices in the two extractor modes.
ORIGINAL_TO_HF_GROUP_NORM = [
    ("feature_extractor.conv_layers.0.2.{p}", "feature_extractor.conv_layers.0.layer_norm.{p}"),
]
ORIGINAL_TO_HF_LAYER_NORM = [
    ("feature_extractor.conv_layers.{i}.2.1.{p}", "feature_extractor.conv_layers.{i}.layer_norm.{p}"),
]
# Prefixes of fine-tuned fairseq wrappers around the same backbone.
ORIGINAL_PREFIXES = ("w2v_encoder.w2v_model.", "w2v_model.", "model.")
# Keys present in some original checkpoints that no transformers class holds (pre-training targets).
ORIGINAL_IGNORED = (r"^label_embs_concat$", r"^final_proj\.", r"^quantizer\.", r"^project_q\.")

_FIELDS = {"i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)", "prefix": r"(?P<prefix>(?:wavlm\.)?encoder\.)"}


@lru_cache(maxsize=None)
def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, group in _FIELDS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    return re.compile(f"^{pattern}$")


def rename(key: str, table: list[tuple[str, str]], reverse: bool = False) -> str | None:
    """The renamed key from the first matching (source, target) pair (target -> source if reverse), else None."""
    for source, target in table:
        if reverse:
            source, target = target, source
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None
