"""Full evaluation of one score array, and its flat form for ``history.json``.

Both walk the metric table (:mod:`train.metrics.registry`): a registered metric appears in the
evaluation result, the flat summary, the history, early stopping and the plots without any
change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from numpy.typing import ArrayLike

from train.metrics.diagnostics import score_diagnostics
from train.metrics.registry import (
    DEFAULT_FPR_TARGETS,
    DEFAULT_N_FP_TARGETS,
    DEFAULT_TPR_TARGETS,
    METRICS,
    OPERATING_POINTS,
    MetricInputs,
    metric_key,
    target_label,
)
from train.metrics.roc import roc
from train.metrics.validation import validate_scores

__all__ = ["evaluate_scores", "flat_summary"]


def _labels(kind: str, targets: Sequence[float]) -> list[str]:
    """Target labels of ``kind``; two targets with one label are an error, never a silent loss."""
    labels = [target_label(kind, t) for t in targets]
    seen: dict[str, float] = {}
    for label, target in zip(labels, targets, strict=True):
        if label in seen:
            raise ValueError(
                f"{kind} targets {seen[label]!r} and {target!r} both have the key {label!r}"
            )
        seen[label] = target
    return labels


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
        False-positive counts for :meth:`RocCurve.tpr_at_n_fp`, reported as ``tpr{n}``.

    Returns
    -------
    dict
        ``{"n_pos", "n_neg", "auc", <other registered metrics>, "tpr_at_fpr": {"1e-4": point,
        ...}, "fpr_at_tpr": {"0.50": point, ...}, "tpr0": point, "tpr10": point,
        "diagnostics": {...}}`` where every ``point`` is :meth:`OperatingPoint.to_dict` and the
        target keys come from :func:`train.metrics.target_label`.

    Raises
    ------
    ValueError
        Invalid scores or labels, or two targets of one kind with the same key.
    """
    targets = {"tpr_at_fpr": fpr_targets, "fpr_at_tpr": tpr_targets, "tpr_at_n_fp": n_fp_targets}
    keys = {kind: _labels(kind, targets[kind]) for kind in OPERATING_POINTS}
    s, y = validate_scores(logits, labels)
    curve = roc(s, y)
    inputs = MetricInputs(curve, s, y)
    result: dict[str, Any] = {"n_pos": curve.n_pos, "n_neg": curve.n_neg}
    for metric in METRICS.values():
        if metric.source == "result" and metric.compute is not None:
            result[metric.name] = float(metric.compute(inputs))
    for kind, op in OPERATING_POINTS.items():
        points = {
            key: getattr(curve, kind)(t).to_dict()
            for key, t in zip(keys[kind], targets[kind], strict=True)
        }
        if op.nested:
            result[kind] = points
        else:
            result.update({op.prefix + key: point for key, point in points.items()})
    result["diagnostics"] = score_diagnostics(s, y, curve=curve)
    return result


def flat_summary(result: Mapping[str, Any]) -> dict[str, float]:
    """Flatten :func:`evaluate_scores` output to ``{name: float}`` for ``history.json``.

    Keys, in order: the registered metrics computed from the scores (``auc``, ...), one
    ``tpr@fpr{x}`` per FPR target, one ``fpr@tpr{y}`` per TPR target, one ``tpr{n}`` per
    false-positive count (keys from :func:`train.metrics.metric_key`), then the registered
    diagnostics (``top_tie_size``, ``top_tie_n_neg``, ``frac_sigmoid1_bfloat16``,
    ``frac_sigmoid1_float32``, ``n_distinct``). Works on the dict as returned or after a JSON
    round trip.

    Parameters
    ----------
    result : mapping
        Output of :func:`evaluate_scores`.

    Returns
    -------
    dict of str to float
    """
    flat: dict[str, float] = {}
    for metric in METRICS.values():
        if metric.source == "result" and metric.name in result:
            flat[metric.name] = float(result[metric.name])
    for kind, op in OPERATING_POINTS.items():
        if op.nested:
            points = list(result.get(kind, {}).values())
        else:
            points = [v for k, v in result.items() if k.startswith(op.prefix)]
            points = [p for p in points if isinstance(p, Mapping) and p.get("kind") == kind]
        for point in points:
            flat[metric_key(kind, point["target"])] = float(point[op.value])
    diagnostics = result.get("diagnostics", {})
    for metric in METRICS.values():
        if metric.source == "diagnostics" and metric.name in diagnostics:
            flat[metric.name] = float(diagnostics[metric.name])
    return flat
