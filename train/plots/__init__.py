"""Diagnostic figures: ROC on a log-FPR axis, score histograms, cutout grids, training history.

All figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
global backend switch), so this package is safe to import from servers, workers and the builder.

One module per figure kind:

- :mod:`~train.plots.canvas`: :func:`new_figure`, :func:`save_figure` (the Agg canvas, shared);
- :mod:`~train.plots.roc`: :func:`plot_roc`, :func:`default_fpr_min`;
- :mod:`~train.plots.score_hist`: :func:`plot_score_hist`;
- :mod:`~train.plots.cutouts`: :func:`rgb_composite`, :func:`cutout_title`,
  :func:`plot_cutout_grid`;
- :mod:`~train.plots.history`: :func:`plot_history`, :func:`history_panels`.

Every public name is importable from ``train.plots``.
"""

from train.plots.canvas import new_figure, save_figure
from train.plots.cutouts import (
    RGB_OFFSET,
    RGB_Q,
    RGB_SCALES_GRZ,
    cutout_title,
    plot_cutout_grid,
    rgb_composite,
)
from train.plots.history import history_panels, plot_history
from train.plots.roc import default_fpr_min, plot_roc
from train.plots.score_hist import plot_score_hist

__all__ = [
    "RGB_OFFSET",
    "RGB_Q",
    "RGB_SCALES_GRZ",
    "cutout_title",
    "default_fpr_min",
    "history_panels",
    "new_figure",
    "plot_cutout_grid",
    "plot_history",
    "plot_roc",
    "plot_score_hist",
    "rgb_composite",
    "save_figure",
]
