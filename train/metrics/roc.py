"""Tie-aware ranking metrics for lens finding, computed on logits.

Every number here comes from one ROC curve over the *distinct* score values, built with
:func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``). Ties are never split: every ROC
point is the decision rule "score >= t" for some threshold ``t`` (plus the empty selection
``t = +inf`` at (0, 0)). An operating point therefore always corresponds to a threshold that can
actually be applied to a catalogue.

Pass **logits**, not sigmoid probabilities. A float32 sigmoid is exactly 1.0 for logits above
~16.6, and a bfloat16 one for logits of about 6.23 and above (see
:func:`sigmoid_saturation_logit`): ranked as probabilities, a well-trained model's confident
samples collapse into a single tied block, and the low-FPR metrics become meaningless (this is
what happened to "Gen-2", see ``docs/gen2-diagnosis.md``). Any finite real score is accepted;
:func:`score_diagnostics` reports how many scores sit in the top tie group so that a collapse is
visible instead of silent.

Main entry points
-----------------
- :func:`roc` -> :class:`RocCurve` (one sort; all operating points derive from it).
- :func:`tpr_at_fpr`, :func:`fpr_at_tpr`, :func:`tpr_at_n_fp` -> :class:`OperatingPoint`.
- :func:`evaluate_scores` -> JSON-serialisable dict; :func:`flat_summary` -> flat floats for
  ``history.json``.
- :func:`legacy_gen2_tpr_at_fpr`: a deliberate reproduction of the Gen-2 defect, for tests and
  documentation only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta
from sklearn.metrics import auc as _trapezoid_auc
from sklearn.metrics import roc_curve

__all__ = [
    "DEFAULT_FPR_TARGETS",
    "DEFAULT_N_FP_TARGETS",
    "DEFAULT_TPR_TARGETS",
    "LOGIT_PERCENTILES",
    "OperatingPoint",
    "RocCurve",
    "clopper_pearson",
    "evaluate_scores",
    "flat_summary",
    "fp_budget",
    "fpr_at_tpr",
    "fpr_label",
    "legacy_gen2_roc",
    "legacy_gen2_tpr_at_fpr",
    "roc",
    "roc_auc",
    "score_diagnostics",
    "sigmoid_saturation_logit",
    "tpr_at_fpr",
    "tpr_at_n_fp",
    "tpr_label",
    "validate_scores",
]

DEFAULT_FPR_TARGETS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
DEFAULT_TPR_TARGETS: tuple[float, ...] = (0.5, 0.7, 0.85)
DEFAULT_N_FP_TARGETS: tuple[int, ...] = (0, 10)
LOGIT_PERCENTILES: tuple[int, ...] = (1, 5, 25, 50, 75, 95, 99)
LOW_COUNT_FP = 10
"""An operating point decided by fewer than this many false positives is flagged ``low_count``."""

_ROUND_DIGITS = 9  # strips float noise from target * n before floor/ceil (0.7 * 62910 etc.)


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------
def validate_scores(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Validate scores and binary labels; return float64 scores and boolean labels.

    Parameters
    ----------
    scores : array_like of float, shape (n,)
        Finite real scores.
    labels : array_like of {0, 1} or bool, shape (n,)
        Binary labels; both classes must be present.

    Returns
    -------
    scores : numpy.ndarray of float64
    labels : numpy.ndarray of bool

    Raises
    ------
    ValueError
        On shape mismatch, non-finite scores, labels outside {0, 1}, or a missing class.
    """
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}")
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.issubdtype(s.dtype, np.number) or np.iscomplexobj(s):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN value(s)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain +-inf; pass finite logits")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("labels must be binary (0 = control, 1 = lens)")
        y = y == 1
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        missing = "positives" if n_pos == 0 else "negatives"
        raise ValueError(f"no {missing}: ROC metrics need both classes (n={y.size})")
    return s, y


def clopper_pearson(
    k: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact (Clopper-Pearson) binomial confidence interval, vectorised.

    Identical to ``scipy.stats.binomtest(k, n).proportion_ci(confidence, method="exact")`` but
    works on arrays (used for the TPR band of a whole ROC curve).

    Parameters
    ----------
    k : array_like of int
        Number of successes (0 <= k <= n).
    n : array_like of int
        Number of trials (n >= 1).
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    low, high : numpy.ndarray
        Interval bounds, 0 when ``k == 0`` (low) and 1 when ``k == n`` (high).
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= k <= n and n >= 1")
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return low, high


def fp_budget(fpr: ArrayLike, n_neg: int) -> NDArray[np.int64]:
    """False positives allowed by an FPR target: ``floor(fpr * n_neg)``, vectorised.

    The product is rounded to 9 decimals first so that float noise cannot move the budget by one.

    Parameters
    ----------
    fpr : array_like of float
        FPR target(s) in [0, 1].
    n_neg : int
        Number of negatives.

    Returns
    -------
    numpy.ndarray of int64
    """
    return np.floor(np.round(np.asarray(fpr, dtype=np.float64) * n_neg, _ROUND_DIGITS)).astype(
        np.int64
    )


def _ci_tuple(k: int, n: int) -> tuple[float, float]:
    low, high = clopper_pearson(k, n)
    return float(low), float(high)


# --------------------------------------------------------------------------------------------
# Operating points
# --------------------------------------------------------------------------------------------
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
            tpr_ci95=_ci_tuple(tp, self.n_pos),
            fpr_ci95=_ci_tuple(fp, self.n_neg),
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
        needed = math.ceil(round(target * self.n_pos, _ROUND_DIGITS))
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


# --------------------------------------------------------------------------------------------
# Saturation and score diagnostics
# --------------------------------------------------------------------------------------------
def _torch_dtype(dtype: str) -> Any:
    import torch  # local import: metrics (and plots) stay importable without loading torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got {dtype!r}")
    return dtypes[dtype]


def _sigmoid_is_one(logits32: NDArray[np.float32], dtype: str) -> NDArray[np.bool_]:
    """Whether ``torch.sigmoid(logits.to(dtype)) == 1`` exactly, for float32 logits."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(logits32, dtype=np.float32))
    return (torch.sigmoid(t.to(_torch_dtype(dtype))) == 1).numpy()


@functools.cache
def sigmoid_saturation_logit(dtype: str = "float32") -> float:
    """Smallest float32 logit whose sigmoid, computed in ``dtype``, is exactly 1.0.

    Found by bisection over float32 bit patterns with ``torch.sigmoid`` (the logit is first cast
    to ``dtype``, as autocast does), so the value is measured, not assumed. About 16.64 for
    float32 and 6.234375 for bfloat16 (the float32 logits that round to bfloat16 6.25; a logit
    that already is a bfloat16 value saturates from 6.25).

    Parameters
    ----------
    dtype : {"float32", "bfloat16", "float16"}
        Precision of the sigmoid.

    Returns
    -------
    float
    """
    lo = np.float32(0.0).view(np.int32).item()  # sigmoid(0) = 0.5 < 1
    hi = np.float32(100.0).view(np.int32).item()  # saturated in every dtype
    while hi - lo > 1:  # positive float32 bit patterns are ordered like their values
        mid = (lo + hi) // 2
        x = np.array([mid], dtype=np.int32).view(np.float32)
        if _sigmoid_is_one(x, dtype)[0]:
            hi = mid
        else:
            lo = mid
    return float(np.array([hi], dtype=np.int32).view(np.float32)[0])


def score_diagnostics(
    logits: ArrayLike, labels: ArrayLike, *, curve: RocCurve | None = None
) -> dict[str, Any]:
    """Describe the score distribution: ties, per-class logit percentiles, sigmoid saturation.

    Parameters
    ----------
    logits : array_like of float
        Model logits.
    labels : array_like of {0, 1}
        Binary labels.
    curve : RocCurve, optional
        The ROC of the same data, to avoid sorting twice.

    Returns
    -------
    dict
        ``n_distinct`` (distinct scores); ``top_tie_size``, ``top_tie_n_pos``,
        ``top_tie_n_neg`` (the group sharing the maximal score); ``largest_tie_size``,
        ``largest_tie_n_pos``, ``largest_tie_n_neg`` (biggest group of equal scores anywhere);
        ``logit_percentiles`` ``{"pos": {"p1": ...}, "neg": {...}}``; ``frac_sigmoid1_float32``
        and ``frac_sigmoid1_bfloat16`` (fraction of all samples whose sigmoid would be exactly
        1.0), with per-class counts under ``n_sigmoid1_float32`` / ``n_sigmoid1_bfloat16``.
    """
    s, y = validate_scores(logits, labels)
    if curve is None:
        curve = roc(s, y)
    group_tp = np.diff(curve.tp)
    group_fp = np.diff(curve.fp)
    largest = int(np.argmax(group_tp + group_fp))
    percentiles = {
        name: dict(
            zip(
                (f"p{q}" for q in LOGIT_PERCENTILES),
                (float(v) for v in np.percentile(s[mask], LOGIT_PERCENTILES)),
                strict=True,
            )
        )
        for name, mask in (("pos", y), ("neg", ~y))
    }
    s32 = s.astype(np.float32)
    out: dict[str, Any] = {
        "n": int(s.size),
        "n_distinct": curve.n_distinct,
        "top_tie_size": int(group_tp[0] + group_fp[0]),
        "top_tie_n_pos": int(group_tp[0]),
        "top_tie_n_neg": int(group_fp[0]),
        "largest_tie_size": int(group_tp[largest] + group_fp[largest]),
        "largest_tie_n_pos": int(group_tp[largest]),
        "largest_tie_n_neg": int(group_fp[largest]),
        "logit_percentiles": percentiles,
    }
    for dtype in ("float32", "bfloat16"):
        sat = _sigmoid_is_one(s32, dtype)
        out[f"frac_sigmoid1_{dtype}"] = float(sat.mean())
        out[f"n_sigmoid1_{dtype}"] = {"pos": int(sat[y].sum()), "neg": int(sat[~y].sum())}
    return out


# --------------------------------------------------------------------------------------------
# Full evaluation
# --------------------------------------------------------------------------------------------
def fpr_label(target: float) -> str:
    """Short label of an FPR target: ``1e-4`` for 1e-4, ``2.5e-3`` for 0.0025."""
    mantissa, exponent = f"{target:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def tpr_label(target: float) -> str:
    """Short label of a TPR target: ``0.50`` for 0.5."""
    return f"{target:.2f}"


def evaluate_scores(
    logits: ArrayLike,
    labels: ArrayLike,
    fpr_targets: Sequence[float] = DEFAULT_FPR_TARGETS,
    tpr_targets: Sequence[float] = DEFAULT_TPR_TARGETS,
    n_fp_targets: Sequence[int] = DEFAULT_N_FP_TARGETS,
) -> dict[str, Any]:
    """All ranking metrics from one tie-aware ROC; the result is JSON-serialisable.

    Parameters
    ----------
    logits : array_like of float, shape (n,)
        Model logits (float32 is fine; they are compared in float64). Do not pass sigmoid
        probabilities: they tie at exactly 1.0 for confident samples.
    labels : array_like of {0, 1}, shape (n,)
        Binary labels.
    fpr_targets : sequence of float
        FPRs for :meth:`RocCurve.tpr_at_fpr`.
    tpr_targets : sequence of float
        TPRs for :meth:`RocCurve.fpr_at_tpr`.
    n_fp_targets : sequence of int
        False-positive counts for :meth:`RocCurve.tpr_at_n_fp`; 0 and 10 are reported as
        ``tpr0`` and ``tpr10``, any other ``n`` as ``tpr{n}``.

    Returns
    -------
    dict
        ``{"n_pos", "n_neg", "auc", "tpr_at_fpr": {"1e-04": point, ...},
        "fpr_at_tpr": {"0.50": point, ...}, "tpr0": point, "tpr10": point, "diagnostics": {...}}``
        where every ``point`` is :meth:`OperatingPoint.to_dict`.
    """
    s, y = validate_scores(logits, labels)
    curve = roc(s, y)
    result: dict[str, Any] = {
        "n_pos": curve.n_pos,
        "n_neg": curve.n_neg,
        "auc": curve.auc(),
        "tpr_at_fpr": {f"{t:.0e}": curve.tpr_at_fpr(t).to_dict() for t in fpr_targets},
        "fpr_at_tpr": {tpr_label(t): curve.fpr_at_tpr(t).to_dict() for t in tpr_targets},
    }
    for n_fp in n_fp_targets:
        result[f"tpr{int(n_fp)}"] = curve.tpr_at_n_fp(n_fp).to_dict()
    result["diagnostics"] = score_diagnostics(s, y, curve=curve)
    return result


def flat_summary(result: Mapping[str, Any]) -> dict[str, float]:
    """Flatten :func:`evaluate_scores` output to ``{name: float}`` for ``history.json``.

    Keys: ``auc``, ``tpr@fpr1e-4`` ... (one per FPR target), ``fpr@tpr0.50`` ... (one per TPR
    target), ``tpr0``, ``tpr10`` (one per false-positive count), ``top_tie_size``,
    ``top_tie_n_neg``, ``frac_sigmoid1_bfloat16``, ``frac_sigmoid1_float32``, ``n_distinct``.
    Works on the dict as returned or after a JSON round trip.

    Parameters
    ----------
    result : mapping
        Output of :func:`evaluate_scores`.

    Returns
    -------
    dict of str to float
    """
    flat: dict[str, float] = {"auc": float(result["auc"])}
    for key, point in result["tpr_at_fpr"].items():
        flat[f"tpr@fpr{fpr_label(float(key))}"] = float(point["tpr"])
    for key, point in result["fpr_at_tpr"].items():
        flat[f"fpr@tpr{key}"] = float(point["fpr"])
    for key, value in result.items():
        if key.startswith("tpr") and key[3:].isdigit():
            flat[key] = float(value["tpr"])
    diag = result["diagnostics"]
    for key in (
        "top_tie_size",
        "top_tie_n_neg",
        "frac_sigmoid1_bfloat16",
        "frac_sigmoid1_float32",
        "n_distinct",
    ):
        flat[key] = float(diag[key])
    return flat


# --------------------------------------------------------------------------------------------
# Reproduction of the Gen-2 defect (tests and docs only)
# --------------------------------------------------------------------------------------------
def legacy_gen2_roc(
    scores: ArrayLike, labels: ArrayLike, tie: Literal["first", "last"] = "first"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """REPRODUCTION OF A DEFECT - Gen-2's ROC: one point per run of tied scores, no (0, 0).

    Do not use for measurements. ``tie="first"`` keeps the cumulative counts at the *first*
    sample of each run of equal scores (the Gen-2 behaviour, which splits every tie); ``"last"``
    keeps the last sample (the obvious patch, still without the (0, 0) point). Samples are sorted
    by descending score with a stable sort, so within a tie the input order decides which sample
    comes first (the original's order within ties was implementation-defined).

    Parameters
    ----------
    scores : array_like of float
        Scores as Gen-2 ranked them (sigmoid probabilities).
    labels : array_like of {0, 1}
        Binary labels.
    tie : {"first", "last"}
        Which sample of a tied run provides the ROC point.

    Returns
    -------
    fpr, tpr : numpy.ndarray
        The legacy curve, without the (0, 0) point.
    """
    s, y = validate_scores(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tps = np.cumsum(y_sorted)
    fps = np.cumsum(~y_sorted)
    change = np.flatnonzero(np.diff(s_sorted))  # last index of every run except the final one
    if tie == "first":
        idx = np.r_[0, change + 1]
    elif tie == "last":
        idx = np.r_[change, s.size - 1]
    else:
        raise ValueError(f"tie must be 'first' or 'last', got {tie!r}")
    return fps[idx] / fps[-1], tps[idx] / tps[-1]


def legacy_gen2_tpr_at_fpr(
    scores: ArrayLike,
    labels: ArrayLike,
    target: float,
    tie: Literal["first", "last"] = "first",
) -> float:
    """REPRODUCTION OF A DEFECT - Gen-2's tpr@fpr on :func:`legacy_gen2_roc`.

    Largest legacy-curve TPR with FPR <= ``target``, 0.0 if no legacy point qualifies. With a
    tied top block holding more than ``target * n_neg`` negatives this returns exactly ``1/P``
    (``tie="first"``, first tied sample a positive) or 0 (``tie="last"``). For tests and
    ``docs/gen2-diagnosis.md`` only; use :func:`tpr_at_fpr` for measurements.

    Parameters
    ----------
    scores : array_like of float
        Scores as Gen-2 ranked them.
    labels : array_like of {0, 1}
        Binary labels.
    target : float
        FPR target.
    tie : {"first", "last"}
        See :func:`legacy_gen2_roc`.

    Returns
    -------
    float
    """
    fpr, tpr = legacy_gen2_roc(scores, labels, tie)
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0
