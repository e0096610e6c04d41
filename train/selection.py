"""The selection function: recall of positives at the operating points, binned by what they are.

A finder's recall depends on the lens: small Einstein radii, faint sources, low-S/N arcs and
bad seeing are found less often. :func:`selection_function` bins the positives of an evaluated
split by each quantity of :data:`QUANTITIES` (Einstein radius, unlensed source r magnitude, arc
S/N, r seeing, the visibility flag, the host's family) and by pairs of them
(:data:`DEFAULT_GRIDS`: theta_E x source magnitude), and reports in every bin the number of
positives ``n``, how many score at or above each operating-point threshold (``k``; thresholds
chosen on the validation split) and ``k / n`` with a Clopper-Pearson 95% interval
(:func:`train.metrics.clopper_pearson`).

Bins are ``[lo, hi)``, the last one ``[lo, hi]``. Every positive is counted somewhere: in a bin,
in ``underflow`` / ``overflow`` (outside the edges), or in ``missing`` (the sample records no
value). An empty bin is reported with ``n = 0`` and null recall. Injected and real positives
(``kind: real``, known lenses without injection parameters) are separate populations, never
mixed. ``train eval`` writes the result as ``selection.json``; :mod:`train.selection_plots`
draws it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.configio import ConfigError
from train.eval_inputs import as_float
from train.families import rate_at

__all__ = [
    "DEFAULT_GRIDS",
    "POPULATIONS",
    "QUANTITIES",
    "Quantity",
    "check_edges",
    "resolve_edges",
    "selection_function",
]


@dataclass(frozen=True)
class Quantity:
    """One quantity the positives are binned by.

    Attributes
    ----------
    name : str
        Its column (:data:`train.eval_inputs.SAMPLE_COLUMNS`).
    label : str
        Axis label (with unit).
    edges : tuple of float
        Default bin edges of a numeric quantity; empty for a categorical one.
    values : tuple
        Categories always reported (others seen are appended) of a categorical quantity.
    """

    name: str
    label: str
    edges: tuple[float, ...] = ()
    values: tuple[Any, ...] = ()

    @property
    def categorical(self) -> bool:
        """No bin edges: one bin per value."""
        return not self.edges


_SNR_EDGES = (0.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity("theta_e_arcsec", "theta_E (arcsec)", (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)),
        Quantity(
            "source_mag_r",
            "unlensed source r (AB mag)",
            (20.0, 21.0, 22.0, 22.5, 23.0, 23.5, 24.0, 24.5, 25.0, 25.5, 26.0, 27.0),
        ),
        Quantity("vis_snr", "arc S/N above 1 sigma (visibility)", _SNR_EDGES),
        Quantity("arc_snr", "arc matched-filter S/N", _SNR_EDGES),
        Quantity("psfsize_r", "r PSF FWHM (arcsec)", (0.6, 0.9, 1.1, 1.3, 1.5, 1.7, 2.0, 2.5)),
        Quantity("visible", "visible (LensPop-style criteria)", values=(False, True)),
        Quantity("family", "host family"),
    )
}
"""Quantity name -> :class:`Quantity`; a new binning is one entry here (and a column in
:data:`train.eval_inputs.SAMPLE_COLUMNS`)."""

DEFAULT_GRIDS: tuple[tuple[str, str], ...] = (("theta_e_arcsec", "source_mag_r"),)
"""2-D binnings ``(x, y)`` of numeric quantities."""

POPULATIONS: dict[str, str] = {
    "injected": "positives with an injected arc (kind injected, or none recorded)",
    "real": "known lenses (kind real): no injection parameters, only catalogue values",
}


def check_edges(name: str, edges: Sequence[float]) -> tuple[float, ...]:
    """Validated bin edges: at least two, finite, strictly increasing.

    Raises
    ------
    common.configio.ConfigError
        (a ``ValueError``) for key ``selection.edges.<name>``.
    """
    where = f"selection.edges.{name}"
    try:
        out = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise ConfigError(where, f"edges must be numbers, got {edges!r}") from None
    if len(out) < 2:
        raise ConfigError(where, f"need at least two edges, got {list(out)}")
    if not all(math.isfinite(e) for e in out):
        raise ConfigError(where, f"edges must be finite, got {list(out)}")
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ConfigError(where, f"edges must increase strictly, got {list(out)}")
    return out


def resolve_edges(edges: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, ...]]:
    """Default edges of every numeric quantity, with ``edges`` overriding some of them."""
    edges = dict(edges or {})
    for name in edges:
        q = QUANTITIES.get(name)
        if q is None or q.categorical:
            numeric = sorted(n for n, q in QUANTITIES.items() if not q.categorical)
            raise ConfigError(f"selection.edges.{name}", f"not a numeric quantity (have {numeric})")
    out = {n: q.edges for n, q in QUANTITIES.items() if not q.categorical}
    out.update({n: check_edges(n, e) for n, e in edges.items()})
    return out


def _counts(logits: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, Any]:
    points = {}
    for name, t in thresholds.items():
        r = rate_at(logits, t)
        points[name] = {"k": r["k"], "recall": r["rate"], "ci95": r["ci95"]}
    return {"n": int(len(logits)), "points": points}


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value: ``0..len(edges)-2``, -1 below, ``len(edges)-1`` above, -2 for NaN."""
    e = np.asarray(edges, np.float64)
    nb = len(e) - 1
    idx = np.searchsorted(e, values, side="right") - 1
    idx = np.where(values == e[-1], nb - 1, idx)  # the last bin is closed
    idx = np.where(values > e[-1], nb, idx)
    return np.where(np.isnan(values), -2, idx)


def _binned(values: Sequence[Any], logits: np.ndarray, edges, thresholds) -> dict[str, Any]:
    v = as_float(values)
    idx = bin_index(v, edges)
    nb = len(edges) - 1
    bins = [
        {"lo": edges[b], "hi": edges[b + 1], **_counts(logits[idx == b], thresholds)}
        for b in range(nb)
    ]
    return {
        "edges": list(edges),
        "bins": bins,
        "underflow": {"lo": None, "hi": edges[0], **_counts(logits[idx == -1], thresholds)},
        "overflow": {"lo": edges[-1], "hi": None, **_counts(logits[idx == nb], thresholds)},
        "missing": _counts(logits[idx == -2], thresholds),
    }


def _categorical(values: Sequence[Any], logits: np.ndarray, q: Quantity, thresholds) -> dict:
    present = [v for v in values if v is not None]
    cats = list(q.values) + sorted({v for v in present if v not in q.values}, key=str)
    bins = []
    for c in cats:
        mask = np.array([v is not None and v == c for v in values], bool)
        bins.append({"value": c, **_counts(logits[mask], thresholds)})
    missing = np.array([v is None for v in values], bool)
    return {"bins": bins, "missing": _counts(logits[missing], thresholds)}


def _grid(x, y, logits, xe, ye, thresholds) -> dict[str, Any]:
    xi, yi = bin_index(as_float(x), xe), bin_index(as_float(y), ye)
    nx, ny = len(xe) - 1, len(ye) - 1
    inside = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    n = np.zeros((nx, ny), np.int64)
    np.add.at(n, (xi[inside], yi[inside]), 1)
    k = {}
    for name, t in thresholds.items():
        kk = np.zeros((nx, ny), np.int64)
        hit = inside & (logits >= t)
        np.add.at(kk, (xi[hit], yi[hit]), 1)
        k[name] = kk.tolist()
    missing = (xi == -2) | (yi == -2)
    return {
        "x_edges": list(xe),
        "y_edges": list(ye),
        "n": n.tolist(),
        "k": k,
        "n_outside": int((~inside & ~missing).sum()),
        "n_missing": int(missing.sum()),
    }


def _population(cols, mask, logits, thresholds, edges, grids) -> dict[str, Any]:
    lg = logits[mask]
    sub = {name: [v for v, m in zip(vals, mask, strict=True) if m] for name, vals in cols.items()}
    quantities: dict[str, Any] = {}
    for name, q in QUANTITIES.items():
        values = sub.get(name, [None] * len(lg))
        body = (
            _categorical(values, lg, q, thresholds)
            if q.categorical
            else _binned(values, lg, edges[name], thresholds)
        )
        quantities[name] = {"label": q.label, "categorical": q.categorical, **body}
    grid_out = []
    for xn, yn in grids:
        xs, ys = sub.get(xn, [None] * len(lg)), sub.get(yn, [None] * len(lg))
        grid_out.append({"x": xn, "y": yn, **_grid(xs, ys, lg, edges[xn], edges[yn], thresholds)})
    return {**_counts(lg, thresholds), "quantities": quantities, "grids": grid_out}


def selection_function(
    columns: Mapping[str, Sequence[Any]],
    labels: np.ndarray,
    logits: np.ndarray,
    thresholds: Mapping[str, float],
    *,
    threshold_source: str = "validation",
    edges: Mapping[str, Sequence[float]] | None = None,
    grids: Sequence[tuple[str, str]] = DEFAULT_GRIDS,
) -> dict[str, Any]:
    """Recall of the positives at each threshold, per bin of each quantity.

    Parameters
    ----------
    columns : mapping
        Column name -> one value per sample (None when missing); ``kind`` separates the
        populations (:data:`POPULATIONS`), the others are :data:`QUANTITIES`. Absent columns
        count as missing.
    labels, logits : ndarray
        Per sample; only positives (label 1) are binned.
    thresholds : mapping
        Operating-point name -> logit (select ``logit >= threshold``; ``inf`` selects nothing).
    threshold_source : str
        Where the thresholds come from (recorded).
    edges : mapping, optional
        Bin edges per numeric quantity, overriding :attr:`Quantity.edges`.
    grids : sequence of (str, str)
        2-D binnings (numeric quantities).

    Returns
    -------
    dict
        ``{"threshold_source", "thresholds", "populations": {"injected": POP, "real": POP}}``
        with ``POP = {"n", "points", "quantities": {name: {"label", "categorical", "bins",
        "missing", ["edges", "underflow", "overflow"]}}, "grids": [...]}``; each bin holds
        ``n`` and ``points: {point: {"k", "recall", "ci95"}}`` (see docs/metrics.md).
    """
    labels = np.asarray(labels)
    logits = np.asarray(logits, np.float64)
    if len(labels) != len(logits):
        raise ValueError(f"{len(labels)} labels but {len(logits)} logits")
    for name, vals in columns.items():
        if len(vals) != len(labels):
            raise ValueError(f"column {name!r}: {len(vals)} values for {len(labels)} samples")
    resolved = resolve_edges(edges)
    for xn, yn in grids:
        for n in (xn, yn):
            if n not in resolved:
                raise ConfigError("selection.grids", f"{n!r} is not a numeric quantity")
    kinds = list(columns.get("kind", [None] * len(labels)))
    real = np.array([k == "real" for k in kinds], bool)
    pos = labels == 1
    return {
        "threshold_source": threshold_source,
        "thresholds": {k: (v if math.isfinite(v) else None) for k, v in thresholds.items()},
        "populations": {
            "injected": _population(columns, pos & ~real, logits, thresholds, resolved, grids),
            "real": _population(columns, pos & real, logits, thresholds, resolved, grids),
        },
    }
