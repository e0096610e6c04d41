"""The metric table: one entry per number in ``history.json``, read by every consumer.

Each :class:`Metric` says which way is better (``direction``, used by early stopping), how it is
called in the report (``label``), where it is drawn (``panel`` of ``history.png``) and how it is
printed (``fmt``). History records (:func:`train.metrics.flat_summary`), early stopping
(:mod:`train.early_stopping`), the history plot (:mod:`train.plots`) and the report
(:mod:`train.report`) all look metrics up here; none of them types out a metric name.

Two kinds of entries:

- **scalar metrics** in :data:`METRICS` (``auc``, the validation ``loss``, score diagnostics, and
  anything registered with :func:`register_metric`);
- **operating-point families** in :data:`OPERATING_POINTS` (``tpr@fpr{x}``, ``fpr@tpr{y}``,
  ``tpr{n}``): one entry per kind, whose keys are made by :func:`metric_key` and parsed back by
  :func:`get_metric`. Every key of an operating point, flat or nested, comes from the one
  formatter of its kind (:func:`target_label`), so two targets can only share a key if they are
  equal to 6 significant digits, and :func:`train.metrics.evaluate_scores` refuses that.

Adding a metric computed from the scores is one call::

    register_metric(Metric("mean_gap", "mean logit gap", direction="max", panel="TPR / AUC",
                           compute=lambda x: x.scores[x.labels].mean() - x.scores[~x.labels].mean()))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from train.metrics.roc import Kind, RocCurve

__all__ = [
    "DEFAULT_FPR_TARGETS",
    "DEFAULT_N_FP_TARGETS",
    "DEFAULT_TPR_TARGETS",
    "HEADLINE_METRIC",
    "METRICS",
    "OPERATING_POINTS",
    "PANELS",
    "Metric",
    "MetricInputs",
    "OperatingPointKind",
    "find_metric",
    "fpr_label",
    "get_metric",
    "metric_key",
    "monitorable_metrics",
    "register_metric",
    "summary_names",
    "target_label",
    "tpr_label",
    "unregister_metric",
]

Direction = Literal["max", "min"]
Source = Literal["result", "diagnostics", "validation", "training"]

DEFAULT_FPR_TARGETS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
DEFAULT_TPR_TARGETS: tuple[float, ...] = (0.5, 0.7, 0.85)
DEFAULT_N_FP_TARGETS: tuple[int, ...] = (0, 10)

#: Panels of ``history.png``, in drawing order, and whether each may use a log y axis.
PANELS: dict[str, bool] = {
    "loss": True,
    "learning rate": True,
    "TPR / AUC": False,
    "FPR at TPR": True,
}


@dataclass(frozen=True)
class MetricInputs:
    """What a registered metric is computed from (all from one validated score array).

    Attributes
    ----------
    curve : RocCurve
        The tie-aware ROC of the scores.
    scores : numpy.ndarray of float64
        Validated finite scores (logits).
    labels : numpy.ndarray of bool
        True for lenses.
    """

    curve: RocCurve
    scores: NDArray[np.float64]
    labels: NDArray[np.bool_]


@dataclass(frozen=True)
class Metric:
    """One named number of the history and the reports.

    Attributes
    ----------
    name : str
        Key in ``history.json`` (flat summary) and the early-stopping ``monitor`` value.
    label : str
        Human-readable name for reports and legends.
    direction : {"max", "min"} or None
        Which way is better; ``None`` for diagnostics, which cannot be monitored.
    panel : str or None
        Panel of ``history.png`` (a key of :data:`PANELS`); ``None``: not plotted.
    fmt : str
        Format spec of the value in reports and logs (``format(value, fmt)``).
    source : {"result", "diagnostics", "validation", "training"}
        Where the value comes from: computed by ``compute`` into the
        :func:`~train.metrics.evaluate_scores` result, read from its ``diagnostics``, computed by
        the trainer's validation pass (``loss``) or by its training pass (``train_loss``, ``lr``).
    compute : callable, optional
        ``MetricInputs -> float``; required for ``source="result"``.
    """

    name: str
    label: str
    direction: Direction | None = None
    panel: str | None = None
    fmt: str = ".4f"
    source: Source = "result"
    compute: Callable[[MetricInputs], float] | None = None

    def format(self, value: float) -> str:
        """``value`` printed with :attr:`fmt`."""
        return format(value, self.fmt)

    def check(self) -> None:
        """Raise ``ValueError`` on an inconsistent entry."""
        if not self.name or any(c.isspace() or c == "/" for c in self.name):
            raise ValueError(f"metric name {self.name!r} must be non-empty, without blanks or '/'")
        if self.direction not in ("max", "min", None):
            raise ValueError(f"{self.name}: direction must be 'max', 'min' or None")
        if self.panel is not None and self.panel not in PANELS:
            raise ValueError(f"{self.name}: panel must be one of {list(PANELS)} or None")
        if (self.source == "result") != (self.compute is not None):
            raise ValueError(
                f"{self.name}: a compute function is needed exactly for source 'result'"
            )
        format(0.5, self.fmt)  # raises ValueError on a bad spec


# ------------------------------------------------------------------- operating points
def fpr_label(target: float) -> str:
    """Short label of an FPR target: ``1e-4`` for 1e-4, ``2.5e-3`` for 0.0025."""
    mantissa, exponent = f"{target:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def tpr_label(target: float) -> str:
    """Short label of a TPR target: ``0.50`` for 0.5, ``0.925`` for 0.925."""
    text = f"{target:.6f}".rstrip("0")
    return text if len(text.split(".")[1]) >= 2 else f"{target:.2f}"


def _count_label(target: float) -> str:
    if int(target) != target or target < 0:
        raise ValueError(f"a false-positive count must be a non-negative integer, got {target}")
    return str(int(target))


@dataclass(frozen=True)
class OperatingPointKind:
    """A family of operating-point metrics, one per target.

    Attributes
    ----------
    kind : str
        :attr:`train.metrics.OperatingPoint.kind`.
    prefix : str
        Flat key = prefix + target label (``tpr@fpr`` + ``1e-3``).
    label : callable
        The one formatter of targets of this kind (nested and flat keys both use it).
    parse : callable
        Inverse of ``label`` (``str -> float``).
    value : {"tpr", "fpr"}
        The :class:`~train.metrics.OperatingPoint` field the flat key holds.
    direction : {"max", "min"}
        Which way the value is better.
    panel : str
        Panel of ``history.png``.
    title : str
        Report label template with ``{}`` for the target label.
    defaults : tuple
        Targets computed by default (validation and ``train eval``).
    nested : bool
        Points stored under ``result[kind][label]`` (True) or at ``result[flat key]``.
    """

    kind: Kind
    prefix: str
    label: Callable[[float], str]
    parse: Callable[[str], float]
    value: Literal["tpr", "fpr"]
    direction: Direction
    panel: str
    title: str
    defaults: tuple[float, ...]
    nested: bool = True


OPERATING_POINTS: dict[str, OperatingPointKind] = {
    "tpr_at_fpr": OperatingPointKind(
        "tpr_at_fpr", "tpr@fpr", fpr_label, float, "tpr", "max", "TPR / AUC",
        "TPR at FPR {}", DEFAULT_FPR_TARGETS,
    ),
    "fpr_at_tpr": OperatingPointKind(
        "fpr_at_tpr", "fpr@tpr", tpr_label, float, "fpr", "min", "FPR at TPR",
        "FPR at TPR {}", DEFAULT_TPR_TARGETS,
    ),
    "tpr_at_n_fp": OperatingPointKind(
        "tpr_at_n_fp", "tpr", _count_label, int, "tpr", "max", "TPR / AUC",
        "TPR{}", DEFAULT_N_FP_TARGETS, nested=False,
    ),
}  # fmt: skip


def target_label(kind: str, target: float) -> str:
    """The label of ``target`` for operating points of ``kind`` (nested key of the result)."""
    return OPERATING_POINTS[kind].label(target)


def metric_key(kind: str, target: float) -> str:
    """Flat key of an operating point: ``metric_key("tpr_at_fpr", 1e-3) == "tpr@fpr1e-3"``."""
    return OPERATING_POINTS[kind].prefix + target_label(kind, target)


def parse_operating_point(name: str) -> tuple[OperatingPointKind, float] | None:
    """``(kind, target)`` of an operating-point key such as ``tpr@fpr1e-3``; None otherwise."""
    # Longest prefix first: "tpr@fpr1e-3" must not be read as "tpr" + "@fpr1e-3".
    for op in sorted(OPERATING_POINTS.values(), key=lambda o: -len(o.prefix)):
        if name.startswith(op.prefix):
            text = name[len(op.prefix) :]
            try:
                target = op.parse(text)
                if op.label(target) == text:
                    return op, target
            except ValueError:
                pass
            return None
    return None


# ------------------------------------------------------------------------- the table
METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric, *, replace_existing: bool = False) -> Metric:
    """Add ``metric`` to the table (checked); return it.

    Raises
    ------
    ValueError
        Inconsistent entry, a name already registered (unless ``replace_existing``) or a name
        that parses as an operating-point key.
    """
    metric.check()
    if metric.name in METRICS and not replace_existing:
        raise ValueError(f"metric {metric.name!r} is already registered")
    if parse_operating_point(metric.name) is not None:
        raise ValueError(f"metric name {metric.name!r} is an operating-point key")
    METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a registered metric (e.g. one a test added)."""
    del METRICS[name]


def find_metric(name: str) -> Metric | None:
    """The entry of ``name`` (a registered metric or an operating-point key), else ``None``."""
    if name in METRICS:
        return METRICS[name]
    parsed = parse_operating_point(name)
    if parsed is None:
        return None
    op, target = parsed
    return Metric(
        name=name,
        label=op.title.format(op.label(target)),
        direction=op.direction,
        panel=op.panel,
        fmt=".3f" if op.value == "tpr" else ".2e",
        source="result",
        compute=lambda x, op=op, target=target: getattr(
            getattr(x.curve, op.kind)(target), op.value
        ),
    )


def get_metric(name: str) -> Metric:
    """Like :func:`find_metric` but raises ``KeyError`` naming the known metrics."""
    metric = find_metric(name)
    if metric is None:
        raise KeyError(f"unknown metric {name!r} (known: {', '.join(monitorable_metrics())})")
    return metric


def summary_names() -> list[str]:
    """Keys of :func:`~train.metrics.flat_summary` for the default targets, in order."""
    names = [m.name for m in METRICS.values() if m.source == "result"]
    for op in OPERATING_POINTS.values():
        names += [metric_key(op.kind, t) for t in op.defaults]
    names += [m.name for m in METRICS.values() if m.source == "diagnostics"]
    return names


def monitorable_metrics() -> dict[str, Direction]:
    """``{name: direction}`` of every validation quantity early stopping can monitor."""
    names = summary_names() + [m.name for m in METRICS.values() if m.source == "validation"]
    out: dict[str, Direction] = {}
    for name in names:
        metric = find_metric(name)
        if metric is not None and metric.direction is not None:
            out[name] = metric.direction
    return out


def _diagnostic(name: str, label: str, fmt: str = ".0f") -> Metric:
    return Metric(name, label, None, None, fmt, "diagnostics")


for _metric in (
    Metric("auc", "AUC", "max", "TPR / AUC", ".4f", "result", lambda x: x.curve.auc()),
    Metric("loss", "validation loss", "min", "loss", ".4f", "validation"),
    Metric("train_loss", "train loss", None, "loss", ".4f", "training"),
    Metric("lr", "learning rate", None, "learning rate", ".3g", "training"),
    _diagnostic("top_tie_size", "samples in the top tie group"),
    _diagnostic("top_tie_n_neg", "controls in the top tie group"),
    _diagnostic("frac_sigmoid1_bfloat16", "fraction with bf16 sigmoid = 1", ".3f"),
    _diagnostic("frac_sigmoid1_float32", "fraction with fp32 sigmoid = 1", ".3f"),
    _diagnostic("n_distinct", "distinct scores"),
):
    register_metric(_metric)

#: The metric quoted in one-line logs and the report's training table.
HEADLINE_METRIC = metric_key("tpr_at_fpr", 1e-3)
