"""Open the configured parent source (in the main process and again inside each worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.parents.base import ParentSource
from builder.validate import Limits


@dataclass(frozen=True)
class SourceSpec:
    """Picklable description of a source: enough to reopen it in a worker process."""

    kind: str  # "parquet" or "fits" (the synthetic sky is read back as parquet)
    path: str
    config: object  # ParquetConfig or FitsConfig
    limits: Limits = Limits()


def open_source(spec: SourceSpec) -> ParentSource:
    """Instantiate the reader for ``spec``; a missing path raises FileNotFoundError naming it."""
    path = Path(spec.path)
    if not path.exists():
        raise FileNotFoundError(f"parent input not found: {path}")
    if spec.kind == "parquet":
        from builder.parents.parquet import ParquetSource

        return ParquetSource(path, spec.config, spec.limits)
    if spec.kind == "fits":
        from builder.parents.fits import FitsSource

        return FitsSource(path, spec.config, spec.limits)
    raise ValueError(f"unknown source kind {spec.kind!r}")
