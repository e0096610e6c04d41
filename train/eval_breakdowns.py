"""The breakdowns of a ``train eval`` report: per positive kind, per control family, selection.

:func:`breakdowns` reads the split's metadata columns once (:mod:`train.eval_inputs`) and
computes, at the operating points of :func:`train.eval_inputs.eval_operating_points` (the
checkpoint's validation thresholds):

* ``by_kind`` (:func:`train.by_kind.metrics_by_kind`, hybrid datasets only);
* ``by_family`` (:func:`train.families.family_fpr`): FPR per control family;
* the selection function (:func:`train.selection.selection_function`), written as
  ``selection.json`` with its figures (:func:`train.selection_plots.plot_selection`).

:func:`write_breakdown_figures` draws the selection figures and the per-family grid of the
highest-scoring controls (``top_controls_by_family.png``; only when some control has a family).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train.by_kind import metrics_by_kind
from train.eval_inputs import (
    align_columns,
    eval_operating_points,
    load_raw_samples,
    read_split_columns,
)
from train.families import UNLABELLED, family_fpr, plot_family_grid, top_controls_by_family
from train.selection import resolve_edges, selection_function
from train.selection_plots import plot_selection

__all__ = [
    "FAMILY_GRID_NAME",
    "SELECTION_NAME",
    "Breakdowns",
    "breakdowns",
    "check_selection_edges",
    "write_breakdown_figures",
]

SELECTION_NAME = "selection.json"
FAMILY_GRID_NAME = "top_controls_by_family.png"


@dataclass
class Breakdowns:
    """What :func:`breakdowns` found.

    Attributes
    ----------
    report : dict
        Entries of ``metrics.json``: ``operating_points``, ``by_family``, ``selection`` (file
        name and population sizes) and, for a hybrid dataset, ``by_kind``.
    selection : dict
        The content of ``selection.json``.
    columns : dict
        Column name -> value per prediction (the typed columns of ``scores.parquet``).
    """

    report: dict[str, Any]
    selection: dict[str, Any]
    columns: dict[str, list]


def breakdowns(
    keys: Sequence[str],
    labels: np.ndarray,
    logits: np.ndarray,
    shards_dir: str | Path,
    split: str,
    metrics: Mapping[str, Any],
    thresholds: Mapping[str, float | None] | None = None,
    selection_edges: Mapping[str, Sequence[float]] | None = None,
) -> Breakdowns:
    """Per-kind metrics, per-family FPR and the selection function of a scored split.

    Parameters
    ----------
    keys, labels, logits
        The gathered predictions (one entry per sample).
    shards_dir, split
        Where the samples' metadata is read from.
    metrics : mapping
        :func:`train.metrics.evaluate_scores` of the split (thresholds fallback).
    thresholds : mapping, optional
        The checkpoint's validation thresholds (:func:`train.thresholds.checkpoint_thresholds`).
    selection_edges : mapping, optional
        Bin edges per quantity (:func:`train.selection.resolve_edges`).
    """
    columns = align_columns(keys, read_split_columns(shards_dir, split))
    report: dict[str, Any] = {}
    kinds = {k: v for k, v in zip(keys, columns["kind"], strict=True) if v is not None}
    by_kind = metrics_by_kind(list(keys), labels, logits, kinds)
    if by_kind:  # a hybrid dataset: real and injected positives, each against all controls
        report["by_kind"] = by_kind
    points, source = eval_operating_points(thresholds or {}, metrics)
    report["operating_points"] = {"source": source, "thresholds": points}
    report["by_family"] = family_fpr(labels, logits, columns["family"], points, source)
    selection = selection_function(
        columns, labels, logits, points, threshold_source=source, edges=selection_edges
    )
    pops = selection["populations"]
    report["selection"] = {"file": SELECTION_NAME, **{f"n_{p}": v["n"] for p, v in pops.items()}}
    return Breakdowns(report, selection, columns)


def check_selection_edges(selection_edges: Mapping[str, Sequence[float]] | None) -> None:
    """Refuse bad bin edges before anything is scored (``ValueError`` naming the key)."""
    resolve_edges(selection_edges)


def write_breakdown_figures(
    b: Breakdowns,
    keys: Sequence[str],
    labels: np.ndarray,
    logits: np.ndarray,
    shards_dir: str | Path,
    split: str,
    out_dir: str | Path,
    n_per_family: int = 6,
) -> list[Path]:
    """Selection curves and maps, and the per-family grid of the top controls; the files.

    The grid is skipped when no control records a family (it would repeat ``top_controls.png``).
    """
    out = Path(out_dir)
    written = plot_selection(b.selection, out)
    groups = top_controls_by_family(labels, logits, b.columns["family"], n_per_family)
    if set(groups) <= {UNLABELLED}:  # no family recorded: top_controls.png shows these already
        return written
    grid = plot_family_grid(
        groups,
        keys,
        logits,
        lambda wanted: load_raw_samples(shards_dir, split, wanted),
        out / FAMILY_GRID_NAME,
        f"{split}: highest-scoring controls per family (logit)",
    )
    return written + ([grid] if grid is not None else [])
