"""Diagnostic figures: ROC on a log-FPR axis, score histograms, cutout grids, training history.

All figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
global backend switch), so this module is safe to import from servers, workers and the builder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike, NDArray

from train.metrics import (
    DEFAULT_FPR_TARGETS,
    PANELS,
    clopper_pearson,
    find_metric,
    fp_budget,
    fpr_label,
    roc,
    sigmoid_saturation_logit,
    validate_scores,
)

__all__ = [
    "history_panels",
    "plot_cutout_grid",
    "plot_history",
    "plot_roc",
    "plot_score_hist",
    "rgb_composite",
]

# Lupton asinh stretch in nanomaggies: linear below ~stretch, logarithmic above. Sky noise in a
# DR10 coadd pixel is ~0.005-0.01 nmgy and an LRG core a few nmgy, so both stay visible.
RGB_SCALES_GRZ = (6.0, 3.4, 2.2)  # legacypipe DR2+ viewer scales for g, r, z
RGB_OFFSET = 0.03
RGB_Q = 20.0


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def rgb_composite(
    image_nmgy: ArrayLike,
    scales: Sequence[float] = RGB_SCALES_GRZ,
    m: float = RGB_OFFSET,
    q: float = RGB_Q,
) -> NDArray[np.uint8]:
    """Colour composite of a (3, H, W) g, r, z stamp: z -> red, r -> green, g -> blue.

    The Legacy Surveys viewer's scheme (legacypipe ``sdss_rgb`` with the DR2+ scales
    g 6.0, r 3.4, z 2.2 and offset 0.03; Lupton et al. 2004 asinh stretch on the mean
    intensity): red galaxies come out orange-yellow, star-forming arcs blue, and sky noise stays
    dark, so images look like the survey's own cutouts. Non-finite pixels are drawn as 0.

    Parameters
    ----------
    image_nmgy : array_like, shape (3, H, W)
        g, r, z fluxes in nanomaggies per pixel.
    scales : sequence of 3 floats
        Multipliers of the g, r, z planes.
    m : float
        Offset added before the stretch (sets the black level).
    q : float
        Asinh softening.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
    """
    img = np.asarray(image_nmgy, dtype=np.float64)
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) g, r, z image, got shape {img.shape}")
    img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    planes = np.maximum(0.0, img * np.asarray(scales, dtype=np.float64)[:, None, None] + m)
    intensity = planes.mean(axis=0)
    intensity = np.where(intensity == 0.0, 1e-6, intensity)
    f = np.arcsinh(q * intensity) / np.sqrt(q)
    rgb = np.clip(planes[::-1] * (f / intensity), 0.0, 1.0)  # z, r, g -> R, G, B
    return np.round(np.moveaxis(rgb, 0, -1) * 255.0).astype(np.uint8)


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

    fig = _new_figure(6.0, 4.5)
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
    return _save(fig, path)


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
    fig = _new_figure(6.0, 4.0)
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
    return _save(fig, path)


def cutout_title(meta: Mapping[str, Any], logit: float | None = None) -> str:
    """The title of one cutout in a grid: id, ra/dec, and what the sample is.

    Lines: the galaxy id (its last 20 characters), ``ra dec`` in degrees, then for an injected
    lens ``thetaE`` (arcsec) and arc S/N, for a real lens its grade, for a control its family
    when recorded; and the logit when given.
    """
    lines = [str(meta.get("galaxy_id", meta.get("key", "?")))[-20:]]
    ra, dec = meta.get("ra"), meta.get("dec")
    if isinstance(ra, int | float) and isinstance(dec, int | float):
        lines.append(f"{ra:.4f} {dec:+.4f}")
    inj = meta.get("injection") or {}
    if inj:
        lines.append(
            f'lens thE {inj.get("theta_e_arcsec", 0):.2f}" S/N {inj.get("arc_snr", 0):.0f}'
        )
    elif meta.get("kind") == "real":
        lines.append(f"real lens {meta.get('grade', '')}".strip())
    elif meta.get("label") == 0:
        lines.append(f"control {meta.get('family', '')}".strip())
    if logit is not None:
        lines.append(f"logit {logit:.2f}")
    return "\n".join(lines)


def plot_cutout_grid(
    images: ArrayLike,
    titles: Sequence[str],
    path: str | Path,
    ncols: int = 8,
    suptitle: str | None = None,
) -> Path:
    """Grid of colour composites, e.g. highest-scoring controls or lowest-scoring lenses.

    Parameters
    ----------
    images : array_like, shape (N, 3, H, W)
        g, r, z stamps in nanomaggies.
    titles : sequence of str
        One short title per image (e.g. key and logit).
    path : str or Path
        Output image.
    ncols : int
        Columns of the grid.
    suptitle : str, optional
        Figure title.

    Returns
    -------
    Path
        The written file.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got shape {imgs.shape}")
    if len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles")
    n = max(len(imgs), 1)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = _new_figure(1.6 * ncols, 1.75 * nrows + (0.3 if suptitle else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, img, title in zip(axes.flat, imgs, titles, strict=False):
        ax.imshow(rgb_composite(img), origin="lower", interpolation="nearest")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


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
    fig = _new_figure(11.0, 7.0)
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
    return _save(fig, path)
