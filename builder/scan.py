"""Scan stage: read every chunk of the parent source once, validate, and keep compact columns.

The scan learns each galaxy's id, location and catalog values (a few dozen bytes per galaxy) and
records every bad row as a rejection, so that planning can assign splits, roles and shards before
any injection runs. Chunks are scanned in parallel (one executor call per chunk); results are concatenated in chunk order, so
the outcome does not depend on the worker count.

When the source can list ids and catalog values without its stamps (a Parquet file that has every
catalog column), the scan reads only those columns and each stamp is decoded and validated once,
by the shard task; a bad stamp is then recorded as a rejection by that task and its shard holds
one sample fewer than planned (``n_planned`` / ``n_rejected`` in the manifest). Otherwise (FITS,
or depths estimated from the stamps) the scan decodes and validates every stamp up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.executors import SerialExecutor, SubmitExecutor, submit_ordered
from builder.parents.base import CatalogRow, ParentRecord, Rejection
from builder.parents.open import SourceSpec, open_source
from builder.validate import BadRecord, Limits, check_catalog
from shards.schema import CATALOG_FIELDS

SCAN_WINDOW_CHUNKS = 4  # chunks in flight at once when the scan stops at max_parents


@dataclass
class ScanResult:
    """Columns of the accepted parent rows plus the rejections, in source order."""

    galaxy_id: list[str] = field(default_factory=list)
    location: list[str] = field(default_factory=list)
    chunk: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    catalog: list[list[float]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.galaxy_id)

    def extend(self, other: ScanResult) -> None:
        for name in (
            "galaxy_id",
            "location",
            "chunk",
            "row",
            "catalog",
            "rejections",
        ):
            getattr(self, name).extend(getattr(other, name))


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
    return out


def scan_source(
    spec: SourceSpec,
    limits: Limits,
    executor: SubmitExecutor | None = None,
    max_parents: int | None = None,
) -> ScanResult:
    """Scan all chunks, one ``executor`` call per chunk, and join them in chunk order.

    ``executor`` is anything with ``submit`` (:mod:`builder.executors`); default in-process.
    ``max_parents`` keeps only the first N accepted rows in source order (rejections among the
    rows scanned so far are kept).
    """
    executor = executor if executor is not None else SerialExecutor()
    n_chunks = open_source(spec).n_chunks()
    total = ScanResult()
    # With a limit, chunks are handed out a few at a time so that no chunk past it is scanned.
    window = None if max_parents is None else SCAN_WINDOW_CHUNKS
    calls = ((spec, chunk, limits) for chunk in range(n_chunks))
    for part in submit_ordered(executor, scan_chunk, calls, window=window):
        total.extend(part)
        if max_parents is not None and len(total) >= max_parents:
            break
    if max_parents is not None and len(total) > max_parents:
        for name in ("galaxy_id", "location", "chunk", "row", "catalog"):
            setattr(total, name, getattr(total, name)[:max_parents])
    return total
