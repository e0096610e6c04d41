"""The score figure: per-class logit histograms with the sigmoid saturation points marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from train.metrics import sigmoid_saturation_logit, validate_scores
from train.plots.canvas import new_figure, save_figure

__all__ = ["plot_score_hist"]


def plot_score_hist(
    logits: ArrayLike, labels: ArrayLike, path: str | Path, bins: int = 100
) -> Path:
    """Per-class histogram of logits (log counts), with the sigmoid saturation points marked.

    Parameters
    ----------
    logits : array_like of float
        Model logits.
    labels : array_like of {0, 1}
        Binary labels.
    path : str or Path
        Output image.
    bins : int
        Number of bins shared by both classes.

    Returns
    -------
    Path
        The written file.
    """
    s, y = validate_scores(logits, labels)
    edges = np.histogram_bin_edges(s, bins=bins)
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    for mask, name in ((~y, "controls"), (y, "lenses")):
        ax.hist(s[mask], bins=edges, histtype="step", lw=1.5, label=f"{name} (n={mask.sum()})")
    for dtype, short in (("bfloat16", "bf16"), ("float32", "fp32")):
        x, name = sigmoid_saturation_logit(dtype), f"{short} sigmoid = 1"
        if edges[0] <= x <= edges[-1]:
            ax.axvline(x, ls="--", color="0.5", lw=1)
            ax.annotate(
                name,
                (x, 1),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                rotation=90,
                va="top",
                ha="right",
            )
    ax.set_yscale("log")
    ax.set_xlabel("logit")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
