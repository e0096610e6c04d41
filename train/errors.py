"""Every exception class of ``train/``, under one base the CLI catches (:class:`TrainError`).

Argument checks of library functions stay ``ValueError``/``TypeError``; configuration problems
are :class:`common.configio.ConfigError` (exit 2). Everything that stops a run or an evaluation
because data, a checkpoint or an invariant is wrong derives from :class:`TrainError` (exit 1).
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "LoaderError",
    "NonFiniteLossError",
    "SampleAccountingError",
    "TrainError",
    "TrainingError",
]


class TrainError(RuntimeError):
    """Base of the errors of ``train/``; ``train`` prints ``train: error: message``, exit 1."""


class TrainingError(TrainError):
    """A run or an evaluation stopped because an invariant failed (message says which)."""


class SampleAccountingError(TrainingError):
    """A split was not seen exactly once (samples missing or repeated)."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite."""


class LoaderError(TrainError):
    """The data loader broke its plan (worker count or batch count differs from the plan)."""


class CheckpointError(TrainError):
    """A checkpoint is missing, unreadable or incompatible."""
