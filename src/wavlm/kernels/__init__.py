"""The fast paths of the model (oneDNN products and convolutions, blockwise attention, chunked conv stack, and
attention for training that recomputes its weights in backward), chosen by what the hardware has. The model calls
into them at a few marked places and computes the same without them; `plan()` says which kernel runs where and why,
WAVLM_KERNELS overrides it (see dispatch.py)."""
from wavlm.kernels.attention import (RecomputedAttention, block_size, blockwise_attention, dropout_keep_mask,
                                    gated_attention, gated_bias, reversed_bias_rows)
from wavlm.kernels.conv import conv_activation, conv_layer, conv_stack
from wavlm.kernels.dense import linear
from wavlm.kernels.dispatch import (ENV, KERNELS, REFERENCE, Capability, Choice, KernelConfigError, Plan,
                                    bfloat16_native, detect, kernel, plan, system_info, warn_once)

__all__ = ["ENV", "KERNELS", "REFERENCE", "Capability", "Choice", "KernelConfigError", "Plan", "RecomputedAttention",
           "bfloat16_native", "block_size", "blockwise_attention", "conv_activation", "conv_layer", "conv_stack",
           "detect", "dropout_keep_mask", "gated_attention", "gated_bias", "kernel", "linear", "plan",
           "reversed_bias_rows", "system_info", "warn_once"]
