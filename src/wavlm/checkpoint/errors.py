"""The error types for checkpoints that cannot be read or do not fit the model."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or its keys or shapes do not match the model; the message names them."""


class ShapeMismatchError(CheckpointError, RuntimeError):
    """Checkpoint tensors whose shapes differ from the model's. Also a RuntimeError, which is what transformers
    raises for a size mismatch without ignore_mismatched_sizes, so `except RuntimeError` code keeps working."""


class MissingFileError(CheckpointError, FileNotFoundError):
    """A model directory or repo lacks config.json or weights. Also a FileNotFoundError (an OSError), which is
    what transformers raises there."""
