"""Output records with the field names of transformers: attribute access, key access, and index/tuple access that
skips fields left as None (so `return_dict=False` tuples come out in transformers' order)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # annotations only: the tokenizer's decode output uses ModelOutput without importing torch
    import torch


@dataclass
class ModelOutput:
    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


@dataclass
class WavLMBaseModelOutput(ModelOutput):
    """`last_hidden_state` (B, T, C); `extract_features` (B, T, conv_dim[-1]) after the feature projection's LayerNorm;
    `hidden_states`: num_hidden_layers + 1 tensors (B, T, C); `attentions`: per layer (B, H, T, T)."""

    last_hidden_state: torch.Tensor | None = None
    extract_features: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


Wav2Vec2BaseModelOutput = WavLMBaseModelOutput


@dataclass
class CausalLMOutput(ModelOutput):
    """CTC output: `logits` (B, T, vocab_size) before the softmax, `loss` a scalar when labels were given."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    """Utterance classification: `logits` (B, num_labels)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    """Frame classification: `logits` (B, T, num_labels)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class XVectorOutput(ModelOutput):
    """Speaker embeddings: `logits` (B, xvector_output_dim) from the classifier, `embeddings` (B, xvector_output_dim)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
