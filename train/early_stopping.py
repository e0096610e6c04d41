"""Early stopping on a validation metric, with a state that survives checkpoint/resume.

Model selection must be meaningful for the validation set at hand. An operating point such as
``tpr@fpr1e-3`` on 300 validation controls allows zero false positives: it is TPR at the single
highest-scoring control, a noisy number that stops training early on a fluke. Hence the default
``monitor: auto`` (:func:`resolve_monitor`): the lowest-FPR ``tpr@fpr`` target at which the
validation controls allow at least :data:`MIN_FALSE_POSITIVES` false positives, else ``auc``.
An explicitly chosen operating point that allows fewer is kept, with a warning
(:func:`monitor_warning`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common.configio import check
from train.metrics import DEFAULT_FPR_TARGETS, find_metric, metric_key, monitorable_metrics
from train.metrics.registry import OPERATING_POINTS, parse_operating_point

log = logging.getLogger(__name__)

#: ``early_stopping.monitor`` value that picks the metric from the validation size.
AUTO_MONITOR = "auto"
#: Fewest false positives a monitored operating point should allow (below it, warn).
MIN_FALSE_POSITIVES = 10


def false_positive_budget(monitor: str, n_neg: int) -> int | None:
    """False positives the operating point ``monitor`` allows on ``n_neg`` controls.

    ``None`` for metrics that are not an FPR-limited operating point (``auc``, ``loss``,
    ``fpr@tpr...``).
    """
    parsed = parse_operating_point(monitor)
    if parsed is None:
        return None
    op, target = parsed
    if op is OPERATING_POINTS["tpr_at_fpr"]:
        return int(math.floor(target * n_neg + 1e-9))
    if op is OPERATING_POINTS["tpr_at_n_fp"]:
        return int(target)
    return None


def resolve_monitor(
    monitor: str, n_val_neg: int | None, fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS
) -> str:
    """The metric early stopping monitors: ``monitor`` itself unless it is ``"auto"``.

    ``auto`` picks the smallest FPR target ``x`` with ``x * n_val_neg >=``
    :data:`MIN_FALSE_POSITIVES` (``tpr@fpr{x}``), else ``auc`` (also when ``n_val_neg`` is
    unknown).
    """
    if monitor != AUTO_MONITOR:
        return monitor
    if n_val_neg:
        for target in sorted(fpr_targets):
            if target * n_val_neg >= MIN_FALSE_POSITIVES:
                return metric_key("tpr_at_fpr", target)
    return "auc"


def monitor_warning(monitor: str, n_val_neg: int | None) -> str | None:
    """A warning when ``monitor`` allows fewer than :data:`MIN_FALSE_POSITIVES` validation FPs."""
    if not n_val_neg:
        return None
    budget = false_positive_budget(monitor, n_val_neg)
    if budget is None or budget >= MIN_FALSE_POSITIVES:
        return None
    return (
        f"early_stopping.monitor={monitor} allows {budget} false positive(s) on {n_val_neg} "
        f"validation controls: model selection on it is noisy; consider monitor: auto "
        f"(picks a metric with >= {MIN_FALSE_POSITIVES} false positives, else auc)"
    )


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
        (:func:`train.metrics.monitorable_metrics`: ``auc``, ``tpr@fpr1e-3``, ``loss``, ...), or
        ``"auto"`` (the default; :func:`resolve_monitor`).
    mode : str
        ``"max"`` or ``"min"``; must match the metric's direction (ignored for ``auto``, whose
        candidates are all ``max``).
    patience : int
        Epochs without improvement tolerated before stopping.
    min_delta : float
        An improvement must exceed the best value by more than this.
    """

    enabled: bool = True
    monitor: str = AUTO_MONITOR
    mode: str = "max"
    patience: int = 3
    min_delta: float = 0.0

    def validate(self, prefix: str = "early_stopping") -> None:
        """Check values; raise :class:`~common.configio.ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        modes = monitorable_metrics()
        check(
            self.monitor in modes or self.monitor == AUTO_MONITOR,
            f"{p}monitor",
            f"unknown metric '{self.monitor}' (choose from {AUTO_MONITOR}, {', '.join(modes)})",
        )
        check(self.mode in ("max", "min"), f"{p}mode", "must be 'max' or 'min'")
        direction = "max" if self.monitor == AUTO_MONITOR else modes[self.monitor]
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
    n_val_neg : int or None
        Controls in the validation split: resolves ``monitor: auto`` and sizes the warning.

    Attributes
    ----------
    monitor : str
        The metric actually monitored (``cfg.monitor`` resolved).
    """

    def __init__(self, cfg: EarlyStoppingConfig, n_val_neg: int | None = None):
        self.cfg = cfg
        self.monitor = resolve_monitor(cfg.monitor, n_val_neg)
        metric = find_metric(self.monitor)
        self.mode = metric.direction if metric is not None and metric.direction else cfg.mode
        self.warning = monitor_warning(self.monitor, n_val_neg)
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
        if self.mode == "max":
            return value > self.best + self.cfg.min_delta
        return value < self.best - self.cfg.min_delta

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Record the metrics of ``epoch``; return True if it is the new best.

        Raises
        ------
        KeyError
            If the monitored metric is absent from ``metrics``.
        """
        value = float(metrics[self.monitor])
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
            f"early stopping after epoch {self.stopped_epoch}: {self.monitor} did not improve "
            f"for {self.bad_epochs} epochs (best {self.best} at epoch {self.best_epoch})"
        )

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row failed to improve (and stopping is enabled)."""
        return self.stopped_epoch is not None

    def state_dict(self) -> dict[str, Any]:
        """Plain-container state (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the monitored metric must be the same."""
        if state["monitor"] != self.monitor:
            raise ValueError(
                f"checkpoint monitored '{state['monitor']}', this run monitors '{self.monitor}'"
            )
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_epoch = state["stopped_epoch"]
