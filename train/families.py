"""False-positive rate per control family (``metrics.json`` -> ``by_family``) and its cutout grid.

Controls record the ``family`` of their parent (plain ``lrg``, ``ring``, ``spiral``,
``blue_companion``, ``merger``, ``edge_on``, ``chance_alignment``, ``decoy`` ...). A finder that
learned "extra blue flux near a red galaxy" instead of "a lensed arc" shows it as a high FPR on
the families that carry such flux. :func:`family_fpr` counts, per family, the controls at or
above each operating-point threshold (chosen on the validation split, so the rates are honest
estimates on the evaluated split) with a Clopper-Pearson 95% interval
(:func:`train.metrics.clopper_pearson`). Controls without a family are counted under
:data:`UNLABELLED`, never dropped. :func:`plot_family_grid` draws the highest-scoring controls,
one row per family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from train.metrics import clopper_pearson
from train.plots import cutout_title, plot_cutout_grid

__all__ = [
    "UNLABELLED",
    "family_fpr",
    "family_names",
    "plot_family_grid",
    "rate_at",
    "top_controls_by_family",
]

UNLABELLED = "unlabelled"
"""Family of a control that records none."""


def family_names(families: Sequence[Any]) -> np.ndarray:
    """Family of each sample as a str array (:data:`UNLABELLED` for None or empty)."""
    return np.array([str(f) if f not in (None, "") else UNLABELLED for f in families], dtype=object)


def rate_at(hits: np.ndarray, threshold: float) -> dict[str, Any]:
    """``{"threshold", "k", "n", "rate", "ci95"}`` of ``logit >= threshold`` among ``hits``.

    ``hits`` are the logits of the group; ``rate`` and ``ci95`` are None for an empty group. An
    infinite threshold (the point selects nothing) is reported as ``threshold`` None.
    """
    n = int(len(hits))
    k = int(np.count_nonzero(hits >= threshold))
    out: dict[str, Any] = {"threshold": threshold if np.isfinite(threshold) else None}
    out.update(k=k, n=n, rate=None, ci95=None)
    if n:
        low, high = clopper_pearson(k, n)
        out.update(rate=k / n, ci95=[float(low), float(high)])
    return out


def _group(logits: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, Any]:
    points = {}
    for name, t in thresholds.items():
        r = rate_at(logits, t)
        points[name] = {"n_fp": r["k"], "fpr": r["rate"], "fpr_ci95": r["ci95"]}
    top = float(logits.max()) if len(logits) else None
    return {"n": int(len(logits)), "max_logit": top, "points": points}


def family_fpr(
    labels: np.ndarray,
    logits: np.ndarray,
    families: Sequence[Any],
    thresholds: Mapping[str, float],
    threshold_source: str = "validation",
) -> dict[str, Any]:
    """Per control family: false positives at each operating point, with counts and intervals.

    Parameters
    ----------
    labels, logits : ndarray
        Per sample of the evaluated split (0 control, 1 lens; float logits).
    families : sequence
        Per sample, its ``family`` or None (positives' families are ignored here).
    thresholds : mapping
        Operating-point name -> logit (select ``logit >= threshold``; ``inf`` selects nothing).
    threshold_source : str
        Where the thresholds come from (recorded).

    Returns
    -------
    dict
        ``{"threshold_source", "thresholds", "n_controls", "all": GROUP, "families": {name:
        GROUP}}`` with ``GROUP = {"n", "max_logit", "points": {point: {"threshold", "n_fp",
        "n", "fpr", "fpr_ci95"}}}``; families sorted by name, :data:`UNLABELLED` last.
    """
    labels = np.asarray(labels)
    logits = np.asarray(logits, np.float64)
    fam = family_names(families)
    if not len(labels) == len(logits) == len(fam):
        raise ValueError(f"lengths differ: {len(labels)} labels, {len(logits)}, {len(fam)}")
    neg = labels == 0
    names = sorted(set(fam[neg].tolist()), key=lambda f: (f == UNLABELLED, f))
    return {
        "threshold_source": threshold_source,
        "thresholds": {k: (v if np.isfinite(v) else None) for k, v in thresholds.items()},
        "n_controls": int(neg.sum()),
        "all": _group(logits[neg], thresholds),
        "families": {f: _group(logits[neg & (fam == f)], thresholds) for f in names},
    }


def top_controls_by_family(
    labels: np.ndarray, logits: np.ndarray, families: Sequence[Any], n_per_family: int
) -> dict[str, np.ndarray]:
    """Family -> indices of its ``n_per_family`` highest-scoring controls, best first."""
    labels = np.asarray(labels)
    logits = np.asarray(logits, np.float64)
    fam = family_names(families)
    out: dict[str, np.ndarray] = {}
    for f in sorted(set(fam[labels == 0].tolist()), key=lambda f: (f == UNLABELLED, f)):
        idx = np.flatnonzero((labels == 0) & (fam == f))
        out[f] = idx[np.argsort(-logits[idx], kind="stable")][:n_per_family]
    return out


def plot_family_grid(
    groups: Mapping[str, np.ndarray],
    keys: Sequence[str],
    logits: np.ndarray,
    load: Callable[[list[str]], Mapping[str, Mapping[str, Any]]],
    path: str | Path,
    title: str,
) -> Path | None:
    """One row per family of its highest-scoring controls (:func:`train.plots.plot_cutout_grid`).

    Parameters
    ----------
    groups : mapping
        Family -> sample indices (:func:`top_controls_by_family`).
    keys, logits
        Per sample of the evaluated split.
    load : callable
        ``load(keys) -> {key: {"image": (3, H, W) nmgy, "meta": dict}}``.
    path : str or Path
        Output PNG.
    title : str
        Figure title.

    Returns
    -------
    Path or None
        The file, or None when there is no control. Rows shorter than the longest are padded
        with blank (zero) stamps titled ``-``.
    """
    groups = {f: np.asarray(i) for f, i in groups.items() if len(i)}
    if not groups:
        return None
    ncols = max(len(i) for i in groups.values())
    wanted = [keys[i] for idx in groups.values() for i in idx]
    raw = load(wanted)
    shape = np.asarray(raw[wanted[0]]["image"]).shape
    images, titles = [], []
    for fam, idx in groups.items():
        for i in idx:
            images.append(np.asarray(raw[keys[i]]["image"], np.float32))
            meta = {**raw[keys[i]]["meta"], "label": 0, "family": fam}
            titles.append(cutout_title(meta, float(logits[i])))
        for _ in range(ncols - len(idx)):
            images.append(np.zeros(shape, np.float32))
            titles.append("-")
    return plot_cutout_grid(np.stack(images), titles, path, ncols=ncols, suptitle=title)
