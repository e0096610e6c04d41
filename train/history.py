"""The run's record: ``history.json`` (one entry per epoch), its plot, the epoch log line and
``test_metrics.json``; rank 0 writes, nothing here computes metrics.

Every metric value in a record comes from :func:`train.metrics.flat_summary`; names, labels and
formats come from the metric table (:mod:`train.metrics.registry`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train.evaluate import write_json
from train.metrics import HEADLINE_METRIC, get_metric
from train.plots import plot_history

__all__ = [
    "HISTORY_NAME",
    "HISTORY_PLOT_NAME",
    "TEST_DIR_NAME",
    "TEST_METRICS_NAME",
    "RunSummary",
    "epoch_message",
    "test_summary",
    "write_history",
]

log = logging.getLogger(__name__)

HISTORY_NAME = "history.json"
HISTORY_PLOT_NAME = "history.png"
TEST_DIR_NAME = "test"
TEST_METRICS_NAME = "test_metrics.json"


@dataclass
class RunSummary:
    """What :func:`train.trainer.run` did.

    Attributes
    ----------
    status : str
        ``completed`` (all epochs), ``early_stopped`` or ``interrupted`` (``stop_after_epochs``).
    epochs_done : int
        Epochs completed in total (including earlier invocations).
    best_epoch : int or None
        Epoch of ``checkpoints/best.pt``.
    best_value : float or None
        Its monitored validation metric.
    test : dict
        Flat test metrics of the best checkpoint (empty when interrupted).
    """

    status: str
    epochs_done: int
    best_epoch: int | None
    best_value: float | None
    test: dict[str, float] = field(default_factory=dict)


def write_history(history: list[dict[str, Any]], run_dir: Path, plot: bool = False) -> None:
    """Write ``history.json`` (and ``history.png`` when ``plot`` and not empty) into ``run_dir``."""
    write_json(history, run_dir / HISTORY_NAME)
    if plot and history:
        plot_history(history, run_dir / HISTORY_PLOT_NAME)


def epoch_message(record: dict[str, Any], n_epochs: int, monitor: str, improved: bool) -> str:
    """The one log line of an epoch: losses, AUC, the monitored metric, time.

    Epochs are numbered from 0 everywhere (log, ``history.json``, checkpoints, early stopping,
    plots, report); the line also says how many of ``n_epochs`` are done.
    """
    val = record["val"]
    fmt = {name: get_metric(name) for name in ("train_loss", "lr", "loss", "auc", monitor)}
    return (
        f"epoch {record['epoch']} ({record['epoch'] + 1} of {n_epochs}): train_loss {fmt['train_loss'].format(record['train_loss'])} "
        f"lr {fmt['lr'].format(record['lr'])} | val loss {fmt['loss'].format(val['loss'])} "
        f"auc {fmt['auc'].format(val['auc'])}"
        f"{'' if monitor == 'auc' else f' {monitor} ' + fmt[monitor].format(val[monitor])}"
        f"{' (best)' if improved else ''} | {record['epoch_time_s']:.1f} s"
    )


def test_summary(
    report: dict[str, Any], checkpoint_name: str, monitor: str, monitor_value: float | None
) -> dict[str, Any]:
    """``test_metrics.json`` content from a :func:`train.evaluate.evaluate_checkpoint` report."""
    summary = {
        "checkpoint": checkpoint_name,
        "epoch": report["checkpoint"]["epoch"],
        "monitor": monitor,
        "monitor_value": monitor_value,
        **{k: report[k] for k in ("samples_seen", "unique_samples", "expected")},
        "metrics": report["summary"],
    }
    metrics = report["summary"]
    log.info(
        "test (best epoch %d): auc %s %s %s",
        summary["epoch"],
        get_metric("auc").format(metrics["auc"]),
        HEADLINE_METRIC,
        get_metric(HEADLINE_METRIC).format(metrics[HEADLINE_METRIC]),
    )
    return summary
