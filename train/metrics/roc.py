"""Tie-aware ROC curve and operating points (counts, thresholds, exact intervals).

Every number comes from one ROC curve over the *distinct* score values, built with
:func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``). Ties are never split: every ROC
point is the decision rule "score >= t" for some threshold ``t`` (plus the empty selection
``t = +inf`` at (0, 0)), so an operating point always corresponds to a threshold that can be
applied to a catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import auc as _trapezoid_auc
from sklearn.metrics import roc_curve

from train.metrics.intervals import ROUND_DIGITS, ci_tuple, fp_budget
from train.metrics.validation import validate_scores

__all__ = [
    "LOW_COUNT_FP",
    "Kind",
    "OperatingPoint",
    "RocCurve",
    "fpr_at_tpr",
    "roc",
    "roc_auc",
    "tpr_at_fpr",
    "tpr_at_n_fp",
]

LOW_COUNT_FP = 10
"""An operating point decided by fewer than this many false positives is flagged ``low_count``."""

Kind = Literal["tpr_at_fpr", "fpr_at_tpr", "tpr_at_n_fp"]


@dataclass(frozen=True)
class OperatingPoint:
    """One threshold on the ROC curve, with counts and exact binomial intervals.

    Attributes
    ----------
    kind : {"tpr_at_fpr", "fpr_at_tpr", "tpr_at_n_fp"}
        Which question the point answers; ``target`` is an FPR, a TPR or a false-positive count.
    target : float
        The requested FPR, TPR or number of false positives.
    threshold : float
        Decision rule is ``score >= threshold`` (a logit when logits were passed). ``+inf`` means
        "select nothing" (the (0, 0) point); :meth:`to_dict` writes it as ``None``.
    tpr, fpr : float
        Rates at the threshold (``tp / n_pos``, ``fp / n_neg``).
    n_pos, n_neg : int
        Class sizes.
    tp, fp : int
        Positives / negatives with ``score >= threshold``.
    fp_allowed : int or None
        False-positive budget: ``floor(target * n_neg)`` for ``tpr_at_fpr``, ``target`` for
        ``tpr_at_n_fp``, ``None`` for ``fpr_at_tpr``.
    tpr_ci95, fpr_ci95 : tuple of float
        Exact Clopper-Pearson 95% intervals on ``tp / n_pos`` and ``fp / n_neg``. They describe
        the binomial noise at this fixed threshold, not the uncertainty from choosing it.
    low_count : bool
        True when the point is decided by fewer than 10 false positives: ``target * n_neg < 10``
        for ``tpr_at_fpr``, ``target < 10`` for ``tpr_at_n_fp``, ``fp < 10`` for ``fpr_at_tpr``.
    next_tp, next_fp : int or None
        For the budget kinds, the counts at the highest threshold with a larger TPR, i.e. the
        cheapest way to gain TPR, which necessarily exceeds the budget; ``None`` if no threshold
        has a larger TPR, and for ``fpr_at_tpr``. A large jump (e.g. 0 -> 46 false positives while TPR goes 0 -> 0.85)
        reveals a tie block straddling the budget.
    """

    kind: Kind
    target: float
    threshold: float
    tpr: float
    fpr: float
    n_pos: int
    n_neg: int
    tp: int
    fp: int
    fp_allowed: int | None
    tpr_ci95: tuple[float, float]
    fpr_ci95: tuple[float, float]
    low_count: bool
    next_tp: int | None = None
    next_fp: int | None = None

    @property
    def fp_found(self) -> int:
        """False positives found at the threshold (same as ``fp``, read next to ``fp_allowed``)."""
        return self.fp

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (non-finite threshold -> ``None``)."""
        return {
            "kind": self.kind,
            "target": float(self.target),
            "threshold": float(self.threshold) if math.isfinite(self.threshold) else None,
            "tpr": float(self.tpr),
            "fpr": float(self.fpr),
            "n_pos": int(self.n_pos),
            "n_neg": int(self.n_neg),
            "tp": int(self.tp),
            "fp": int(self.fp),
            "fp_allowed": None if self.fp_allowed is None else int(self.fp_allowed),
            "fp_found": int(self.fp_found),
            "tpr_ci95": [float(v) for v in self.tpr_ci95],
            "fpr_ci95": [float(v) for v in self.fpr_ci95],
            "low_count": bool(self.low_count),
            "next_tp": self.next_tp,
            "next_fp": self.next_fp,
        }


@dataclass(frozen=True)
class RocCurve:
    """ROC curve over distinct score thresholds, with exact integer counts.

    Index 0 is the empty selection (threshold ``+inf``, 0 true and 0 false positives); index
    ``i`` selects every sample with ``score >= thresholds[i]``. ``tp`` and ``fp`` are
    non-decreasing; the last point selects everything.

    Attributes
    ----------
    thresholds : numpy.ndarray of float64
        Descending; ``thresholds[1:]`` are the distinct scores.
    tp, fp : numpy.ndarray of int64
        Cumulative true / false positives at each threshold.
    n_pos, n_neg : int
        Class sizes.
    """

    thresholds: NDArray[np.float64]
    tp: NDArray[np.int64]
    fp: NDArray[np.int64]
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> NDArray[np.float64]:
        """True-positive rate at each threshold."""
        return self.tp / self.n_pos

    @property
    def fpr(self) -> NDArray[np.float64]:
        """False-positive rate at each threshold."""
        return self.fp / self.n_neg

    @property
    def n_distinct(self) -> int:
        """Number of distinct score values."""
        return len(self.thresholds) - 1

    def auc(self) -> float:
        """Area under the ROC (trapezoids; ties count one half, as in ``roc_auc_score``)."""
        return float(_trapezoid_auc(self.fpr, self.tpr))

    def best_index_within(self, fp_allowed: ArrayLike) -> NDArray[np.intp]:
        """Index of the largest TPR whose false-positive count is ``<= fp_allowed``.

        Among points with that TPR the one with the fewest false positives (highest threshold) is
        returned. Vectorised over ``fp_allowed``; index 0 (the (0, 0) point) always qualifies.
        """
        last_ok = np.searchsorted(self.fp, np.asarray(fp_allowed), side="right") - 1
        # tp is non-decreasing: the first index reaching tp[last_ok] has the fewest FPs.
        return np.searchsorted(self.tp, self.tp[last_ok], side="left")

    def _point(self, kind: Kind, target: float, i: int, fp_allowed: int | None) -> OperatingPoint:
        tp, fp = int(self.tp[i]), int(self.fp[i])
        # Next: the first threshold with a higher TPR (for the budget kinds it exceeds the budget).
        j = int(np.searchsorted(self.tp, tp, side="right"))
        has_next = kind != "fpr_at_tpr" and j < len(self.tp)
        if kind == "tpr_at_fpr":
            low = target * self.n_neg < LOW_COUNT_FP
        elif kind == "tpr_at_n_fp":
            low = target < LOW_COUNT_FP
        else:
            low = fp < LOW_COUNT_FP
        return OperatingPoint(
            kind=kind,
            target=float(target),
            threshold=float(self.thresholds[i]),
            tpr=tp / self.n_pos,
            fpr=fp / self.n_neg,
            n_pos=self.n_pos,
            n_neg=self.n_neg,
            tp=tp,
            fp=fp,
            fp_allowed=fp_allowed,
            tpr_ci95=ci_tuple(tp, self.n_pos),
            fpr_ci95=ci_tuple(fp, self.n_neg),
            low_count=bool(low),
            next_tp=int(self.tp[j]) if has_next else None,
            next_fp=int(self.fp[j]) if has_next else None,
        )

    def tpr_at_fpr(self, target: float) -> OperatingPoint:
        """Largest TPR among thresholds with ``FPR <= target`` (see :func:`tpr_at_fpr`)."""
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"FPR target must be in [0, 1], got {target}")
        allowed = int(fp_budget(target, self.n_neg))
        i = int(self.best_index_within(allowed))
        return self._point("tpr_at_fpr", target, i, allowed)

    def tpr_at_n_fp(self, n_fp: int) -> OperatingPoint:
        """Largest TPR among thresholds with at most ``n_fp`` false positives."""
        if int(n_fp) != n_fp or n_fp < 0:
            raise ValueError(f"n_fp must be a non-negative integer, got {n_fp}")
        i = int(self.best_index_within(int(n_fp)))
        return self._point("tpr_at_n_fp", int(n_fp), i, int(n_fp))

    def fpr_at_tpr(self, target: float) -> OperatingPoint:
        """Smallest FPR among thresholds with ``TPR >= target`` (see :func:`fpr_at_tpr`)."""
        if not 0.0 <= target <= 1.0:
            raise ValueError(f"TPR target must be in [0, 1], got {target}")
        needed = math.ceil(round(target * self.n_pos, ROUND_DIGITS))
        i = int(np.searchsorted(self.tp, needed, side="left"))
        return self._point("fpr_at_tpr", target, i, None)


def roc(scores: ArrayLike, labels: ArrayLike) -> RocCurve:
    """Tie-aware ROC curve over distinct thresholds.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        Finite real scores, higher = more lens-like. Pass logits (see module docstring).
    labels : array_like of {0, 1} or bool, shape (n,)
        1 for lenses (injected hosts), 0 for controls.

    Returns
    -------
    RocCurve
        Built on ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    Raises
    ------
    ValueError
        On NaN/inf scores, non-binary labels, length mismatch, or a missing class.
    """
    s, y = validate_scores(scores, labels)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    return RocCurve(
        thresholds=np.asarray(thresholds, dtype=np.float64),
        tp=np.rint(tpr * n_pos).astype(np.int64),
        fp=np.rint(fpr * n_neg).astype(np.int64),
        n_pos=n_pos,
        n_neg=n_neg,
    )


def tpr_at_fpr(scores: ArrayLike, labels: ArrayLike, target: float) -> OperatingPoint:
    """Largest TPR among thresholds ``score >= t`` whose FPR does not exceed ``target``.

    The false-positive budget is ``floor(target * n_neg)`` negatives; ties are never split, so a
    block of tied scores is either wholly selected or not at all. If even the highest distinct
    score brings more negatives than allowed, the answer is the empty selection (TPR 0,
    threshold ``+inf``) - honest, and visible through ``next_fp`` / :func:`score_diagnostics`.

    Parameters
    ----------
    scores : array_like of float
        Logits (any finite real scores are accepted).
    labels : array_like of {0, 1}
        Binary labels.
    target : float
        FPR target in [0, 1], e.g. 1e-4.

    Returns
    -------
    OperatingPoint
    """
    return roc(scores, labels).tpr_at_fpr(target)


def fpr_at_tpr(scores: ArrayLike, labels: ArrayLike, target: float) -> OperatingPoint:
    """Smallest FPR among thresholds ``score >= t`` whose TPR is at least ``target``.

    Parameters
    ----------
    scores : array_like of float
        Logits (any finite real scores are accepted).
    labels : array_like of {0, 1}
        Binary labels.
    target : float
        TPR target in [0, 1], e.g. 0.5.

    Returns
    -------
    OperatingPoint
    """
    return roc(scores, labels).fpr_at_tpr(target)


def tpr_at_n_fp(scores: ArrayLike, labels: ArrayLike, n_fp: int) -> OperatingPoint:
    """Largest TPR among thresholds with at most ``n_fp`` false positives (TPR0, TPR10).

    ``n_fp = 0`` gives the fraction of positives scoring strictly above every negative.

    Parameters
    ----------
    scores : array_like of float
        Logits (any finite real scores are accepted).
    labels : array_like of {0, 1}
        Binary labels.
    n_fp : int
        False-positive budget (a count, not a rate).

    Returns
    -------
    OperatingPoint
    """
    return roc(scores, labels).tpr_at_n_fp(n_fp)


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, ties counted one half (equals ``sklearn.metrics.roc_auc_score``).

    Parameters
    ----------
    scores : array_like of float
        Finite real scores.
    labels : array_like of {0, 1}
        Binary labels.

    Returns
    -------
    float
    """
    return roc(scores, labels).auc()
