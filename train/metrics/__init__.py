"""Tie-aware ranking metrics for lens finding, computed on logits (one package for all users).

Pass **logits**, not sigmoid probabilities: a float32 sigmoid is exactly 1.0 for logits above
~16.6 and a bfloat16 one from about 6.23, so ranked as probabilities a well-trained model's
confident samples collapse into one tied block (see ``docs/gen2-diagnosis.md``).

One module per job:

- :mod:`~train.metrics.validation`: :func:`validate_scores` (input checks);
- :mod:`~train.metrics.intervals`: :func:`clopper_pearson`, :func:`fp_budget`;
- :mod:`~train.metrics.roc`: :func:`roc` -> :class:`RocCurve`, :class:`OperatingPoint`,
  :func:`tpr_at_fpr`, :func:`fpr_at_tpr`, :func:`tpr_at_n_fp`, :func:`roc_auc`;
- :mod:`~train.metrics.diagnostics`: :func:`score_diagnostics`, :func:`sigmoid_saturation_logit`;
- :mod:`~train.metrics.registry`: the metric table (:class:`Metric`, :func:`register_metric`,
  :func:`get_metric`, the key formatter :func:`metric_key`);
- :mod:`~train.metrics.summary`: :func:`evaluate_scores` (JSON-serialisable) and
  :func:`flat_summary` (flat floats for ``history.json``).
"""

from train.metrics.diagnostics import (
    LOGIT_PERCENTILES,
    score_diagnostics,
    sigmoid_saturation_logit,
)
from train.metrics.intervals import clopper_pearson, fp_budget
from train.metrics.registry import (
    DEFAULT_FPR_TARGETS,
    DEFAULT_N_FP_TARGETS,
    DEFAULT_TPR_TARGETS,
    HEADLINE_METRIC,
    METRICS,
    OPERATING_POINTS,
    PANELS,
    Metric,
    MetricInputs,
    find_metric,
    fpr_label,
    get_metric,
    metric_key,
    monitorable_metrics,
    register_metric,
    summary_names,
    target_label,
    tpr_label,
    unregister_metric,
)
from train.metrics.roc import (
    LOW_COUNT_FP,
    OperatingPoint,
    RocCurve,
    fpr_at_tpr,
    roc,
    roc_auc,
    tpr_at_fpr,
    tpr_at_n_fp,
)
from train.metrics.summary import evaluate_scores, flat_summary
from train.metrics.validation import validate_scores

__all__ = [
    "DEFAULT_FPR_TARGETS",
    "DEFAULT_N_FP_TARGETS",
    "DEFAULT_TPR_TARGETS",
    "HEADLINE_METRIC",
    "LOGIT_PERCENTILES",
    "LOW_COUNT_FP",
    "METRICS",
    "OPERATING_POINTS",
    "PANELS",
    "Metric",
    "MetricInputs",
    "OperatingPoint",
    "RocCurve",
    "clopper_pearson",
    "evaluate_scores",
    "find_metric",
    "flat_summary",
    "fp_budget",
    "fpr_at_tpr",
    "fpr_label",
    "get_metric",
    "metric_key",
    "monitorable_metrics",
    "register_metric",
    "roc",
    "roc_auc",
    "score_diagnostics",
    "sigmoid_saturation_logit",
    "summary_names",
    "target_label",
    "tpr_at_fpr",
    "tpr_at_n_fp",
    "tpr_label",
    "unregister_metric",
    "validate_scores",
]
