"""Metrics of real and injected positives separately (``metrics.json`` -> ``by_kind``).

A hybrid dataset (``builder make-shards --positives``) marks each positive ``kind: real`` (a
known lens) or ``kind: injected``. A model can rank injections well and real lenses badly (or
the reverse), so the evaluation reports, per kind, the same metrics
(:func:`train.metrics.evaluate_scores`) of that kind's positives against all the controls of
the split. Positives without a ``kind`` (datasets built before real positives existed) count as
injected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shards.manifest import Manifest
from shards.reader import IndexedShard
from train.metrics import evaluate_scores

DEFAULT_KIND = "injected"


def positive_kinds(shards_dir: str | Path, split: str) -> dict[str, str]:
    """Sample key -> ``kind`` of every positive of ``split`` (read from the shards' metadata)."""
    out: dict[str, str] = {}
    for entry in Manifest.load(shards_dir).shards_for(split):
        # The eval loader has just checked every member's CRC; here only the metadata is used.
        shard = IndexedShard(Path(shards_dir) / entry.path, check_crc=False)
        for s in shard.iter_samples():
            if s["label"] == 1:
                out[s["__key__"]] = str(s["meta"].get("kind") or DEFAULT_KIND)
    return out


def metrics_by_kind(
    keys: list[str], labels: np.ndarray, logits: np.ndarray, kinds: dict[str, str]
) -> dict[str, Any]:
    """Per positive kind: metrics of its positives against every control.

    Parameters
    ----------
    keys, labels, logits
        The gathered predictions of a split (one entry per sample).
    kinds : dict
        Key -> kind of each positive (:func:`positive_kinds`).

    Returns
    -------
    dict
        ``{kind: metrics}`` (``{kind: {"n_pos": n, "error": why}}`` when the metrics cannot be
        computed, e.g. no controls); empty unless a ``real`` positive is present.
    """
    labels = np.asarray(labels)
    logits = np.asarray(logits)
    pos_kind = np.array(
        [
            kinds.get(k, DEFAULT_KIND) if lab == 1 else ""
            for k, lab in zip(keys, labels, strict=True)
        ]
    )
    present = sorted(set(pos_kind[labels == 1].tolist()))
    if "real" not in present:
        return {}
    out: dict[str, Any] = {}
    for kind in present:
        mask = (labels == 0) | (pos_kind == kind)
        try:
            out[kind] = evaluate_scores(logits[mask], labels[mask])
        except ValueError as exc:
            out[kind] = {"n_pos": int((pos_kind == kind).sum()), "error": str(exc)}
    return out
