"""What the breakdowns of ``train eval`` read: per-sample metadata columns and operating points.

:data:`SAMPLE_COLUMNS` is the table of the metadata values that ``scores.parquet`` carries as
typed columns next to each logit (the injection's Einstein radius and unlensed source
magnitude, the arc S/N, the seeing, the visibility flag, the parent's family, the positive's
kind) and that the per-family FPR (:mod:`train.families`) and the selection function
(:mod:`train.selection`) are computed from. A value the sample does not record is null (NaN for
floats), never a default. :func:`read_split_columns` reads them once from a split's shards;
:func:`eval_operating_points` picks the logit thresholds the breakdowns are evaluated at;
:func:`load_raw_samples` reads the raw stamps of the cutout grids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from shards.manifest import Manifest
from shards.reader import IndexedShard
from train.errors import TrainingError
from train.thresholds import operating_thresholds

__all__ = [
    "DEFAULT_KIND",
    "DEFAULT_POINTS",
    "SAMPLE_COLUMNS",
    "SampleColumn",
    "align_columns",
    "as_float",
    "column_arrays",
    "eval_operating_points",
    "load_raw_samples",
    "read_split_columns",
    "typed_array",
]

DEFAULT_KIND = "injected"
"""Kind of a positive that records none (as :data:`train.by_kind.DEFAULT_KIND`)."""

DEFAULT_POINTS: tuple[str, ...] = ("fpr1e-4", "fpr1e-3", "nfp0", "nfp10")
"""Operating points (:func:`train.thresholds.threshold_name`) of the breakdowns: the
thresholds of ``tpr@fpr1e-4``, ``tpr@fpr1e-3``, ``tpr0`` and ``tpr10``."""


def _injection(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda meta: (meta.get("injection") or {}).get(key)


def _top(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda meta: meta.get(key)


def _kind(meta: Mapping[str, Any]) -> str | None:
    return str(meta.get("kind") or DEFAULT_KIND) if meta.get("label") == 1 else None


@dataclass(frozen=True)
class SampleColumn:
    """One typed column of ``scores.parquet``.

    Attributes
    ----------
    name : str
        Column name (physical unit in the name).
    type : pyarrow.DataType
        ``float64``, ``bool`` or ``string``.
    get : callable
        ``get(meta) -> value or None`` from a shard sample's metadata.
    description : str
        One line for docs.
    """

    name: str
    type: pa.DataType
    get: Callable[[Mapping[str, Any]], Any]
    description: str


SAMPLE_COLUMNS: dict[str, SampleColumn] = {
    c.name: c
    for c in (
        SampleColumn(
            "theta_e_arcsec", pa.float64(), _injection("theta_e_arcsec"), "Einstein radius"
        ),
        SampleColumn(
            "source_mag_r", pa.float64(), _injection("source_mag_r"), "unlensed source r (AB)"
        ),
        SampleColumn(
            "vis_snr", pa.float64(), _injection("vis_snr"), "arc S/N over pixels above 1 sigma"
        ),
        SampleColumn("arc_snr", pa.float64(), _injection("arc_snr"), "matched-filter arc S/N"),
        SampleColumn("psfsize_r", pa.float64(), _top("psfsize_r"), "r PSF FWHM, arcsec"),
        SampleColumn("visible", pa.bool_(), _injection("visible"), "visibility criteria met"),
        SampleColumn("family", pa.string(), _top("family"), "hard-negative family of the parent"),
        SampleColumn("kind", pa.string(), _kind, "real / injected (positives only)"),
    )
}
"""Column name -> :class:`SampleColumn`; a new column is one entry here."""


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_floating(kind):
        out = float(value)
        return out if math.isfinite(out) else None
    if pa.types.is_boolean(kind):
        if isinstance(value, str):  # a catalogue column read as text
            low = value.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(f"not a boolean: {value!r}")
            return low in ("true", "1")
        return bool(value)
    return str(value)


def typed_array(name: str, values: Sequence[Any]) -> pa.Array:
    """``values`` of column ``name`` as its :data:`SAMPLE_COLUMNS` type (nulls kept).

    Raises
    ------
    ValueError
        A value that cannot be read as the column's type; the message names the column.
    """
    kind = SAMPLE_COLUMNS[name].type
    try:
        return pa.array([_coerce(v, kind) for v in values], kind)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"column {name!r}: {exc}") from None


def read_split_columns(shards_dir: str | Path, split: str) -> dict[str, tuple]:
    """Sample key -> its values of :data:`SAMPLE_COLUMNS` (a tuple in table order; tuples, not
    dicts, to keep a large split small) for every sample of ``split``."""
    out: dict[str, tuple] = {}
    for entry in Manifest.load(shards_dir).shards_for(split):
        # The eval loader has just checked every member's CRC; here only the metadata is used.
        shard = IndexedShard(Path(shards_dir) / entry.path, check_crc=False)
        for s in shard.iter_samples():
            meta = {**s["meta"], "label": int(s["label"])}
            out[s["__key__"]] = tuple(col.get(meta) for col in SAMPLE_COLUMNS.values())
    return out


def load_raw_samples(
    shards_dir: str | Path, split: str, keys: list[str]
) -> dict[str, dict[str, Any]]:
    """Raw (3, 64, 64) nanomaggy stamps (``"image"``) and metadata (``"meta"``) of ``keys``."""
    wanted = set(keys)
    found: dict[str, dict[str, Any]] = {}
    for entry in Manifest.load(shards_dir).shards_for(split):
        if len(found) == len(wanted):
            break
        shard = IndexedShard(Path(shards_dir) / entry.path)
        for i, sample in enumerate(shard.samples):
            if sample["key"] in wanted:
                decoded = shard.sample(i)
                found[sample["key"]] = {
                    "image": np.array(decoded["image"]),
                    "meta": decoded["meta"],
                }
    missing = wanted - set(found)
    if missing:
        raise TrainingError(f"keys not found in {split} shards: {', '.join(sorted(missing)[:5])}")
    return found


def align_columns(keys: Sequence[str], by_key: Mapping[str, tuple]) -> dict[str, list]:
    """Column name -> values in the order of ``keys`` (None for a key that is not in ``by_key``).

    ``by_key`` is :func:`read_split_columns`'s result.
    """
    empty = (None,) * len(SAMPLE_COLUMNS)
    rows = [by_key.get(k, empty) for k in keys]
    return {name: [r[j] for r in rows] for j, name in enumerate(SAMPLE_COLUMNS)}


def column_arrays(columns: Mapping[str, Sequence[Any]]) -> dict[str, pa.Array]:
    """Every :data:`SAMPLE_COLUMNS` column of ``columns`` as a typed Arrow array."""
    return {name: typed_array(name, columns[name]) for name in SAMPLE_COLUMNS if name in columns}


def eval_operating_points(
    stored: Mapping[str, float | None],
    eval_metrics: Mapping[str, Any],
    names: Sequence[str] = DEFAULT_POINTS,
) -> tuple[dict[str, float], str]:
    """``({name: logit}, source)`` of the operating points the breakdowns are evaluated at.

    Parameters
    ----------
    stored : mapping
        The checkpoint's validation thresholds (:func:`train.thresholds.checkpoint_thresholds`);
        ``None`` (selects nothing) becomes ``+inf``.
    eval_metrics : mapping
        :func:`train.metrics.evaluate_scores` of the evaluated split: used only when the
        checkpoint stores no thresholds (written before they were recorded).
    names : sequence of str
        Which operating points; those the source lacks are left out.

    Returns
    -------
    dict, str
        The thresholds and ``"validation"`` or ``"eval split"`` (where they came from).
    """
    source, table = "validation", dict(stored)
    if not table:
        source, table = "eval split", operating_thresholds(eval_metrics)
    out = {n: math.inf if table[n] is None else float(table[n]) for n in names if n in table}
    return out, source


def as_float(values: Sequence[Any]) -> np.ndarray:
    """float64 array with NaN for missing values."""
    return np.array([np.nan if v is None else float(v) for v in values], np.float64)
