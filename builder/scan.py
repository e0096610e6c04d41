"""Scan stage: read every chunk of the parent source once, validate, and keep compact columns.

The scan learns each galaxy's id, location and catalog values and records every bad row as a
rejection, so that planning can assign splits, roles and shards before any injection runs.
Chunks are scanned in parallel (one executor call per chunk); results are concatenated in chunk
order, so the outcome does not depend on the worker count.

The result is held as columns, not per-galaxy Python objects (:class:`ScanResult`): ids and
locations as Arrow string arrays (locations front-coded per chunk), chunk and row as int32, the catalog as one float64 array of
shape ``(n, len(CATALOG_FIELDS))``; about 110 bytes per galaxy (``docs/benchmarks.md``).

When the source can list ids and catalog values without its stamps (a Parquet file that has every
catalog column), the scan reads only those columns and each stamp is decoded and validated once,
by the shard task; a bad stamp is then recorded as a rejection by that task and its shard holds
one sample fewer than planned (``n_planned`` / ``n_rejected`` in the manifest). Otherwise (FITS,
or depths estimated from the stamps) the scan decodes and validates every stamp up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from builder.columns import (
    PrefixedStrings,
    column_nbytes,
    concat_strings,
    is_string_column,
    string_column,
)
from builder.executors import SerialExecutor, SubmitExecutor, submit_ordered
from builder.parents.base import CatalogRow, ParentRecord, Rejection
from builder.parents.open import SourceSpec, open_source
from builder.validate import BadRecord, Limits, check_catalog
from shards.schema import CATALOG_FIELDS

SCAN_WINDOW_CHUNKS = 4  # chunks in flight at once when the scan stops at max_parents
COLUMNS = ("galaxy_id", "location", "chunk", "row", "catalog")


@dataclass
class ScanResult:
    """Columns of the accepted parent rows plus the rejections, in source order.

    :func:`scan_source` returns it columnar: ``galaxy_id`` is an Arrow string array,
    ``location`` a :class:`~builder.columns.PrefixedStrings` (a chunk's common prefix once, the
    rest per row), ``chunk`` and ``row`` int32 arrays and ``catalog`` a float64 array of shape
    ``(n, len(CATALOG_FIELDS))`` (values in :data:`CATALOG_FIELDS` order, ``ra``, ``dec``
    first). A result built by hand (tests, small callers) may hold plain lists instead;
    :meth:`columnar` converts them, and the plan calls it first.
    """

    galaxy_id: Any = field(default_factory=list)
    location: Any = field(default_factory=list)
    chunk: Any = field(default_factory=list)
    row: Any = field(default_factory=list)
    catalog: Any = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.galaxy_id)

    def columnar(self) -> ScanResult:
        """This result with every column as an array (itself when already columnar)."""
        if self.is_columnar():
            return self
        n = len(self.galaxy_id)
        catalog = np.asarray(self.catalog, dtype=np.float64).reshape(n, len(CATALOG_FIELDS))
        return ScanResult(
            galaxy_id=_strings(self.galaxy_id),
            location=(
                self.location
                if isinstance(self.location, PrefixedStrings)
                else PrefixedStrings.from_strings(self.location)
            ),
            chunk=np.asarray(self.chunk, dtype=np.int32).reshape(n),
            row=np.asarray(self.row, dtype=np.int32).reshape(n),
            catalog=catalog,
            rejections=list(self.rejections),
        )

    def is_columnar(self) -> bool:
        return (
            is_string_column(self.galaxy_id)
            and isinstance(self.location, PrefixedStrings)
            and all(isinstance(getattr(self, c), np.ndarray) for c in ("chunk", "row", "catalog"))
        )

    def head(self, n: int) -> ScanResult:
        """The first ``n`` rows (all rejections kept); columns are zero-copy slices."""
        out = self.columnar()
        return ScanResult(
            galaxy_id=out.galaxy_id.slice(0, n),
            location=out.location.slice(0, n),
            chunk=out.chunk[:n],
            row=out.row[:n],
            catalog=out.catalog[:n],
            rejections=out.rejections,
        )

    def ra_dec_deg(self) -> tuple[np.ndarray, np.ndarray]:
        """Right ascension and declination (degrees) of every row."""
        cat = self.columnar().catalog
        return cat[:, 0], cat[:, 1]  # CATALOG_FIELDS start with ra, dec

    def nbytes(self) -> int:
        """Bytes held by the columns (the rejections, Python objects, not counted)."""
        return sum(column_nbytes(getattr(self, c)) for c in COLUMNS)

    @staticmethod
    def concat(parts: list[ScanResult]) -> ScanResult:
        """Join columnar results in order into one result with contiguous columns."""
        parts = [p.columnar() for p in parts]
        if not parts:
            return ScanResult().columnar()
        return ScanResult(
            galaxy_id=concat_strings([p.galaxy_id for p in parts]),
            location=PrefixedStrings.concat([p.location for p in parts]),
            chunk=np.concatenate([p.chunk for p in parts]),
            row=np.concatenate([p.row for p in parts]),
            catalog=np.concatenate([p.catalog for p in parts]),
            rejections=[r for p in parts for r in p.rejections],
        )


def _strings(values: Any) -> Any:
    return values if is_string_column(values) else string_column(values)


def scan_chunk(spec: SourceSpec, chunk: int, limits: Limits) -> ScanResult:
    """Read one chunk, validate every record against ``limits``, return its columns."""
    source = open_source(spec)
    out = ScanResult()
    catalog_only = getattr(source, "catalog_scan", False)
    items = source.read_catalog(chunk) if catalog_only else source.read_chunk(chunk)
    for item in items:
        if isinstance(item, Rejection):
            item.stage = "scan"
            out.rejections.append(item)
            continue
        rec: ParentRecord | CatalogRow = item
        try:
            cat = check_catalog(rec.catalog, limits)
        except BadRecord as bad:
            out.rejections.append(
                Rejection(rec.galaxy_id, rec.location, bad.reason, "scan", bad.detail)
            )
            continue
        out.galaxy_id.append(rec.galaxy_id)
        out.location.append(rec.location)
        out.chunk.append(rec.chunk)
        out.row.append(rec.row)
        out.catalog.append([cat[k] for k in CATALOG_FIELDS])
    return out.columnar()  # compact to send back from a worker


def scan_source(
    spec: SourceSpec,
    limits: Limits,
    executor: SubmitExecutor | None = None,
    max_parents: int | None = None,
) -> ScanResult:
    """Scan all chunks, one ``executor`` call per chunk, and join them in chunk order.

    ``executor`` is anything with ``submit`` (:mod:`builder.executors`); default in-process.
    ``max_parents`` keeps only the first N accepted rows in source order (rejections among the
    rows scanned so far are kept). The result is columnar (:class:`ScanResult`).
    """
    executor = executor if executor is not None else SerialExecutor()
    n_chunks = open_source(spec).n_chunks()
    parts: list[ScanResult] = []
    n_rows = 0
    # With a limit, chunks are handed out a few at a time so that no chunk past it is scanned.
    window = None if max_parents is None else SCAN_WINDOW_CHUNKS
    calls = ((spec, chunk, limits) for chunk in range(n_chunks))
    for part in submit_ordered(executor, scan_chunk, calls, window=window):
        parts.append(part)
        n_rows += len(part)
        if max_parents is not None and n_rows >= max_parents:
            break
    total = ScanResult.concat(parts)
    if max_parents is not None and len(total) > max_parents:
        total = total.head(max_parents)
    return total
