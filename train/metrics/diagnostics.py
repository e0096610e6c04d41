"""Score diagnostics: tie groups, per-class logit percentiles, sigmoid saturation.

A float32 sigmoid is exactly 1.0 for logits above ~16.6, and a bfloat16 one from about 6.23
(:func:`sigmoid_saturation_logit`): ranked as probabilities, a well-trained model's confident
samples collapse into one tied block (what happened to "Gen-2", see ``docs/gen2-diagnosis.md``).
:func:`score_diagnostics` makes such a collapse visible instead of silent.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from train.metrics.roc import RocCurve, roc
from train.metrics.validation import validate_scores

__all__ = ["LOGIT_PERCENTILES", "score_diagnostics", "sigmoid_saturation_logit"]

LOGIT_PERCENTILES: tuple[int, ...] = (1, 5, 25, 50, 75, 95, 99)


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
