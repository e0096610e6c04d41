"""Realism probe (``train probe``): can a linear model tell two sets of lenses apart in feature space?

The trained model's pooled backbone features (:meth:`train.model.LensClassifier.features`: the
penultimate image representation, after the final norm, before the head and any metadata
fusion) are computed for the positives of a split, read straight from the shards through the
training collation and normalisation (:func:`train.stages.make_batches`, no augmentation). Two
labelled sets are then separated by an L2-regularised logistic regression (scikit-learn, with
standardised features) under stratified k-fold cross-validation; the out-of-fold decision values
give one AUC, with a 95% stratified-bootstrap interval, and the per-fold AUCs.

An AUC near 0.5 means the model's representation does not distinguish the two sets; a high AUC
means, for the default sets, that **injections are recognisably unlike real lenses** to the very
features the classifier uses, so its injection-measured completeness may not transfer.

Sets (first that applies):

* ``--field F --groups A B``: positives whose metadata field ``F`` (dotted, e.g.
  ``injection.source_model``) equals ``A`` vs ``B``;
* ``--against DIR``: the positives of this dataset vs those of another one (e.g. Sersic-source
  and clumpy-source builds of the same parents);
* default: ``kind: real`` vs ``kind: injected`` positives when the split holds real ones;
  otherwise the first of :data:`DEFAULT_FIELDS` with exactly two values among the positives.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.configio import ConfigError
from shards.manifest import Manifest
from shards.reader import IndexedShard
from train.distributed import resolve_device
from train.model import LensClassifier
from train.preprocess import PreprocessConfig
from train.stages import make_batches, to_torch

__all__ = ["DEFAULT_FIELDS", "field_value", "linear_probe", "positive_features", "run_probe"]

#: Metadata fields tried, in order, when no sets are given and there are no real positives.
DEFAULT_FIELDS: tuple[str, ...] = (
    "injection.source_model",
    "injection.source.model",
    "injection.model",
    "source_model",
)
_MISSING = object()


def field_value(meta: dict[str, Any], field: str) -> Any:
    """``meta["a"]["b"]`` for ``field == "a.b"``; a sentinel when absent."""
    node: Any = meta
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _positive_batches(
    root: Path, split: str, batch_size: int, preprocess: PreprocessConfig
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(torch batch, metadata dicts)`` of the positives of a split, in shard order."""
    stage = make_batches(preprocess, False, 0, 0, 0)
    pending: list[dict[str, Any]] = []
    for entry in Manifest.load(root).shards_for(split):
        for s in IndexedShard(root / entry.path).iter_samples():
            if int(s["label"]) != 1:
                continue
            pending.append(s)
            if len(pending) == batch_size:
                (batch,) = stage(iter([pending]))
                yield to_torch(batch), [p["meta"] for p in pending]
                pending = []
    if pending:
        (batch,) = stage(iter([pending]))
        yield to_torch(batch), [p["meta"] for p in pending]


@torch.no_grad()
def positive_features(
    model: LensClassifier,
    root: str | Path,
    split: str,
    preprocess: PreprocessConfig,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Pooled backbone features ``(n, d)`` float32 and the metadata of every positive of ``split``."""
    model.eval()
    feats: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    for batch, meta in _positive_batches(Path(root), split, batch_size, preprocess):
        feats.append(model.features(batch["image"].to(device)).cpu().numpy())
        metas += meta
    if not feats:
        return np.zeros((0, model.num_features), np.float32), []
    return np.concatenate(feats).astype(np.float32), metas


def linear_probe(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0, n_boot: int = 1000
) -> dict[str, Any]:
    """Cross-validated AUC of a logistic-regression probe separating ``y == 1`` from ``y == 0``.

    Parameters
    ----------
    x : ndarray, shape (n, d)
        Features.
    y : ndarray of {0, 1}, shape (n,)
        Set membership.
    folds : int
        Stratified folds (reduced to the smaller set's size if needed, at least 2).
    seed : int
        Seeds the fold split and the bootstrap.
    n_boot : int
        Stratified bootstrap resamples of the out-of-fold scores for the interval.

    Returns
    -------
    dict
        ``{"auc", "auc_interval_95", "fold_aucs", "folds", "n_boot"}``.

    Raises
    ------
    ValueError
        Fewer than 2 samples in either set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y).astype(int)
    n_min = int(min((y == 0).sum(), (y == 1).sum()))
    if n_min < 2:
        raise ValueError(f"each set needs >= 2 samples (got {(y == 0).sum()} and {(y == 1).sum()})")
    k = max(2, min(folds, n_min))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    oof = cross_val_predict(probe, x, y, cv=cv, method="decision_function")
    fold_aucs = [float(roc_auc_score(y[te], oof[te])) for _, te in cv.split(x, y)]
    auc = float(roc_auc_score(y, oof))
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        boot[i] = roc_auc_score(y[idx], oof[idx])
    lo, hi = (float(v) for v in np.quantile(boot, [0.025, 0.975])) if n_boot else (math.nan,) * 2
    return {
        "auc": auc,
        "auc_interval_95": [lo, hi],
        "fold_aucs": fold_aucs,
        "folds": k,
        "n_boot": n_boot,
    }


def _choose_sets(
    metas: Sequence[dict[str, Any]], field: str | None, groups: Sequence[str] | None
) -> tuple[str, tuple[str, str]]:
    if field is None:
        if any(m.get("kind") == "real" for m in metas):
            return "kind", ("injected", "real")
        for candidate in DEFAULT_FIELDS:
            values = {str(v) for m in metas if (v := field_value(m, candidate)) is not _MISSING}
            if len(values) == 2:
                return candidate, tuple(sorted(values))  # type: ignore[return-value]
        raise ConfigError(
            "field",
            "no real positives and no metadata field of "
            f"{', '.join(DEFAULT_FIELDS)} with two values: give --field F --groups A B or "
            "--against DATASET",
        )
    values = sorted({str(v) for m in metas if (v := field_value(m, field)) is not _MISSING})
    if groups is None:
        if len(values) != 2:
            raise ConfigError("groups", f"{field} takes values {values}; name two with --groups")
        return field, (values[0], values[1])
    return field, (str(groups[0]), str(groups[1]))


def run_probe(
    checkpoint: str | Path,
    shards_dir: str | Path,
    *,
    split: str = "test",
    field: str | None = None,
    groups: Sequence[str] | None = None,
    against: str | Path | None = None,
    device: str = "auto",
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Features of the positives of ``split``, two sets, and :func:`linear_probe` of them.

    Returns
    -------
    dict
        JSON-serialisable: the sets (field, values, counts), the split, the feature width, and
        the probe result (AUC, interval, per-fold AUCs).
    """
    from train.score_chunks import load_scoring_model

    dev = resolve_device(device)
    model, cfg, ckpt = load_scoring_model(checkpoint, dev)
    pre = cfg.data.preprocess
    x, metas = positive_features(model, shards_dir, split, pre, dev, batch_size)
    if against is not None:
        x_b, metas_b = positive_features(model, against, split, pre, dev, batch_size)
        names = (str(Path(shards_dir).name), str(Path(against).name))
        if names[0] == names[1]:
            names = ("a:" + names[0], "b:" + names[1])
        y = np.r_[np.zeros(len(x), int), np.ones(len(x_b), int)]
        x, field_name, sets = np.concatenate([x, x_b]), "dataset", names
    else:
        field_name, sets = _choose_sets(metas, field, groups)
        vals = [field_value(m, field_name) for m in metas]
        label = np.array([{sets[0]: 0, sets[1]: 1}.get(str(v), -1) for v in vals])
        keep = label >= 0
        x, y = x[keep], label[keep]
    n = {sets[0]: int((y == 0).sum()), sets[1]: int((y == 1).sum())}
    try:
        result = linear_probe(x, y, folds=folds, seed=seed, n_boot=n_boot)
    except ValueError as exc:
        raise ConfigError("groups", f"{field_name} {list(sets)}: {exc}") from None
    return {
        "checkpoint": {"path": str(checkpoint), "epoch": ckpt["epoch"]},
        "shards": str(shards_dir),
        "against": None if against is None else str(against),
        "split": split,
        "field": field_name,
        "sets": list(sets),
        "n": n,
        "n_features": int(x.shape[1]),
        "features": "pooled backbone features after the final norm (LensClassifier.features)",
        "probe": "StandardScaler + LogisticRegression(C=1), stratified k-fold out-of-fold AUC",
        **result,
    }
