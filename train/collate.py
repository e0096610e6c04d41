"""Collation: decoded samples -> one numpy batch (pixels stacked, metadata parsed once per batch).

Only :func:`collate` and :func:`batch_metadata` know the sample-dict layout of
:class:`shards.reader.IndexedShard` (``image``, ``label``, ``meta``/``meta_json``, ``__key__``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from shards.reader import META_RAW, ShardFormatError, decode_member
from shards.schema import META_SUFFIX, SAFE_MODEL_METADATA
from train.preprocess import stack_dihedral

__all__ = ["Batch", "batch_metadata", "collate", "sample_weights"]

Batch = dict[str, Any]


def collate(samples: Sequence[dict[str, Any]], symmetries: np.ndarray | None = None) -> Batch:
    """Stack decoded samples into a numpy batch (raw pixels, not yet normalised).

    Parameters
    ----------
    samples : sequence of dict
        Decoded samples (:class:`shards.reader.IndexedShard` dicts).
    symmetries : np.ndarray, optional
        Dihedral index per sample, applied while stacking (see
        :func:`train.preprocess.stack_dihedral`); ``None`` keeps the stamps as they are.

    Returns
    -------
    dict
        ``image`` float32 (B, 3, 64, 64) nanomaggies, ``label`` float32 (B,), ``meta`` float32
        (B, 6) raw catalog values (:data:`shards.schema.SAFE_MODEL_METADATA`), ``weight``
        float32 (B,) loss weights (metadata ``weight``, set by the builder for graded real
        positives; 1 when absent), ``key`` and ``galaxy_id`` lists of str. The metadata
        ``weight``, ``kind`` and ``grade`` never reach the model (they are label-leaking fields,
        :func:`shards.schema.is_label_leaking`).
    """
    metas = batch_metadata(samples)
    try:
        catalog = np.array([[m[f] for f in SAFE_MODEL_METADATA] for m in metas], np.float32)
        galaxy_ids = [str(m["galaxy_id"]) for m in metas]
    except (KeyError, TypeError, ValueError):
        for s, m in zip(samples, metas, strict=True):  # find the culprit, name its member
            try:
                np.array([m[f] for f in SAFE_MODEL_METADATA], np.float32), m["galaxy_id"]
            except (KeyError, TypeError, ValueError) as exc:
                raise ShardFormatError(
                    f"{s['__url__']}: {s['__key__']}.json: missing or invalid catalog field "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        raise
    images = [s["image"] for s in samples]
    stacked = np.stack(images) if symmetries is None else stack_dihedral(images, symmetries)
    return {
        "image": stacked.astype(np.float32, copy=False),
        "label": np.array([s["label"] for s in samples], dtype=np.float32),
        "meta": catalog,
        "weight": sample_weights(metas, samples),
        "key": [s["__key__"] for s in samples],
        "galaxy_id": galaxy_ids,
    }


def sample_weights(
    metas: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]]
) -> np.ndarray:
    """Loss weight of each sample: metadata ``weight`` (finite, > 0), else 1.

    Raises
    ------
    ShardFormatError
        A ``weight`` that is not a finite number > 0 (names the shard and sample).
    """
    out = np.ones(len(metas), dtype=np.float32)
    for i, m in enumerate(metas):
        w = m.get("weight")
        if w is None:
            continue
        ok = isinstance(w, int | float) and not isinstance(w, bool) and np.isfinite(w) and w > 0
        if not ok:
            s = samples[i]
            raise ShardFormatError(
                f"{s.get('__url__', '?')}: {s.get('__key__', '?')}.json: weight must be a finite "
                f"number > 0 (got {w!r})"
            )
        out[i] = w
    return out


def batch_metadata(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metadata dicts of a batch: decoded ``meta``, or raw ``meta_json`` parsed in one call.

    Joining the members into one JSON array halves the parsing cost per sample; if that fails
    (or a member is not one object), each member goes through the reader's checked decoder so
    the error names the shard and member.
    """
    if all("meta" in s for s in samples):
        return [s["meta"] for s in samples]
    blobs = [s[META_RAW] for s in samples]
    try:
        metas = json.loads(b"[" + b",".join(blobs) + b"]")
        if len(metas) == len(blobs) and all(isinstance(m, dict) for m in metas):
            return metas
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    return [
        decode_member(META_SUFFIX, s[META_RAW], f"{s['__url__']}: {s['__key__']}.json")
        for s in samples
    ]
