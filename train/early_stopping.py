"""Early stopping on a validation metric, with a state that survives checkpoint/resume."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.configio import check
from train.metrics import HEADLINE_METRIC, monitorable_metrics


@dataclass
class EarlyStoppingConfig:
    """Which validation metric selects the best checkpoint and when to stop.

    Attributes
    ----------
    enabled : bool
        Stop after ``patience`` epochs without improvement. When False the best checkpoint is
        still selected by ``monitor`` but training runs all epochs.
    monitor : str
        A validation metric with a direction in the metric table
        (:func:`train.metrics.monitorable_metrics`: ``auc``, ``tpr@fpr1e-3``, ``loss``, ...).
    mode : str
        ``"max"`` or ``"min"``; must match the metric's direction.
    patience : int
        Epochs without improvement tolerated before stopping.
    min_delta : float
        An improvement must exceed the best value by more than this.
    """

    enabled: bool = True
    monitor: str = HEADLINE_METRIC
    mode: str = "max"
    patience: int = 3
    min_delta: float = 0.0

    def validate(self, prefix: str = "early_stopping") -> None:
        """Check values; raise :class:`~common.configio.ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        modes = monitorable_metrics()
        check(
            self.monitor in modes,
            f"{p}monitor",
            f"unknown metric '{self.monitor}' (choose from {', '.join(modes)})",
        )
        check(self.mode in ("max", "min"), f"{p}mode", "must be 'max' or 'min'")
        direction = modes[self.monitor]
        check(
            self.mode == direction,
            f"{p}mode",
            f"'{self.monitor}' is better when {'higher' if direction == 'max' else 'lower'}; "
            f"set mode: {direction}",
        )
        check(self.patience >= 1, f"{p}patience", "must be >= 1")
        check(self.min_delta >= 0, f"{p}min_delta", "must be >= 0")


class EarlyStopping:
    """Track the best value of the monitored metric and count epochs without improvement.

    Parameters
    ----------
    cfg : EarlyStoppingConfig
        Configuration.
    """

    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.cfg.mode == "max":
            return value > self.best + self.cfg.min_delta
        return value < self.best - self.cfg.min_delta

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Record the metrics of ``epoch``; return True if it is the new best.

        Raises
        ------
        KeyError
            If the monitored metric is absent from ``metrics``.
        """
        value = float(metrics[self.cfg.monitor])
        if self.is_improvement(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        if self.cfg.enabled and self.bad_epochs >= self.cfg.patience:
            self.stopped_epoch = epoch
        return False

    def stop_message(self) -> str:
        """Why training stopped early (for the log)."""
        return (
            f"early stopping after epoch {self.stopped_epoch}: {self.cfg.monitor} did not improve "
            f"for {self.bad_epochs} epochs (best {self.best} at epoch {self.best_epoch})"
        )

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row failed to improve (and stopping is enabled)."""
        return self.stopped_epoch is not None

    def state_dict(self) -> dict[str, Any]:
        """Plain-container state (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "monitor": self.cfg.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the monitored metric must be the same."""
        if state["monitor"] != self.cfg.monitor:
            raise ValueError(
                f"checkpoint monitored '{state['monitor']}', config monitors '{self.cfg.monitor}'"
            )
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_epoch = state["stopped_epoch"]
