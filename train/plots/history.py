"""The training-history figure (``history.png``): one panel per metric-table panel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from train.metrics import PANELS, find_metric
from train.plots.canvas import new_figure, save_figure

__all__ = ["history_panels", "plot_history"]


def _numeric_items(entry: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten one history entry to ``{"a/b": float}`` for numeric leaves."""
    out: dict[str, float] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_numeric_items(value, prefix=f"{name}/"))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and np.isfinite(value):
            out[name] = float(value)
    return out


def history_panels(rows: Sequence[Mapping[str, float]]) -> dict[str, list[str]]:
    """Which flattened history fields go to which panel of ``history.png``.

    A field ``a/b/leaf`` goes to the panel of ``leaf`` in the metric table
    (:func:`train.metrics.find_metric`); fields not in the table, or without a panel, are not drawn.

    Parameters
    ----------
    rows : sequence of mapping
        Flattened history entries (``{"val/auc": 0.9, ...}``).

    Returns
    -------
    dict
        ``{panel: [field, ...]}`` for every panel of :data:`train.metrics.PANELS`, in order.
    """
    names = sorted({k for row in rows for k in row} - {"epoch"})
    panels: dict[str, list[str]] = {panel: [] for panel in PANELS}
    for name in names:
        metric = find_metric(name.rsplit("/", 1)[-1])
        if metric is not None and metric.panel is not None:
            panels[metric.panel].append(name)
    return panels


def plot_history(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Training curves per epoch: losses, learning rate, validation ranking metrics.

    Tolerant of the history layout: every numeric field, top level or nested (e.g. under
    ``"val"``; see :func:`train.metrics.flat_summary`), is drawn in the panel its metric-table
    entry names (:func:`history_panels`): losses, learning rate, TPR / AUC, and FPR at TPR (log
    axis). The x axis is ``epoch`` when present, else the entry index.

    Parameters
    ----------
    history : sequence of mapping
        One dict per epoch, as stored in ``history.json``.
    path : str or Path
        Output image.

    Returns
    -------
    Path
        The written file.
    """
    rows = [_numeric_items(entry) for entry in history]
    x = [row.get("epoch", float(i)) for i, row in enumerate(rows)]
    best = next(
        (e.get("best_epoch") for e in reversed(history) if e.get("best_epoch") is not None), None
    )
    panels = history_panels(rows)
    fig = new_figure(11.0, 7.0)
    axes = fig.subplots(2, 2, squeeze=False).flat
    styles = ("-", "--", "-.", ":")
    markers = ("o", "s", "^", "v", "D", "x")
    for ax, (title, keys) in zip(axes, panels.items(), strict=True):
        for j, key in enumerate(keys):
            pts = [(xi, row[key]) for xi, row in zip(x, rows, strict=True) if key in row]
            if pts:
                xs, ys = zip(*pts, strict=True)
                # distinct dash and marker per line, so coinciding curves stay visible
                ax.plot(
                    xs,
                    ys,
                    ls=styles[j % len(styles)],
                    marker=markers[j % len(markers)],
                    ms=3,
                    label=key,
                    alpha=0.85,
                )
        if best is not None:
            ax.axvline(best, color="tab:red", lw=0.8, ls=":", label=f"best epoch {best}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if keys:
            ax.legend(fontsize=7)
            positive = all(row[k] > 0 for row in rows for k in keys if k in row)
            if PANELS[title] and positive:
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    return save_figure(fig, path)
