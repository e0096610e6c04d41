"""The ROC figure: best TPR at FPR <= x on a log-FPR axis, with a Clopper-Pearson TPR band."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from train.metrics import DEFAULT_FPR_TARGETS, clopper_pearson, fp_budget, fpr_label, roc
from train.plots.canvas import new_figure, save_figure

__all__ = ["default_fpr_min", "plot_roc"]


def default_fpr_min(n_neg: int) -> float:
    """Left edge of the ROC's FPR axis: half of ``1 / n_neg``, the smallest measurable FPR."""
    return 0.5 / max(int(n_neg), 1)


def plot_roc(
    logits: ArrayLike,
    labels: ArrayLike,
    path: str | Path,
    fpr_min: float | None = None,
    fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
    n_grid: int = 400,
    title: str | None = None,
) -> Path:
    """ROC as "best TPR at FPR <= x" on a log FPR axis, with a 95% Clopper-Pearson TPR band.

    The curve is the tie-aware :meth:`train.metrics.RocCurve.tpr_at_fpr` evaluated on a
    log-spaced FPR grid, i.e. exactly the quantity reported as ``tpr@fpr``; the band is the
    exact binomial interval on the TPR at each of those thresholds. Vertical lines mark the FPR
    targets; the grey region is where fewer than 10 false positives decide the point.

    Parameters
    ----------
    logits : array_like of float
        Model logits.
    labels : array_like of {0, 1}
        Binary labels.
    path : str or Path
        Output image (PNG, PDF, ...).
    fpr_min : float, optional
        Left edge of the FPR axis; default half of ``1 / n_neg`` (the smallest non-zero FPR the
        controls can measure), so the axis does not run decades below what the data resolve.
    fpr_targets : sequence of float
        FPRs to mark (targets below ``fpr_min`` are listed in the legend instead).
    n_grid : int
        Number of grid points on the FPR axis.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
        The written file.
    """
    curve = roc(logits, labels)
    if fpr_min is None:
        fpr_min = default_fpr_min(curve.n_neg)
    grid = np.geomspace(fpr_min, 1.0, n_grid)
    idx = curve.best_index_within(fp_budget(grid, curve.n_neg))
    tp = curve.tp[idx]
    low, high = clopper_pearson(tp, curve.n_pos)

    fig = new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    ax.fill_between(grid, low, high, step="post", alpha=0.3, label="95% CI (Clopper-Pearson)")
    ax.step(grid, tp / curve.n_pos, where="post", lw=1.5, label=f"AUC = {curve.auc():.4f}")
    ax.axvspan(fpr_min, min(1.0, 10 / curve.n_neg), color="0.85", zorder=0, label="< 10 FP")
    shown = [t for t in sorted(fpr_targets) if fpr_min <= t <= 1]
    for i, target in enumerate(shown):
        ax.axvline(target, ls=":", color="0.4")
        op = curve.tpr_at_fpr(target)
        # labels stacked by target so that they never collide (e.g. all at TPR 0)
        y = min(max(op.tpr, 0.04 + 0.08 * i), 0.9)
        ax.annotate(
            f"TPR {op.tpr:.3f} @ FPR {fpr_label(target)} ({op.fp} FP)",
            (target, op.tpr),
            xytext=(target * 1.15, y),
            fontsize=7,
            arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5},
        )
    hidden = [fpr_label(t) for t in fpr_targets if t < fpr_min]
    if hidden:
        ax.plot([], [], " ", label=f"FPR {', '.join(hidden)}: below 1/n_neg, not measurable")
    ax.set_xscale("log")
    ax.set_xlim(fpr_min, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(f"false-positive rate (n_neg = {curve.n_neg})")
    ax.set_ylabel(f"true-positive rate (n_pos = {curve.n_pos})")
    ax.set_title(title or "ROC (ties never split)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
