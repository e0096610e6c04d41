"""Input checks shared by every metric: finite real scores and binary labels with both classes."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["validate_scores"]


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
