"""Validation operating points as logit thresholds, stored with every checkpoint and used to score.

Each validation pass records, next to its flat summary, ``thresholds``: one logit per operating
point of :data:`train.metrics.OPERATING_POINTS` (``fpr1e-3``: the rule ``logit >= t`` with the
largest validation TPR at FPR <= 1e-3; ``tpr0.85``: the one with the smallest FPR at TPR >= 0.85;
``nfp10``: at most 10 validation false positives). The checkpoint stores the history, so a
checkpoint knows the thresholds of the epoch it was saved at (:func:`checkpoint_thresholds`) and
``train score --threshold fpr1e-3`` applies that operating point to a new sample.

The names are chosen so that no history plot mistakes them for metrics
(:func:`train.metrics.find_metric` knows none of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from train.metrics import OPERATING_POINTS, find_metric, metric_key, target_label

__all__ = [
    "THRESHOLD_PREFIXES",
    "checkpoint_thresholds",
    "checkpoint_val_record",
    "operating_thresholds",
    "resolve_threshold",
    "threshold_metric_key",
    "threshold_name",
]

#: Operating-point kind -> prefix of its threshold names (``fpr1e-3``, ``tpr0.85``, ``nfp10``).
THRESHOLD_PREFIXES: dict[str, str] = {
    "tpr_at_fpr": "fpr",
    "fpr_at_tpr": "tpr",
    "tpr_at_n_fp": "nfp",
}
assert set(THRESHOLD_PREFIXES) == set(OPERATING_POINTS), "a threshold prefix per operating point"


def threshold_name(kind: str, target: float) -> str:
    """``threshold_name("tpr_at_fpr", 1e-3) == "fpr1e-3"``."""
    return THRESHOLD_PREFIXES[kind] + target_label(kind, target)


def _points(result: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    op = OPERATING_POINTS[kind]
    if op.nested:
        return list(result.get(kind, {}).values())
    return [
        v
        for k, v in result.items()
        if k.startswith(op.prefix) and isinstance(v, Mapping) and v.get("kind") == kind
    ]


def operating_thresholds(result: Mapping[str, Any]) -> dict[str, float | None]:
    """Threshold of every operating point of a :func:`train.metrics.evaluate_scores` result.

    Returns
    -------
    dict
        ``{name: logit}`` (names from :func:`threshold_name`); ``None`` for an operating point
        that selects nothing (threshold ``+inf``).
    """
    out: dict[str, float | None] = {}
    for kind in OPERATING_POINTS:
        for point in _points(result, kind):
            t = point.get("threshold")
            out[threshold_name(kind, point["target"])] = (
                float(t) if t is not None and math.isfinite(t) else None
            )
    for name in out:
        assert find_metric(name) is None, f"threshold name {name!r} reads as a metric"
    return out


def threshold_metric_key(name: str) -> str | None:
    """The flat validation metric of threshold ``name`` (``fpr1e-3`` -> ``tpr@fpr1e-3``)."""
    for kind, prefix in THRESHOLD_PREFIXES.items():
        op = OPERATING_POINTS[kind]
        if name.startswith(prefix):
            try:
                target = op.parse(name[len(prefix) :])
            except ValueError:
                continue
            if threshold_name(kind, target) == name:
                return metric_key(kind, target)
    return None


def checkpoint_val_record(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The validation record of the epoch a checkpoint was saved at (``{}`` if absent)."""
    for record in reversed(ckpt.get("history") or []):
        if record.get("epoch") == ckpt.get("epoch") and isinstance(record.get("val"), Mapping):
            return dict(record["val"])
    return {}


def checkpoint_thresholds(ckpt: Mapping[str, Any]) -> dict[str, float | None]:
    """Validation thresholds of the epoch a checkpoint was saved at (``{}`` if none stored).

    Checkpoints written before thresholds were recorded have none; the caller then needs a
    numeric threshold.
    """
    return dict(checkpoint_val_record(ckpt).get("thresholds") or {})


def resolve_threshold(spec: str, stored: Mapping[str, float | None]) -> tuple[str, float]:
    """``(name, logit)`` of a ``--threshold`` value: a stored operating point name or a number.

    A stored point that selects nothing resolves to ``+inf``.

    Raises
    ------
    ValueError
        Neither a number nor a stored operating point; the message lists the stored ones.
    """
    if spec in stored:
        value = stored[spec]
        return spec, math.inf if value is None else float(value)
    try:
        value = float(spec)
    except ValueError:
        have = ", ".join(stored) or "none (the checkpoint predates stored thresholds)"
        raise ValueError(
            f"{spec!r} is neither a logit nor a validation operating point of the checkpoint "
            f"(stored: {have})"
        ) from None
    if math.isnan(value):
        raise ValueError("threshold is NaN")
    return f"logit>={value:g}", value
