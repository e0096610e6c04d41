"""Plots people read: ROC axis bounded by what the controls resolve, one epoch numbering."""

from __future__ import annotations

import numpy as np

from train.history import epoch_message
from train.plots import default_fpr_min, plot_history, plot_roc


def test_roc_axis_starts_at_half_of_one_over_n_neg(tmp_path) -> None:
    assert default_fpr_min(300) == 0.5 / 300
    assert default_fpr_min(0) == 0.5
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(50), np.zeros(300)].astype(int)
    logits = rng.normal(size=350) + 2 * labels
    assert plot_roc(logits, labels, tmp_path / "roc.png").stat().st_size > 0


def test_epoch_numbering_in_the_log_is_the_history_index() -> None:
    record = {
        "epoch": 0,
        "train_loss": 0.5,
        "lr": 1e-3,
        "epoch_time_s": 1.0,
        "val": {"loss": 0.4, "auc": 0.9},
    }
    line = epoch_message(record, 10, "auc", improved=True)
    assert line.startswith("epoch 0 (1 of 10):") and "(best)" in line


def test_history_plot_with_best_epoch(tmp_path) -> None:
    history = [
        {"epoch": i, "train_loss": 1.0 / (i + 1), "lr": 1e-3, "best_epoch": min(i, 1),
         "val": {"auc": 0.8 + 0.01 * i, "loss": 0.5}}
        for i in range(3)
    ]  # fmt: skip
    assert plot_history(history, tmp_path / "h.png").stat().st_size > 0
