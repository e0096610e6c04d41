"""Open the configured parent source (in the main process and again inside each worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.parents.base import ParentSource, ReaderContext
from builder.parents.registry import get_parent_kind


@dataclass(frozen=True)
class SourceSpec:
    """Picklable description of a source: enough to reopen it in a worker process.

    ``kind`` names a reader in :data:`builder.parents.registry.PARENT_KINDS`; ``config`` is its
    ``input.<kind>`` section; ``context`` carries the build-wide limits and PSF beta.
    """

    kind: str
    path: str
    config: object
    context: ReaderContext = field(default_factory=ReaderContext)


def open_source(spec: SourceSpec) -> ParentSource:
    """Instantiate the reader for ``spec``; a missing path raises FileNotFoundError naming it."""
    path = Path(spec.path)
    if not path.exists():
        raise FileNotFoundError(f"parent input not found: {path}")
    return get_parent_kind(spec.kind).open(path, spec.config, spec.context)
