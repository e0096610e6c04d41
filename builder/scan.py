"""Scan stage: read every chunk of the parent source once, validate, and keep compact columns.

The scan learns each galaxy's id, location and catalog values (a few dozen bytes per galaxy) and
records every bad row as a rejection, so that planning can assign splits, roles and shards before
any injection runs. Chunks are scanned in parallel; results are concatenated in chunk order, so
the outcome does not depend on the worker count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from builder.sources.base import ParentRecord, Rejection
from builder.sources.open import SourceSpec, open_source
from builder.validate import BadRecord, Limits, check_catalog
from shards.schema import CATALOG_FIELDS

APERTURE_RADIUS_PIX = 8.0  # 2.1 arcsec: r-band aperture flux used to compare hosts and controls
_YY, _XX = np.mgrid[:64, :64] - 31.5
_R = np.hypot(_XX, _YY)
_IN = _R < APERTURE_RADIUS_PIX
_OUT = _R >= 24.0


def aperture_flux_nmgy(band: np.ndarray) -> float:
    """Background-subtracted flux within :data:`APERTURE_RADIUS_PIX` of the centre, nanomaggies.

    The background is the median of the outer annulus (r >= 24 px).
    """
    bkg = float(np.median(band[_OUT]))
    return float(band[_IN].sum() - bkg * _IN.sum())


@dataclass
class ScanResult:
    """Columns of the accepted parent rows plus the rejections, in source order."""

    galaxy_id: list[str] = field(default_factory=list)
    location: list[str] = field(default_factory=list)
    chunk: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    catalog: list[list[float]] = field(default_factory=list)
    r_flux_nmgy: list[float] = field(default_factory=list)
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
            "r_flux_nmgy",
            "rejections",
        ):
            getattr(self, name).extend(getattr(other, name))

    def catalog_array(self) -> np.ndarray:
        """(N, 8) float64 array of :data:`CATALOG_FIELDS`."""
        return np.asarray(self.catalog, dtype=np.float64).reshape(-1, len(CATALOG_FIELDS))


def scan_chunk(spec: SourceSpec, chunk: int, limits: Limits) -> ScanResult:
    """Read one chunk, validate every record against ``limits``, return its columns."""
    source = open_source(spec)
    out = ScanResult()
    for item in source.read_chunk(chunk):
        if isinstance(item, Rejection):
            item.stage = "scan"
            out.rejections.append(item)
            continue
        rec: ParentRecord = item
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
        out.r_flux_nmgy.append(aperture_flux_nmgy(rec.stamp_nmgy[1]))
    return out


def scan_source(
    spec: SourceSpec,
    limits: Limits,
    map_fn: Callable = map,
    max_parents: int | None = None,
) -> ScanResult:
    """Scan all chunks (with ``map_fn``, e.g. an executor's ordered map) in chunk order.

    ``max_parents`` keeps only the first N accepted rows in source order (rejections among the
    rows scanned so far are kept).
    """
    n_chunks = open_source(spec).n_chunks()
    total = ScanResult()
    specs = [spec] * n_chunks
    limit_list = [limits] * n_chunks
    for part in map_fn(scan_chunk, specs, range(n_chunks), limit_list):
        total.extend(part)
        if max_parents is not None and len(total) >= max_parents:
            break
    if max_parents is not None and len(total) > max_parents:
        for name in ("galaxy_id", "location", "chunk", "row", "catalog", "r_flux_nmgy"):
            setattr(total, name, getattr(total, name)[:max_parents])
    return total
