"""WavLM backbone, read top to bottom: waveform -> conv feature encoder -> feature projection -> (SpecAugment) ->
positional conv -> transformer encoder with gated relative position bias -> (adapter).

Architecture: Chen et al. 2021 (arXiv 2110.13900) sections 2.1-2.2, built on wav2vec 2.0 / HuBERT. Module and
parameter names equal transformers' so checkpoints load by identity. Numerics kept only for parity with
transformers carry a `# parity:` comment.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from wavlm import kernels
from wavlm.attention import Attention, position_bias_rows, position_bias_table
from wavlm.config import ACTIVATIONS, WavLMConfig
from wavlm.frames import conv_output_lengths
from wavlm.masking import compute_mask_indices
from wavlm.outputs import WavLMBaseModelOutput


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation(name: str) -> nn.Module:
    """The module a config's activation name stands for (wavlm.config.ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported; choose one of {sorted(ACTIVATIONS)}")
    cls, kwargs = ACTIVATIONS[name]
    return QuickGELU() if cls == "QuickGELU" else getattr(nn, cls)(**kwargs)


# ------------------------------------------------------------------------------------------- conv feature encoder
class ConvLayer(nn.Module):
    """Conv1d -> optional norm -> activation. Norm: GroupNorm(C, C) on layer 0 only ("group") or LayerNorm over
    channels on every layer ("layer")."""

    def __init__(self, config: WavLMConfig, index: int) -> None:
        super().__init__()
        in_channels = 1 if index == 0 else config.conv_dim[index - 1]
        out_channels = config.conv_dim[index]
        self.conv = nn.Conv1d(in_channels, out_channels, config.conv_kernel[index], stride=config.conv_stride[index],
                              bias=config.conv_bias)
        self.norm_kind = config.feat_extract_norm if (config.feat_extract_norm == "layer" or index == 0) else None
        if self.norm_kind == "layer":
            self.layer_norm = nn.LayerNorm(out_channels)
        elif self.norm_kind == "group":
            self.layer_norm = nn.GroupNorm(out_channels, out_channels, affine=True)
        self.activation = activation(config.feat_extract_activation)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None,
                stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """x (B, C_in, N) -> (B, C_out, T). `valid` (B, 1, T) restricts GroupNorm statistics to real frames;
        `stats` (mean, var), each (B, C, 1), replaces them (a chunk of a longer input normalised as a whole)."""
        fast = kernels.conv_layer(self, x, valid, stats)  # CPU inference: oneDNN, activation fused or in place
        if fast is not None:
            return fast
        y = self.conv(x)
        if self.norm_kind == "layer":
            y = self.layer_norm(y.transpose(1, 2)).transpose(1, 2)
        elif self.norm_kind == "group":
            y = group_norm(y, self.layer_norm, valid, stats)
        return self.activation(y)


def statistics_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype normalisation statistics are computed in: float32, or the norm's own dtype when wider (float64).
    Sums over thousands of frames overflow float16 (65504) and lose bits in bfloat16."""
    return torch.promote_types(weight.dtype, torch.float32)


def group_norm(x: torch.Tensor, norm: nn.GroupNorm, valid: torch.Tensor | None = None,
               stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """GroupNorm with one channel per group over x (B, C, T): statistics over the real frames `valid` (B, 1, T) only,
    or given as `stats` (mean, var), computed in float32 (or float64 for a float64 model) whatever the model's
    dtype; the result has x's dtype. Compiled, it is written out rather than nn.GroupNorm: torch 2.13's inductor
    miscompiles GroupNorm(C, C) + GELU into a kernel that corrupts the heap."""
    if valid is None and stats is None and not torch.compiler.is_compiling():
        return norm(x)  # parity: transformers' nn.GroupNorm, the same values and gradients
    dtype, x = x.dtype, x.to(statistics_dtype(norm.weight))
    if stats is not None:
        mean, var = stats
    elif valid is None:
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    else:
        valid = valid.to(x.dtype)
        count = valid.sum(-1, keepdim=True).clamp(min=1)
        mean = (x * valid).sum(-1, keepdim=True) / count
        var = (((x - mean) * valid) ** 2).sum(-1, keepdim=True) / count
    y = (x - mean) * torch.rsqrt(var + norm.eps)
    return (y * norm.weight[:, None] + norm.bias[:, None]).to(dtype)


def masked_group_norm(x: torch.Tensor, valid: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """group_norm over the real frames `valid` (B, 1, T) only."""
    return group_norm(x, norm, valid)


class ConvFeatureEncoder(nn.Module):
    """Waveform (B, N) -> conv features (B, conv_dim[-1], T); 400-sample receptive field, 320-sample hop by default."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(ConvLayer(config, i) for i in range(len(config.conv_dim)))
        self.kernels, self.strides = config.conv_kernel, config.conv_stride
        self.gradient_checkpointing = False
        self._requires_grad = True

    def _freeze_parameters(self) -> None:
        for p in self.parameters():
            p.requires_grad = False
        self._requires_grad = False

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                chunk_frames: int | None = None) -> torch.Tensor:
        """wav (B, N) float; lengths (B,) valid samples, used only for padding-invariant GroupNorm.

        `chunk_frames`: output frames per chunk; None chunks automatically when the first layer's output would be
        too large (long audio, inference), 0 never. Chunks overlap by the receptive field, so the result is the same
        as in one piece; the first layer's GroupNorm statistics are gathered in a first pass."""
        x = wav[:, None].to(self.conv_layers[0].conv.weight.dtype)  # fp32 audio into a bfloat16 model
        if self._requires_grad and self.training:
            x.requires_grad_(True)  # lets gradient checkpointing of the first layer propagate
        chunked = kernels.conv_stack(self, x, lengths, chunk_frames)  # long inputs: overlapping time chunks
        if chunked is not None:
            return chunked
        for i, layer in enumerate(self.conv_layers):
            valid = self.valid_frames(lengths, i, x.shape[-1]) if layer.norm_kind == "group" else None
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, valid, use_reentrant=False)
            else:
                x = layer(x, valid)
        return x

    def valid_frames(self, lengths: torch.Tensor | None, index: int, in_samples: int) -> torch.Tensor | None:
        """(B, 1, T) True for layer `index`'s output frames that come from real samples, or None."""
        if lengths is None:
            return None
        out_lengths = conv_output_lengths(lengths, self.kernels[:index + 1], self.strides[:index + 1])
        out_frames = conv_output_lengths(in_samples, self.kernels[index:index + 1], self.strides[index:index + 1])
        return (torch.arange(out_frames, device=lengths.device) < out_lengths[:, None])[:, None, :]


class FeatureProjection(nn.Module):
    """LayerNorm over conv features (returned as `extract_features`), then Linear to hidden_size and dropout."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)
        self.dropout = nn.Dropout(config.feat_proj_dropout)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.layer_norm(features)
        # parity: a small product, left on the default BLAS like transformers; oneDNN's rounding here would be
        # magnified by the encoder's first LayerNorm and reach every layer
        return self.dropout(self.projection(normed)), normed


# --------------------------------------------------------------------------------------------------- encoder
class PositionalConvEmbedding(nn.Module):
    """Grouped Conv1d over time (kernel 128, 16 groups) with weight norm over the kernel axis (dim=2), then GELU."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        kernel = config.num_conv_pos_embeddings
        # Registering weight norm computes a norm, which on meta tensors imports torch._dynamo (about 1 s of
        # start-up), so under a meta-device context (from_pretrained) this one module is built on the CPU; the
        # loader assigns the checkpoint's tensors to it all the same.
        on_meta = torch.empty(0).device.type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            conv = nn.Conv1d(config.hidden_size, config.hidden_size, kernel, padding=kernel // 2,
                             groups=config.num_conv_pos_embedding_groups)
            nn.init.normal_(conv.weight, 0.0, 2.0 * math.sqrt(1.0 / (kernel * config.hidden_size)))
            nn.init.zeros_(conv.bias)
            self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0  # an even kernel with padding k//2 yields one extra frame
        self.activation = activation(config.feat_extract_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)"""
        x = x.transpose(1, 2)
        weight = self.conv.weight  # weight norm: g * v / |v|, computed per call
        y = kernels.conv_activation(self.conv, x, self.activation, weight)  # CPU inference: activation fused
        if y is None:
            # parity: trim before the activation, as transformers does (same values, and the same gradient numerics)
            y = self.conv._conv_forward(x, weight, self.conv.bias)
            y = self.activation(y[:, :, :y.shape[-1] - self.trim])
        elif self.trim:
            y = y[:, :, :-self.trim]
        return y.transpose(1, 2)


class FeedForward(nn.Module):
    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        self.intermediate_dropout = nn.Dropout(config.activation_dropout)
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = activation(config.hidden_act)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = kernels.linear(self.intermediate_dense, x, self.intermediate_act_fn)  # CPU inference: activation fused
        x = self.intermediate_dropout(x)
        return self.output_dropout(kernels.linear(self.output_dense, x))


class EncoderLayer(nn.Module):
    """One transformer layer. pre_norm=False (base): x = LN(x + Attn(x)); x = LN(x + FFN(x)).
    pre_norm=True (large, "stable layer norm"): x = x + Attn(LN(x)); x = x + FFN(LN(x))."""

    def __init__(self, config: WavLMConfig, has_relative_position_bias: bool) -> None:
        super().__init__()
        self.pre_norm = config.do_stable_layer_norm
        self.attention = Attention(config, has_relative_position_bias)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor, key_padding: torch.Tensor | None,
                block_size: int | None, output_attentions: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pre_norm:
            attended, weights = self.attention(self.layer_norm(x), position_bias, key_padding, block_size,
                                               output_attentions)
            x = x + self.dropout(attended)
            x = x + self.feed_forward(self.final_layer_norm(x))
        else:
            attended, weights = self.attention(x, position_bias, key_padding, block_size, output_attentions)
            x = self.layer_norm(x + self.dropout(attended))
            x = self.final_layer_norm(x + self.feed_forward(x))
        return x, weights


class Encoder(nn.Module):
    """Positional conv + transformer layers. The relative position bias is built once per forward from layer 0's
    bucket embedding and shared by every layer, each of which gates it from its own input."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        self.config = config
        self.pos_conv_embed = PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(config, has_relative_position_bias=(i == 0))
                                    for i in range(config.num_hidden_layers))
        self.gradient_checkpointing = False
        # layerdrop draws come from this generator when set (wavlm.train seeds it identically on every rank, so
        # that all ranks skip the same layers); None = torch's default generator
        self.layerdrop_generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, attention_block_size: int | None = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """x (B, T, C); mask (B, T) bool, True = real frame. Returns (last, hidden_states, attentions)."""
        key_padding = None
        if mask is not None:
            key_padding = ~mask
            x = x.masked_fill(key_padding[..., None], 0.0)  # padded frames must not leak through the positional conv
        x = x + self.pos_conv_embed(x)
        if not self.config.do_stable_layer_norm:
            x = self.layer_norm(x)
        x = self.dropout(x)

        batch, frames, _ = x.shape
        heads = self.config.num_attention_heads
        block_size = attention_block_size
        if block_size is None:  # one piece for short inputs; query blocks for long ones or a blockwise kernel
            block_size = kernels.block_size(x, heads, output_attentions)
        elif block_size == 0 or block_size >= frames:  # 0: never split (no shape test, for export)
            block_size = None
        table = position_bias_table(self.layers[0].attention.rel_attn_embed, frames, self.config.num_buckets,
                                    self.config.max_bucket_distance)
        position_bias = table if block_size is not None else position_bias_rows(table, 0, frames)

        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        layerdrop = self.config.layerdrop if self.training else 0.0
        for i, layer in enumerate(self.layers):
            # Layer 0 is never dropped (HF PR #14811); a dropped layer repeats its input in hidden_states so that
            # the weighted layer sum always sees num_hidden_layers + 1 states.
            if i > 0 and layerdrop > 0.0 and bool(torch.rand([], generator=self.layerdrop_generator) < layerdrop):
                if hidden_states is not None:
                    hidden_states.append(x)
                continue
            if self.gradient_checkpointing and self.training:
                x, weights = checkpoint(layer, x, position_bias, key_padding, block_size, output_attentions,
                                        use_reentrant=False)
            else:
                x, weights = layer(x, position_bias, key_padding, block_size, output_attentions)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(weights)
        if self.config.do_stable_layer_norm:
            # parity: transformers 5.23 records hidden_states[-1] before this final LayerNorm
            x = self.layer_norm(x)
        return (x, tuple(hidden_states) if hidden_states is not None else None,
                tuple(attentions) if attentions is not None else None)


# --------------------------------------------------------------------------------------------------- adapter
class AdapterLayer(nn.Module):
    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        dim = config.output_hidden_size
        self.conv = nn.Conv1d(dim, 2 * dim, config.adapter_kernel_size, stride=config.adapter_stride, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.conv(x), dim=1)


class Adapter(nn.Module):
    """Optional projection + strided conv/GLU layers after the encoder (halves the frame rate per layer)."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        if config.output_hidden_size != config.hidden_size:
            self.proj = nn.Linear(config.hidden_size, config.output_hidden_size)
            self.proj_layer_norm = nn.LayerNorm(config.output_hidden_size)
        else:
            self.proj = self.proj_layer_norm = None
        self.layers = nn.ModuleList(AdapterLayer(config) for _ in range(config.num_adapter_layers))
        self.layerdrop = config.layerdrop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.proj_layer_norm(self.proj(x))
        x = x.transpose(1, 2)
        for layer in self.layers:
            # parity: transformers skips adapter layers with numpy's RNG
            if not self.training or np.random.random() > self.layerdrop:
                x = layer(x)
        return x.transpose(1, 2)


# ------------------------------------------------------------------------------------------------ base class
class WavLMPreTrainedModel(nn.Module):
    """Shared machinery: weight init, checkpoint I/O, freezing, gradient checkpointing, length helpers."""

    config_class = WavLMConfig
    base_model_prefix = "wavlm"
    main_input_name = "input_values"
    supports_gradient_checkpointing = True
    # transformers' Trainer passes num_items_in_batch to models that accept loss keywords and then leaves the loss
    # unscaled for gradient accumulation; these losses are per-batch means, so Trainer must scale them itself
    accepts_loss_kwargs = False

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__()
        if not isinstance(config, WavLMConfig):
            raise TypeError(f"{type(self).__name__} needs a wavlm.WavLMConfig, got {type(config).__module__}."
                            f"{type(config).__qualname__}; "
                            "convert a transformers config with WavLMConfig.from_dict(config.to_dict())")
        config.validate()  # fields set after the config was built are checked too
        self.config = config

    # -- initialisation
    def post_init(self) -> None:
        if next(self.parameters()).device.type != "meta":
            self.apply(self._init_weights)
        # as transformers: the legacy config key `gradient_checkpointing: true` turns checkpointing on and is
        # consumed, so that save_pretrained does not write it back
        if getattr(self.config, "gradient_checkpointing", False):
            self.activation_checkpointing_enable()
            delattr(self.config, "gradient_checkpointing")

    def _init_weights(self, module: nn.Module) -> None:
        # nn.Module.apply visits children before parents, so FeatureProjection overrides its Linear's default.
        std = self.config.initializer_range
        if isinstance(module, FeatureProjection):
            bound = 1.0 / math.sqrt(module.projection.in_features)
            nn.init.uniform_(module.projection.weight, -bound, bound)
            nn.init.uniform_(module.projection.bias, -bound, bound)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d) and not nn.utils.parametrize.is_parametrized(module):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, WavLMModel) and hasattr(module, "masked_spec_embed"):
            nn.init.uniform_(module.masked_spec_embed)

    # -- checkpoints
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None, *model_args: Any,
                        **kwargs: Any) -> "WavLMPreTrainedModel" | tuple["WavLMPreTrainedModel", dict]:
        """Load from a local directory (config.json + model.safetensors / pytorch_model.bin / shards, or its
        `subfolder`), a Hub repo id, an original microsoft/unilm checkpoint file, or `None` with `config=` and
        `state_dict=`. `output_loading_info=True` also returns transformers' dict of missing, unexpected and
        mismatched keys; `strict=False` initialises missing backbone weights as transformers does (refused by
        default). See `wavlm.checkpoint.load_checkpoint` for every option."""
        from wavlm.checkpoint import load_pretrained

        if model_args:
            raise TypeError("from_pretrained takes the model path and keyword arguments only")
        return load_pretrained(cls, pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write config.json and model.safetensors (or shards, see `wavlm.checkpoint.save_pretrained`) that both
        wavlm and transformers load."""
        from wavlm.checkpoint import save_pretrained

        save_pretrained(self, save_directory, **kwargs)

    # -- training helpers
    def freeze_feature_encoder(self) -> None:
        """Stop gradients into the conv feature encoder (its parameters are no longer trained)."""
        self._backbone().feature_extractor._freeze_parameters()

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """Recompute each conv and encoder layer's activations in the backward pass instead of storing them
        (training only), with `torch.utils.checkpoint(use_reentrant=False)`; the transformers 5.23 name."""
        options = dict(activation_checkpointing_kwargs or {})
        if options.pop("use_reentrant", False) or options or every_n_layers != 1 or offload:
            raise ValueError("wavlm checkpoints every layer with use_reentrant=False and keeps the saved tensors "
                             "on their device; got activation_checkpointing_kwargs="
                             f"{activation_checkpointing_kwargs}, every_n_layers={every_n_layers}, offload={offload}")
        self._set_checkpointing(True)

    def activation_checkpointing_disable(self) -> None:
        self._set_checkpointing(False)

    @property
    def is_activation_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None,
                                      **kwargs: Any) -> None:
        """The transformers 4.x name of `activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self._set_checkpointing(False)

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.is_activation_checkpointing

    def _set_checkpointing(self, enable: bool) -> None:
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = enable

    # -- model surface shared with transformers' PreTrainedModel
    @property
    def base_model(self) -> "WavLMModel":
        """The WavLMModel backbone (the model itself for WavLMModel)."""
        return self._backbone()

    def tie_weights(self, **kwargs: Any) -> None:
        """WavLM ties no weights; kept so that code written for transformers models runs."""

    def can_generate(self) -> bool:
        return False

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes held by the parameters (and buffers)."""
        tensors = list(self.parameters()) + (list(self.buffers()) if return_buffers else [])
        return sum(t.numel() * t.element_size() for t in tensors)

    def _backbone(self) -> "WavLMModel":
        return self if isinstance(self, WavLMModel) else getattr(self, self.base_model_prefix)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count; `exclude_embeddings` leaves out embedding tables (the relative position buckets), as
        transformers does."""
        skip = set()
        if exclude_embeddings:
            skip = {id(p) for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        return sum(p.numel() for p in self.parameters()
                   if (p.requires_grad or not only_trainable) and id(p) not in skip)

    # -- lengths and masks
    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor | int,
                                         add_adapter: bool | None = None) -> torch.Tensor | int:
        """Frames produced from `input_lengths` samples (and through the adapter if it applies)."""
        config = self.config
        add_adapter = config.add_adapter if add_adapter is None else add_adapter
        as_int = isinstance(input_lengths, int)
        lengths = torch.as_tensor(input_lengths)
        lengths = conv_output_lengths(lengths, config.conv_kernel, config.conv_stride)
        if add_adapter:
            for _ in range(config.num_adapter_layers):
                lengths = torch.div(lengths - 1, config.adapter_stride, rounding_mode="floor") + 1
        return int(lengths) if as_int else lengths

    def _get_feature_vector_attention_mask(self, feature_vector_length: int, attention_mask: torch.Tensor,
                                           add_adapter: bool | None = None) -> torch.Tensor:
        """Sample-level mask (B, N), right-padded, -> frame-level bool mask (B, T), True = real frame."""
        lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1), add_adapter=add_adapter)
        frames = torch.arange(feature_vector_length, device=attention_mask.device)
        return frames[None, :] < lengths[:, None].to(attention_mask.device)


def _few(items: list[int], limit: int = 10) -> str:
    """At most `limit` batch indices, then how many more."""
    return str(items) if len(items) <= limit else f"{items[:limit]} (and {len(items) - limit} more)"


def check_inputs(config: WavLMConfig, input_values: Any, attention_mask: Any) -> None:
    """Reject input the model cannot use, with a message that names the problem (skipped while compiling)."""
    if torch.compiler.is_compiling():
        return
    if not torch.is_tensor(input_values):
        raise TypeError(f"input_values must be a torch.Tensor of shape (batch, samples), got "
                        f"{type(input_values).__name__}; the feature extractor builds one from arrays or lists")
    if not input_values.is_floating_point():
        raise TypeError(f"input_values must be a floating-point tensor, got {input_values.dtype}; scale integer "
                        "PCM to [-1, 1] (e.g. x.float() / 32768) or use the feature extractor")
    if input_values.dim() != 2:
        hint = ("add a batch dimension: input_values[None]" if input_values.dim() == 1 else
                "mix channels down to mono or pass one channel per batch row")
        raise ValueError(f"input_values must be 2-D (batch, samples), got shape {tuple(input_values.shape)}; {hint}")
    field_ = config.receptive_field
    if input_values.shape[1] < field_:
        raise ValueError(f"audio of {input_values.shape[1]} samples is shorter than the model's receptive field of "
                         f"{field_} samples ({field_ / 16:.0f} ms at 16 kHz); pad or drop it")
    finite = torch.isfinite(input_values).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"input_values contains NaN or infinite samples in batch item(s) {bad}")
    if attention_mask is not None:
        if not torch.is_tensor(attention_mask):
            raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
        if attention_mask.shape != input_values.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but input_values has shape "
                             f"{tuple(input_values.shape)}; they must match (one entry per sample)")
        binary = None if attention_mask.dtype == torch.bool else (attention_mask == 0) | (attention_mask == 1)
        if binary is not None and not bool(binary.all()):
            rows = (~binary.all(dim=1)).nonzero().flatten().tolist()
            values = torch.unique(attention_mask[~binary])[:5].tolist()
            raise ValueError(f"attention_mask must hold only 0 (padding) and 1 (real sample); batch item(s) "
                             f"{_few(rows)} hold {values}")
        mask = attention_mask.to(torch.int8)
        # right padding: once a row has a 0 it stays 0 (a 0 followed by a 1 is left padding or a hole)
        unpadded = (mask[:, 1:] > mask[:, :-1]).any(dim=1)
        if bool(unpadded.any()):
            rows = unpadded.nonzero().flatten().tolist()
            raise ValueError(f"attention_mask of batch item(s) {_few(rows)} is not right-padded (a 0 comes before a "
                             "1): WavLM takes each row's real samples first and padding after them; pad on the right "
                             "(the feature extractor's default padding_side='right')")
        lengths = mask.sum(-1, dtype=torch.long)
        short = (lengths < field_).nonzero().flatten().tolist()
        if short:
            raise ValueError(f"batch item(s) {short} have fewer valid samples ({lengths[short].tolist()}) than the "
                             f"receptive field of {field_} samples")


def check_mask_time_indices(model: WavLMPreTrainedModel, mask_time_indices: Any, batch: int, frames: int) -> None:
    """mask_time_indices must be a (batch, frames) 0/1 or bool tensor, and the model must have its mask embedding."""
    if torch.compiler.is_compiling():
        return
    if not torch.is_tensor(mask_time_indices):
        raise TypeError(f"mask_time_indices must be a torch.Tensor of shape (batch, frames), got "
                        f"{type(mask_time_indices).__name__}")
    if tuple(mask_time_indices.shape) != (batch, frames):
        raise ValueError(f"mask_time_indices has shape {tuple(mask_time_indices.shape)}, but this input gives "
                         f"(batch, frames) = ({batch}, {frames}): one entry per output frame "
                         "(model._get_feat_extract_output_lengths(samples) frames)")
    if mask_time_indices.dtype != torch.bool and not bool(((mask_time_indices == 0) | (mask_time_indices == 1)).all()):
        raise ValueError("mask_time_indices must hold only 0/1 (or True/False), True = frame to mask")
    if not hasattr(model, "masked_spec_embed"):
        raise ValueError("mask_time_indices needs the learned mask embedding, which this model has only when "
                         "config.mask_time_prob > 0 or config.mask_feature_prob > 0")


def check_finite_output(model: WavLMPreTrainedModel, output: torch.Tensor, input_values: torch.Tensor) -> None:
    """In inference, NaN or infinite hidden states raise naming the batch items and the likely cause (audio far
    outside [-1, 1], weights that are not finite, or a float16 overflow) instead of being returned."""
    if torch.compiler.is_compiling():
        return
    finite = torch.isfinite(output).flatten(1).all(dim=1)
    if bool(finite.all()):
        return
    rows = (~finite).nonzero().flatten().tolist()
    peak = float(input_values[rows].abs().max())
    bad = [name for name, p in model.named_parameters() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad:
        cause = f"the model's weights are not finite (NaN or inf in {_few(bad, 5)})"
    elif peak > 1e4:
        cause = (f"the audio is far outside [-1, 1] (max |x| = {peak:.3g}); normalise it (the feature extractor's "
                 "do_normalize=True) or scale integer PCM to [-1, 1]")
    elif output.dtype in (torch.float16, torch.bfloat16):
        cause = f"the computation overflowed {str(output.dtype).replace('torch.', '')}; run the model in float32"
    else:
        cause = f"the computation overflowed (max |x| = {peak:.3g})"
    raise ValueError(f"the model produced NaN or infinite hidden states for batch item(s) {_few(rows)}: "
                             f"{cause}")


class WavLMModel(WavLMPreTrainedModel):
    """The bare WavLM encoder: waveform (B, N) at 16 kHz -> hidden states (B, T, hidden_size) at 50 frames/s."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self.feature_extractor = ConvFeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        if config.mask_time_prob > 0.0 or config.mask_feature_prob > 0.0:
            self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size))
        self.encoder = Encoder(config)
        self.adapter = Adapter(config) if config.add_adapter else None
        self.post_init()

    def _mask_hidden_states(self, x: torch.Tensor, mask_time_indices: torch.Tensor | None,
                            frame_mask: torch.Tensor | None) -> torch.Tensor:
        """SpecAugment: learned-embedding spans over time, zero spans over channels (training, or when
        `mask_time_indices` is given)."""
        config = self.config
        if not config.apply_spec_augment:
            return x
        batch, frames, channels = x.shape
        if mask_time_indices is not None:
            check_mask_time_indices(self, mask_time_indices, batch, frames)
            x = torch.where(mask_time_indices.bool()[..., None], self.masked_spec_embed.to(x.dtype), x)
        elif config.mask_time_prob > 0 and self.training:
            spans = compute_mask_indices((batch, frames), config.mask_time_prob, config.mask_time_length,
                                         attention_mask=frame_mask, min_masks=config.mask_time_min_masks)
            spans = torch.as_tensor(spans, device=x.device)
            x = torch.where(spans[..., None], self.masked_spec_embed.to(x.dtype), x)
        if config.mask_feature_prob > 0 and self.training:
            spans = compute_mask_indices((batch, channels), config.mask_feature_prob, config.mask_feature_length,
                                         min_masks=config.mask_feature_min_masks, axis="channels")
            x = x.masked_fill(torch.as_tensor(spans, device=x.device)[:, None, :], 0.0)
        return x

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None, *, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                attention_block_size: int | None = None) -> WavLMBaseModelOutput | tuple:
        """input_values (B, N) float waveform at 16 kHz (zero-mean unit-variance if the feature extractor
        normalises); attention_mask (B, N) 1 for real samples, 0 for right padding. The positional order is
        transformers 5.23's; the other arguments are keyword-only, and an unknown keyword raises TypeError.

        `attention_block_size` (wavlm only): query rows per attention block; None chooses full attention for short
        inputs and exact blockwise attention (linear memory) for long ones; 0 always runs full attention. `output_attentions=True` returns real
        per-head weights (B, H, T, T); transformers returns the head average repeated over heads.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        check_inputs(config, input_values, attention_mask)
        if attention_block_size is not None and (isinstance(attention_block_size, bool) or
                                                 not isinstance(attention_block_size, int) or attention_block_size < 0):
            raise ValueError(f"attention_block_size must be None (automatic), 0 (full attention) or a positive "
                             f"number of query rows, got {attention_block_size!r}")

        sample_lengths = attention_mask.sum(-1) if attention_mask is not None else None
        use_lengths = config.mask_padding_in_group_norm and sample_lengths is not None
        features = self.feature_extractor(input_values, sample_lengths if use_lengths else None)
        features = features.transpose(1, 2)
        frame_mask = None
        if attention_mask is not None:
            frame_mask = self._get_feature_vector_attention_mask(features.shape[1], attention_mask, add_adapter=False)
        x, extract_features = self.feature_projection(features)
        x = self._mask_hidden_states(x, mask_time_indices, frame_mask)

        x, hidden_states, attentions = self.encoder(x, frame_mask, output_hidden_states, output_attentions,
                                                    attention_block_size)
        if self.adapter is not None:
            x = self.adapter(x)
        if not self.training:
            check_finite_output(self, x, input_values)
        out = WavLMBaseModelOutput(last_hidden_state=x, extract_features=extract_features,
                                   hidden_states=hidden_states, attentions=attentions)
        return out if return_dict else out.to_tuple()
