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


def test_cutout_titles_say_what_each_sample_is() -> None:
    from train.plots import cutout_title

    lens = {"galaxy_id": "g1", "ra": 150.123456, "dec": -2.5, "label": 1,
            "injection": {"theta_e_arcsec": 1.234, "arc_snr": 37.2}}  # fmt: skip
    assert cutout_title(lens, 3.14159) == 'g1\n150.1235 -2.5000\nlens thE 1.23" S/N 37\nlogit 3.14'
    control = {"galaxy_id": "g2", "ra": 1.0, "dec": 2.0, "label": 0, "family": "ring"}
    assert cutout_title(control).splitlines()[-1] == "control ring"


def test_inspect_png_shows_both_classes(tmp_path, monkeypatch) -> None:
    import train.plots as plots
    from builder.inspect import shard_png
    from tests.datasets import make_tiny_dataset

    make_tiny_dataset(tmp_path / "d", {"train": (12,)})
    seen = {}

    def spy(images, titles, path, **kw):  # records what would be drawn, then draws it
        seen["titles"] = list(titles)
        return real(images, titles, path, **kw)

    real = plots.plot_cutout_grid
    monkeypatch.setattr(plots, "plot_cutout_grid", spy)
    shard_png(tmp_path / "d" / "train" / "train-000000.tar", tmp_path / "g.png", n=6)
    kinds = [t.splitlines()[-1].split()[0] for t in seen["titles"]]
    assert kinds.count("control") == 3 and len(kinds) == 6
    assert (tmp_path / "g.png").stat().st_size > 0
