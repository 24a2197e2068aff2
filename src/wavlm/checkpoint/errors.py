"""The one error type for checkpoints that cannot be read or do not fit the model."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or its keys or shapes do not match the model; the message names them."""
