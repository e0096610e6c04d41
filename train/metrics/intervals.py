"""Exact binomial intervals and false-positive budgets (counts, never bare rates)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta

__all__ = ["ROUND_DIGITS", "ci_tuple", "clopper_pearson", "fp_budget"]

ROUND_DIGITS = 9
"""Decimals kept of ``target * n`` before floor/ceil (strips float noise: 0.7 * 62910 etc.)."""


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
    return np.floor(np.round(np.asarray(fpr, dtype=np.float64) * n_neg, ROUND_DIGITS)).astype(
        np.int64
    )


def ci_tuple(k: int, n: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of ``k / n`` as a tuple of floats."""
    low, high = clopper_pearson(k, n)
    return float(low), float(high)
