"""``builder audit DIR``: can simple models tell positives from controls without the arc?

For every split (and all splits pooled) the audit reads the samples, computes the feature sets
of :mod:`builder.audit_features` and measures, by stratified 5-fold cross-validation grouped by
galaxy, the ROC AUC of a logistic regression and of a gradient-boosted tree classifier
(scikit-learn) separating positives (label 1) from controls (label 0):

* on the **host-only** stamps (stored image minus the stored noiseless arc, so the build needs
  ``--with-arcs``) and on the **catalog covariates**: these are *gated*. A model that separates
  the classes here has found a shortcut (hosts brighter, better seeing, no companions ...) that
  a CNN will find too. The gate fails when the larger of the two AUCs exceeds ``max_auc``
  (default 0.55) and its one-sided lower confidence bound (Hanley & McNeil 1982 standard error,
  ``confidence`` 0.95) does too, so that a few hundred samples do not fail on noise while a
  real shortcut does;
* on the stored stamps **with the arc**: reported as information (how visible the arcs are to a
  weak model), never gated.

Also reported, as information: the AUC of the single hand-made :func:`blue_excess` feature,
host-only and with the arc. Results go to ``DIR/audit.json`` and ``DIR/audit.md``; the command
exits 1 when a gate fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from builder.audit_features import CATALOG_SET, FEATURE_SETS, blue_excess, catalog_features
from builder.errors import BuilderError
from common.atomic import atomic_write_text
from shards.manifest import Manifest
from shards.reader import iter_tar_samples
from shards.schema import SPLITS

MODELS = ("logistic", "gbt")
AUDIT_JSON, AUDIT_MD = "audit.json", "audit.md"


@dataclass
class AuditConfig:
    """Knobs of ``builder audit``.

    Attributes
    ----------
    max_auc : float
        Gate: host-only and catalog AUCs must not exceed this (default 0.55).
    confidence : float
        One-sided confidence of the gate's lower bound (0 gates on the point estimate).
    max_per_split : int
        At most this many samples per split are read (the first ones, in manifest order).
    min_per_class : int
        A split with fewer positives or controls is reported as too small and not gated.
    folds : int
        Cross-validation folds.
    seed : int
        Seed of the fold assignment and of the models.
    threads : int
        BLAS/OpenMP threads of the models (the tree models use every core otherwise).
    """

    max_auc: float = 0.55
    confidence: float = 0.95
    max_per_split: int = 2000
    min_per_class: int = 25
    folds: int = 5
    seed: int = 0
    threads: int = 1


@dataclass
class _Split:
    labels: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)
    host: list[np.ndarray] = field(default_factory=list)
    with_arc: list[np.ndarray] = field(default_factory=list)


class AuditError(BuilderError):
    """The dataset cannot be audited (no manifest, no arcs for the host-only sets ...)."""


def _samples(root: Path, manifest: Manifest, split: str, limit: int) -> Iterator[dict[str, Any]]:
    n = 0
    for entry in manifest.shards_for(split):
        for s in iter_tar_samples(str(root / entry.path)):
            if n >= limit:
                return
            n += 1
            yield s


def load_split(root: Path, manifest: Manifest, split: str, limit: int) -> _Split:
    """Labels, groups, metadata, host-only and with-arc stamps of up to ``limit`` samples."""
    out = _Split()
    for s in _samples(root, manifest, split, limit):
        image = np.asarray(s["image"], dtype=np.float32)
        label = int(s["label"])
        if label == 1:
            arc = s.get("arc")
            if arc is None:
                raise AuditError(
                    f"{root}: positive {s['meta'].get('galaxy_id')} has no stored arc; the "
                    "host-only audit needs a build made with --with-arcs (output.with_arcs)"
                )
            host = image - np.asarray(arc, dtype=np.float32)
        else:
            host = image
        out.labels.append(label)
        out.groups.append(str(s["meta"].get("galaxy_id", len(out.groups))))
        out.metas.append(s["meta"])
        out.host.append(host)
        out.with_arc.append(image)
    return out


def auc_interval(auc: float, n_pos: int, n_neg: int, confidence: float) -> float:
    """One-sided lower confidence bound of an AUC (Hanley & McNeil 1982 standard error)."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / max(
        n_pos * n_neg, 1
    )
    z = float(norm.ppf(confidence)) if confidence > 0 else 0.0
    return float(auc - z * math.sqrt(max(var, 0.0)))


def _model(name: str, seed: int):
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, random_state=seed)


def cv_auc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: AuditConfig) -> dict[str, float]:
    """Out-of-fold ROC AUC of each model in :data:`MODELS`."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), posinf=0.0, neginf=0.0)
    folds = StratifiedGroupKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    out = {}
    for name in MODELS:
        scores = cross_val_predict(
            _model(name, cfg.seed), x, y, groups=groups, cv=folds, method="predict_proba"
        )[:, 1]
        out[name] = round(float(roc_auc_score(y, scores)), 4)
    return out


def _entry(aucs: dict[str, float], n_pos: int, n_neg: int, cfg: AuditConfig) -> dict[str, Any]:
    best = max(aucs.values())
    return {
        **aucs,
        "max": best,
        "lower_bound": round(auc_interval(best, n_pos, n_neg, cfg.confidence), 4),
    }


def audit_split(data: _Split, cfg: AuditConfig) -> dict[str, Any]:
    """The report of one split (feature set -> host-only / with-arc AUCs, gates)."""
    y = np.asarray(data.labels)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    res: dict[str, Any] = {"n_pos": n_pos, "n_neg": n_neg}
    if min(n_pos, n_neg) < cfg.min_per_class:
        res["skipped"] = f"fewer than {cfg.min_per_class} samples of a class"
        return res
    groups = np.asarray(data.groups)
    host, arc = np.stack(data.host), np.stack(data.with_arc)
    gated: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    cat = _entry(cv_auc(catalog_features(data.metas), y, groups, cfg), n_pos, n_neg, cfg)
    gated[CATALOG_SET.name] = cat
    for name, fs in FEATURE_SETS.items():
        gated[name] = _entry(cv_auc(fs.fn(host), y, groups, cfg), n_pos, n_neg, cfg)
        info[name] = _entry(cv_auc(fs.fn(arc), y, groups, cfg), n_pos, n_neg, cfg)
    res["host_only"] = gated
    res["with_arc"] = info
    res["blue_excess_auc"] = {
        "host_only": round(float(roc_auc_score(y, blue_excess(host))), 4),
        "with_arc": round(float(roc_auc_score(y, blue_excess(arc))), 4),
    }
    failed = [
        n for n, e in gated.items() if e["max"] > cfg.max_auc and e["lower_bound"] > cfg.max_auc
    ]
    res["gates_failed"] = failed
    return res


def run_audit(root: str | Path, cfg: AuditConfig | None = None) -> dict[str, Any]:
    """Audit the dataset at ``root``; write ``audit.json`` and ``audit.md`` there.

    Returns
    -------
    dict
        The report; ``report["ok"]`` is False when a gate failed.
    """
    cfg = cfg or AuditConfig()
    with threadpool_limits(limits=cfg.threads):
        return _run_audit(Path(root), cfg)


def _run_audit(root: Path, cfg: AuditConfig) -> dict[str, Any]:
    if not (root / "manifest.json").is_file():
        raise AuditError(f"{root}: no manifest.json (not a built dataset)")
    manifest = Manifest.load(root)
    splits = {s: load_split(root, manifest, s, cfg.max_per_split) for s in SPLITS}
    pooled = _Split()
    for d in splits.values():
        for f in ("labels", "groups", "metas", "host", "with_arc"):
            getattr(pooled, f).extend(getattr(d, f))
    per = {s: audit_split(d, cfg) for s, d in splits.items()}
    filled = [s for s, d in splits.items() if d.labels]
    # one non-empty split: "all" is that split (not audited twice)
    per["all"] = per[filled[0]] if len(filled) == 1 else audit_split(pooled, cfg)
    failed = [
        f"{s}.{n}"
        for s, r in per.items()
        if s != "all" or len(filled) != 1
        for n in r.get("gates_failed", [])
    ]
    report = {
        "dataset": str(root),
        "config": cfg.__dict__,
        "feature_sets": {
            CATALOG_SET.name: CATALOG_SET.description,
            **{n: f.description for n, f in FEATURE_SETS.items()},
        },
        "splits": per,
        "gates_failed": failed,
        "ok": not failed and "skipped" not in per["all"],
    }
    atomic_write_text(root / AUDIT_JSON, json.dumps(report, indent=1, sort_keys=True))
    atomic_write_text(root / AUDIT_MD, format_markdown(report))
    return report


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    cfg = report["config"]
    lines = [
        f"# Shortcut audit of `{report['dataset']}`",
        "",
        f"Gate: host-only and catalog AUC <= {cfg['max_auc']} (failing only when the "
        f"{cfg['confidence']:.0%} lower bound exceeds it too). Cross-validated AUCs "
        f"({cfg['folds']} folds grouped by galaxy; logistic / gradient-boosted trees).",
        "",
        f"**Result: {'PASS' if report['ok'] else 'FAIL'}**"
        + (f" (failed: {', '.join(report['gates_failed'])})" if report["gates_failed"] else ""),
        "",
    ]
    for split, r in report["splits"].items():
        lines += [f"## {split} ({r['n_pos']} positives, {r['n_neg']} controls)", ""]
        if "skipped" in r:
            lines += [f"Skipped: {r['skipped']}.", ""]
            continue
        lines += [
            "| feature set | host-only logistic | host-only GBT | lower bound | gate "
            "| with arc (max) |",
            "|---|---|---|---|---|---|",
        ]
        for name, e in r["host_only"].items():
            gate = "FAIL" if name in r["gates_failed"] else "pass"
            arc = r["with_arc"].get(name, {}).get("max", "-")
            lines.append(
                f"| {name} | {e['logistic']:.3f} | {e['gbt']:.3f} | {e['lower_bound']:.3f} "
                f"| {gate} | {arc} |"
            )
        be = r["blue_excess_auc"]
        lines += [
            "",
            f"Blue-excess single feature AUC: host-only {be['host_only']:.3f}, "
            f"with arc {be['with_arc']:.3f}.",
            "",
        ]
    return "\n".join(lines)
