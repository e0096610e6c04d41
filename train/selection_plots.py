"""Figures of the selection function (:func:`train.selection.selection_function`).

* :func:`plot_recall_curves`: recall of the injected positives per bin, one panel per quantity
  (:func:`draw_recall_curve`), one series per operating point, with Clopper-Pearson error bars
  and each bin's ``n`` written under the axis; empty bins are left as gaps;
* :func:`plot_recall_grid`: a 2-D heat map (e.g. theta_E x source magnitude) of the recall at
  each operating point, every cell annotated ``k/n``;
* :func:`plot_selection`: all of them for one ``selection.json`` into a directory.

Drawn with matplotlib's object-oriented API on the Agg canvas, as :mod:`train.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "CURVES_NAME",
    "draw_recall_curve",
    "grid_name",
    "plot_recall_curves",
    "plot_recall_grid",
    "plot_selection",
]

CURVES_NAME = "selection_curves.png"


def grid_name(x: str, y: str) -> str:
    """File name of a 2-D map: ``selection_<x>_x_<y>.png``."""
    return f"selection_{x}_x_{y}.png"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def draw_recall_curve(ax: Any, quantity: Mapping[str, Any], legend: bool = True) -> None:
    """Recall per bin of one quantity (an entry of a population's ``quantities``) on ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    quantity : mapping
        ``{"label", "categorical", "bins", ...}`` as in ``selection.json``.
    legend : bool
        Draw the legend of the operating points.
    """
    bins = quantity["bins"]
    if quantity["categorical"]:
        x = np.arange(len(bins), dtype=np.float64)
        ticks = [str(b["value"]) for b in bins]
    else:
        x = np.array([0.5 * (b["lo"] + b["hi"]) for b in bins])
        ticks = None
    names = list(bins[0]["points"]) if bins else []
    for j, name in enumerate(names):
        y = np.array([np.nan if b["n"] == 0 else b["points"][name]["recall"] for b in bins])
        ci = [b["points"][name]["ci95"] or [np.nan, np.nan] for b in bins]
        lo = y - np.array([c[0] for c in ci])
        hi = np.array([c[1] for c in ci]) - y
        shift = (j - (len(names) - 1) / 2) * (0.04 if quantity["categorical"] else 0.0)
        ls = "none" if quantity["categorical"] else "-"
        ax.errorbar(x + shift, y, yerr=[lo, hi], marker="o", ms=4, capsize=3, ls=ls, label=name)
    if not quantity["categorical"]:
        edges = quantity["edges"]
        for e in edges:
            ax.axvline(e, color="0.9", lw=0.8, zorder=0)
        ax.set_xlim(edges[0], edges[-1])
    else:
        ax.set_xticks(x, ticks, rotation=30 if len(ticks) > 3 else 0)
        ax.set_xlim(-0.5, len(bins) - 0.5)
    for xi, b in zip(x, bins, strict=True):
        ax.annotate(
            f"n={b['n']}",
            (xi, 0.0),
            xytext=(0, -2),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=6,
            color="0.35",
            rotation=90,
            annotation_clip=False,
        )
    ax.set_ylim(-0.18, 1.05)
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel(quantity["label"])
    ax.set_ylabel("recall (score >= threshold)")
    if names and legend:
        ax.legend(fontsize=7, title="operating point", title_fontsize=7)


def plot_recall_curves(
    quantities: Mapping[str, Mapping[str, Any]], path: str | Path, title: str | None = None
) -> Path:
    """One panel per quantity (:func:`draw_recall_curve`), three per row, in one PNG."""
    cols = max(1, min(3, len(quantities)))
    rows = max(1, -(-len(quantities) // cols))
    fig = _figure(5.0 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(quantities) :]:
        ax.set_axis_off()
    for i, (ax, q) in enumerate(zip(axes.flat, quantities.values(), strict=False)):
        draw_recall_curve(ax, q, legend=i == 0)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_recall_grid(
    grid: Mapping[str, Any], labels: Mapping[str, str], path: str | Path, title: str | None = None
) -> Path:
    """Heat map of the recall per 2-D cell, one panel per operating point, cells ``k/n``.

    Parameters
    ----------
    grid : mapping
        ``{"x", "y", "x_edges", "y_edges", "n", "k": {point: [[...]]}}`` (``n[i][j]``: x bin
        ``i``, y bin ``j``).
    labels : mapping
        Quantity name -> axis label.
    path : str or Path
        Output PNG.
    title : str, optional
        Figure title.
    """
    xe, ye = np.asarray(grid["x_edges"]), np.asarray(grid["y_edges"])
    n = np.asarray(grid["n"], np.float64)
    names = list(grid["k"])
    cols = max(1, min(2, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig = _figure(5.6 * cols, 4.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_axis_off()
    mesh = None
    for ax, name in zip(axes.flat, names, strict=False):
        k = np.asarray(grid["k"][name], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(n > 0, k / n, np.nan)
        mesh = ax.pcolormesh(
            xe, ye, np.ma.masked_invalid(recall.T), vmin=0.0, vmax=1.0, cmap="viridis"
        )
        for i in range(len(xe) - 1):
            for j in range(len(ye) - 1):
                r = recall[i, j]
                ax.text(
                    0.5 * (xe[i] + xe[i + 1]),
                    0.5 * (ye[j] + ye[j + 1]),
                    f"{int(k[i, j])}/{int(n[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="0.5" if n[i, j] == 0 else ("black" if r > 0.6 else "white"),
                )
        ax.set_xlabel(labels.get(grid["x"], grid["x"]))
        ax.set_ylabel(labels.get(grid["y"], grid["y"]))
        ax.set_title(f"recall at {name}", fontsize=9)
        ax.set_facecolor("0.92")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes.ravel().tolist(), label="recall", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_selection(selection: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Curves and maps of the injected population of a ``selection.json`` into ``out_dir``.

    ``selection_curves.png`` has a panel per quantity with at least one binned positive (a
    dataset built without visibility gets no ``visible`` panel); a map is drawn when any positive
    falls inside it. Returns the written files.
    """
    out = Path(out_dir)
    pops = selection["populations"]
    pop = pops["injected"]
    n_real = pops.get("real", {}).get("n", 0)
    note = f"{pop['n']} injected positives" + (
        f" ({n_real} real lenses reported separately)" if n_real else ""
    )
    written = []
    shown = {n: q for n, q in pop["quantities"].items() if sum(b["n"] for b in q["bins"])}
    if shown:
        written.append(plot_recall_curves(shown, out / CURVES_NAME, title=note))
    labels = {name: q["label"] for name, q in pop["quantities"].items()}
    for grid in pop["grids"]:
        if int(np.sum(grid["n"])) == 0:
            continue
        written.append(
            plot_recall_grid(grid, labels, out / grid_name(grid["x"], grid["y"]), title=note)
        )
    return written
