"""Task heads on the WavLM backbone: CTC speech recognition, utterance classification, frame classification
(diarization) and x-vector speaker embeddings (Snyder et al. 2018 TDNN + statistics pooling, AM-softmax loss).

Losses and pooling follow transformers 5.23; where this library deliberately differs it says so in the docstring.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wavlm.config import WavLMConfig
from wavlm.frames import min_samples
from wavlm.model import WavLMModel, WavLMPreTrainedModel
from wavlm.outputs import CausalLMOutput, SequenceClassifierOutput, TokenClassifierOutput, XVectorOutput

# Every head's forward takes (input_values, attention_mask, labels) positionally, as transformers 5.23, and
# mask_time_indices / output_attentions / output_hidden_states / return_dict / attention_block_size by keyword;
# there is no **kwargs, so a misspelt keyword raises TypeError instead of being ignored.


class _HeadModel(WavLMPreTrainedModel):
    """A backbone under `self.wavlm` plus the optional learned softmax-weighted sum over all hidden states."""

    uses_weighted_layer_sum = True  # the CTC head always reads the last hidden state, as in transformers

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self.wavlm = WavLMModel(config)
        self.weighted = config.use_weighted_layer_sum and self.uses_weighted_layer_sum
        if self.weighted:
            num_states = config.num_hidden_layers + 1
            self.layer_weights = nn.Parameter(torch.ones(num_states) / num_states)

    def _init_weights(self, module: nn.Module) -> None:
        if module is self and self.weighted:
            nn.init.constant_(self.layer_weights, 1.0 / self.layer_weights.numel())
        else:
            super()._init_weights(module)

    def freeze_base_model(self) -> None:
        """Train only the head: no gradients into the WavLM backbone."""
        for p in self.wavlm.parameters():
            p.requires_grad = False

    def _run_backbone(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None,
                      mask_time_indices: torch.Tensor | None, output_attentions: bool | None,
                      output_hidden_states: bool | None, attention_block_size: int | None
                      ) -> tuple[torch.Tensor, Any]:
        """Features for the head (B, T, C): the last hidden state, or the weighted sum of all hidden states."""
        if self.weighted:
            output_hidden_states = True
        outputs = self.wavlm(input_values, attention_mask, mask_time_indices, output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states, return_dict=True,
                             attention_block_size=attention_block_size)
        if not self.weighted:
            return outputs.last_hidden_state, outputs
        states = torch.stack(outputs.hidden_states, dim=1)  # (B, L+1, T, C)
        weights = torch.softmax(self.layer_weights, dim=-1).to(states.dtype)
        return (states * weights.view(-1, 1, 1)).sum(dim=1), outputs

    def _frame_mask(self, frames: int, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        return self._get_feature_vector_attention_mask(frames, attention_mask)

    def _reject_adapter(self) -> None:
        if self.config.add_adapter:
            raise ValueError(f"{type(self).__name__} does not support the adapter (config.add_adapter=True); "
                             "the adapter changes the frame rate the head pools over")


def _finish(output_cls: type, return_dict: bool | None, config: WavLMConfig, **fields: Any) -> Any:
    out = output_cls(**fields)
    return out if (config.return_dict if return_dict is None else return_dict) else out.to_tuple()


class WavLMForCTC(_HeadModel):
    """WavLM with a linear CTC head: logits (B, T, vocab_size); `config.pad_token_id` is the CTC blank."""

    uses_weighted_layer_sum = False

    def __init__(self, config: WavLMConfig, target_lang: str | None = None) -> None:
        super().__init__(config)
        if target_lang is not None:
            raise ValueError("target_lang selects a language adapter; WavLM checkpoints have none "
                             "(config.adapter_attn_dim is not a WavLM field)")
        self.dropout = nn.Dropout(config.final_dropout)
        in_dim = config.output_hidden_size if config.add_adapter else config.hidden_size
        self.lm_head = nn.Linear(in_dim, config.vocab_size)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, mask_time_indices: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, attention_block_size: int | None = None
                ) -> CausalLMOutput | tuple:
        """labels (B, L) int token ids, padded with -100; ids equal to pad_token_id (the blank) are ignored too,
        as in transformers 5.23. The loss is `F.ctc_loss` with `config.ctc_loss_reduction` / `ctc_zero_infinity`
        over log-probabilities computed in float32."""
        hidden, outputs = self._run_backbone(input_values, attention_mask, mask_time_indices, output_attentions,
                                             output_hidden_states, attention_block_size)
        logits = self.lm_head(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = self.ctc_loss(logits, labels, input_values, attention_mask)
        return _finish(CausalLMOutput, return_dict, self.config, loss=loss, logits=logits,
                       hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def ctc_loss(self, logits: torch.Tensor, labels: torch.Tensor, input_values: torch.Tensor,
                 attention_mask: torch.Tensor | None) -> torch.Tensor:
        config = self.config
        check_ctc_labels(config, labels, input_values.shape[0])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_values, dtype=torch.long)
        input_lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1)).to(torch.long)
        targets_mask = (labels != -100) & (labels != config.pad_token_id)
        target_lengths = targets_mask.sum(-1)
        targets = labels.masked_select(targets_mask)
        log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        with torch.backends.cudnn.flags(enabled=False):
            return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=config.pad_token_id,
                              reduction=config.ctc_loss_reduction, zero_infinity=config.ctc_zero_infinity)


class WavLMForSequenceClassification(_HeadModel):
    """Utterance classification: projector -> masked mean over frames -> classifier, logits (B, num_labels).

    Loss: cross-entropy for integer labels; mean squared error when `num_labels == 1` or
    `problem_type == "regression"`; BCE-with-logits for `problem_type == "multi_label_classification"`.
    (transformers 5.23 always applies cross-entropy, which fails on float regression targets.)
    """

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self._reject_adapter()
        self.projector = nn.Linear(config.hidden_size, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, config.num_labels)
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, mask_time_indices: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, attention_block_size: int | None = None
                ) -> SequenceClassifierOutput | tuple:
        hidden, outputs = self._run_backbone(input_values, attention_mask, mask_time_indices, output_attentions,
                                             output_hidden_states, attention_block_size)
        hidden = self.projector(hidden)
        mask = self._frame_mask(hidden.shape[1], attention_mask)
        if mask is None:
            pooled = hidden.mean(dim=1)
        else:
            # summed in float32 at least: over a few thousand frames a float16 sum overflows
            hidden = hidden.masked_fill(~mask[..., None], 0.0)
            wide = torch.promote_types(hidden.dtype, torch.float32)
            pooled = (hidden.sum(dim=1, dtype=wide) / mask.sum(dim=1, keepdim=True).to(wide)).to(hidden.dtype)
        logits = self.classifier(pooled)
        loss = None if labels is None else self.classification_loss(logits, labels)
        return _finish(SequenceClassifierOutput, return_dict, self.config, loss=loss, logits=logits,
                       hidden_states=outputs.hidden_states, attentions=outputs.attentions)

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_labels, problem = self.config.num_labels, self.config.problem_type
        batch = logits.shape[0]
        if problem == "regression" or (problem is None and num_labels == 1):
            target = logits.squeeze(-1) if num_labels == 1 else logits
            if num_labels == 1 and torch.is_tensor(labels) and tuple(labels.shape) == (batch, 1):
                labels = labels[:, 0]  # (batch, 1) targets: one value per item, as (batch,)
            check_float_labels(labels, target.shape, "regression")
            return F.mse_loss(target, labels.to(logits.dtype))
        if problem == "multi_label_classification":
            check_float_labels(labels, logits.shape, "multi-label classification", unit_interval=True)
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        check_class_labels(labels, num_labels, batch)
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))


class WavLMForAudioFrameClassification(_HeadModel):
    """Per-frame classification (e.g. speaker activity for diarization): logits (B, T, num_labels).

    labels (B, T, num_labels) one-/multi-hot; the loss is cross-entropy against their argmax over all frames,
    padded ones included, as in transformers."""

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self._reject_adapter()
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.num_labels = config.num_labels
        self.post_init()

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, mask_time_indices: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, attention_block_size: int | None = None
                ) -> TokenClassifierOutput | tuple:
        hidden, outputs = self._run_backbone(input_values, attention_mask, mask_time_indices, output_attentions,
                                             output_hidden_states, attention_block_size)
        logits = self.classifier(hidden)
        loss = None
        if labels is not None:
            num_labels = self.config.num_labels
            check_float_labels(labels, logits.shape, "frame classification (one-/multi-hot per frame)")
            loss = F.cross_entropy(logits.reshape(-1, num_labels), labels.reshape(-1, num_labels).argmax(dim=1))
        return _finish(TokenClassifierOutput, return_dict, self.config, loss=loss, logits=logits,
                       hidden_states=outputs.hidden_states, attentions=outputs.attentions)


class AMSoftmaxLoss(nn.Module):
    """Additive-margin softmax (Wang et al. 2018): cross-entropy over scale * (cos - margin on the target class)."""

    def __init__(self, input_dim: int, num_labels: int, scale: float = 30.0, margin: float = 0.4) -> None:
        super().__init__()
        self.scale, self.margin, self.num_labels = scale, margin, num_labels
        self.weight = nn.Parameter(torch.randn(input_dim, num_labels))

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.flatten()
        cosine = F.normalize(hidden, dim=1) @ F.normalize(self.weight, dim=0)
        target = F.one_hot(labels, self.num_labels).bool()
        logits = self.scale * torch.where(target, cosine - self.margin, cosine)
        return F.cross_entropy(logits, labels)


class TDNNLayer(nn.Module):
    """Dilated 1-D convolution over time stored as a Linear over k stacked frames (transformers' layout), + ReLU."""

    def __init__(self, config: WavLMConfig, index: int) -> None:
        super().__init__()
        self.in_dim = config.tdnn_dim[index - 1] if index > 0 else config.tdnn_dim[index]
        self.out_dim = config.tdnn_dim[index]
        self.kernel_size = config.tdnn_kernel[index]
        self.dilation = config.tdnn_dilation[index]
        self.kernel = nn.Linear(self.in_dim * self.kernel_size, self.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T - dilation * (kernel - 1), out_dim)"""
        weight = self.kernel.weight.view(self.out_dim, self.kernel_size, self.in_dim).transpose(1, 2)
        y = F.conv1d(x.transpose(1, 2), weight, self.kernel.bias, dilation=self.dilation)
        return F.relu(y.transpose(1, 2))


class WavLMForXVector(_HeadModel):
    """Speaker embeddings: projector -> TDNN stack -> mean+std pooling -> `embeddings` (B, xvector_output_dim) ->
    classifier `logits`; AM-softmax loss against integer speaker labels.

    With an attention_mask, each utterance pools over its first `L - sum(kernel - 1)` TDNN frames, where L is its
    frame count: transformers ignores dilation here, so up to sum((k-1)(d-1)) = 6 pooled frames saw padding. This
    is reproduced for parity (`config.xvector_exact_pooling=True` pools only frames computed from real audio).
    """

    def __init__(self, config: WavLMConfig) -> None:
        super().__init__(config)
        self.projector = nn.Linear(config.hidden_size, config.tdnn_dim[0])
        self.tdnn = nn.ModuleList(TDNNLayer(config, i) for i in range(len(config.tdnn_dim)))
        self.feature_extractor = nn.Linear(config.tdnn_dim[-1] * 2, config.xvector_output_dim)
        self.classifier = nn.Linear(config.xvector_output_dim, config.xvector_output_dim)
        self.objective = AMSoftmaxLoss(config.xvector_output_dim, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, AMSoftmaxLoss):
            nn.init.normal_(module.weight, 0.0, 1.0)
        else:
            super()._init_weights(module)

    def _get_tdnn_output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        exact = self.config.xvector_exact_pooling
        for kernel, dilation in zip(self.config.tdnn_kernel, self.config.tdnn_dilation):
            lengths = lengths - (kernel - 1) * (dilation if exact else 1)  # parity: dilation ignored by default
        return lengths

    def _check_tdnn_frames(self, frames: int, row_frames: torch.Tensor | None, needed: int) -> None:
        """The TDNN stack needs `needed` backbone frames per utterance (padded rows counted by their real frames)."""
        what = (f"the x-vector TDNN needs at least 2 output frames, i.e. {needed} backbone frames "
                f"({xvector_min_samples(self.config)} samples at 16 kHz)")
        if frames < needed:
            raise ValueError(f"{what}; this audio gives {frames} frames")
        if row_frames is not None and not torch.compiler.is_compiling():
            short = (row_frames < needed).nonzero().flatten().tolist()
            if short:
                raise ValueError(f"{what}; batch item(s) {short} give only {row_frames[short].tolist()} frames "
                                 "(their attention_mask counts fewer real samples): drop or pad them")

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, mask_time_indices: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, attention_block_size: int | None = None
                ) -> XVectorOutput | tuple:
        hidden, outputs = self._run_backbone(input_values, attention_mask, mask_time_indices, output_attentions,
                                             output_hidden_states, attention_block_size)
        needed = frames_needed(self.config)
        backbone_frames = None
        if attention_mask is not None:
            backbone_frames = self._get_feat_extract_output_lengths(attention_mask.sum(-1))
        self._check_tdnn_frames(hidden.shape[1], backbone_frames, needed)
        x = self.projector(hidden)
        for layer in self.tdnn:
            x = layer(x)
        frames, dtype = x.shape[1], x.dtype
        x = x.to(torch.promote_types(dtype, torch.float32))  # pooling statistics in float32 (float16 overflows)
        if attention_mask is None:
            mean, std = x.mean(dim=1), x.std(dim=1)
        else:
            lengths = self._get_tdnn_output_lengths(backbone_frames)
            lengths = lengths.clamp(min=1, max=frames).to(x.device)
            valid = (torch.arange(frames, device=x.device)[None, :] < lengths[:, None])[..., None].to(x.dtype)
            count = lengths[:, None].to(x.dtype)
            mean = (x * valid).sum(dim=1) / count
            var = (((x - mean[:, None]) * valid) ** 2).sum(dim=1) / (count - 1)
            # clamping keeps the gradient finite (zero) where a channel is constant, as torch.std's backward does
            std = var.clamp_min(torch.finfo(var.dtype).tiny).sqrt()
        embeddings = self.feature_extractor(torch.cat([mean, std], dim=-1).to(dtype))
        logits = self.classifier(embeddings)
        loss = None
        if labels is not None:
            check_class_labels(labels, self.config.num_labels, logits.shape[0])
            loss = self.objective(logits, labels)
        return _finish(XVectorOutput, return_dict, self.config, loss=loss, logits=logits, embeddings=embeddings,
                       hidden_states=outputs.hidden_states, attentions=outputs.attentions)


def frames_needed(config: WavLMConfig) -> int:
    """Backbone frames the TDNN stack needs to produce two output frames."""
    return 2 + sum((k - 1) * d for k, d in zip(config.tdnn_kernel, config.tdnn_dilation))


def xvector_min_samples(config: WavLMConfig) -> int:
    """Samples (at 16 kHz) of the shortest input an x-vector model embeds: frames_needed backbone frames."""
    return min_samples(frames_needed(config), config.conv_kernel, config.conv_stride)


# ------------------------------------------------------------------------------------------------- label checks
# Labels are checked before a loss sees them: torch's own errors for these name no field (or, on CUDA, abort the
# process with a device-side assert), and NaN targets give a NaN loss without a word.
def _is_checking() -> bool:
    return not torch.compiler.is_compiling()


def check_ctc_labels(config: WavLMConfig, labels: Any, batch: int) -> None:
    """CTC labels: an integer (batch, length) tensor of ids in [0, vocab_size), padded with -100 (or the blank)."""
    if not _is_checking():
        return
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        what = labels.dtype if torch.is_tensor(labels) else type(labels).__name__
        raise TypeError(f"CTC labels must be an integer tensor of token ids (e.g. torch.long), got {what}")
    if labels.dim() != 2 or labels.shape[0] != batch:
        raise ValueError(f"CTC labels must have shape (batch, label_length) with batch {batch}, got "
                         f"{tuple(labels.shape)}")
    blank = config.pad_token_id
    if blank is None or not 0 <= blank < config.vocab_size:
        raise ValueError(f"CTC needs config.pad_token_id (the blank) to be an id in [0, vocab_size="
                         f"{config.vocab_size}), got {blank}")
    bad = labels[(labels != -100) & ((labels < 0) | (labels >= config.vocab_size))]
    if bad.numel():
        raise ValueError(f"labels contain id(s) {torch.unique(bad)[:5].tolist()} outside [0, vocab_size="
                         f"{config.vocab_size}); pad label rows with -100")


def check_class_labels(labels: Any, num_labels: int, batch: int) -> None:
    """Class labels: an integer tensor of one id in [0, num_labels) per batch item."""
    if not _is_checking():
        return
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        what = labels.dtype if torch.is_tensor(labels) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor of class ids (e.g. torch.long), got {what}; for float "
                        "targets set config.problem_type to 'regression' or 'multi_label_classification'")
    if labels.numel() != batch:
        raise ValueError(f"labels must hold one class id per batch item ({batch}), got shape {tuple(labels.shape)}")
    bad = labels[(labels < 0) | (labels >= num_labels)]
    if bad.numel():
        raise ValueError(f"labels contain class id(s) {torch.unique(bad)[:5].tolist()} outside [0, num_labels="
                         f"{num_labels})")


def check_float_labels(labels: Any, shape: torch.Size | tuple, task: str, unit_interval: bool = False) -> None:
    """Float targets of the logits' shape, finite (and in [0, 1] for BCE)."""
    if not _is_checking():
        return
    if not torch.is_tensor(labels):
        raise TypeError(f"labels for {task} must be a tensor, got {type(labels).__name__}")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"labels for {task} must have shape {tuple(shape)} (that of the logits), got "
                         f"{tuple(labels.shape)}")
    if labels.is_floating_point() and not bool(torch.isfinite(labels).all()):
        raise ValueError(f"labels for {task} contain NaN or infinite values")
    if unit_interval and not bool(((labels >= 0) & (labels <= 1)).all()):
        raise ValueError(f"labels for {task} must lie in [0, 1] (one probability per class)")
