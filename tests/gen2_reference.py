"""Reproduction of the Gen-2 ROC defect, for tests and ``docs/gen2-diagnosis.md`` only.

Not part of the library: :mod:`train.metrics` is the one correct implementation. This module
rebuilds Gen-2's tie-splitting ROC so that ``tests/test_gen2_regression.py`` can show the
collapse of ``tpr@fpr1e-4`` to ``1/P`` and that the tie-aware metrics do not suffer from it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from train.metrics import validate_scores

__all__ = ["legacy_gen2_roc", "legacy_gen2_tpr_at_fpr"]


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
    ``docs/gen2-diagnosis.md`` only; use :func:`train.metrics.tpr_at_fpr` for measurements.

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
