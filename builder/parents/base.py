"""Common types of the parent-sample sources.

A *source* is read in *chunks* (a Parquet row group, a batch of FITS files). The builder scans
every chunk once to learn ids and catalog values (validating each record), plans the shards, then
each shard task reads back only the rows it needs with :meth:`ParentSource.read`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from builder.errors import SourceError
from builder.photometry import estimate_psfdepth
from builder.psfmodel import DEFAULT_MOFFAT_BETA
from builder.validate import BadRecord, Limits
from shards.schema import BANDS

__all__ = [
    "CatalogRow",
    "CatalogScannable",
    "PARENT_META_COLUMNS",
    "ParentRecord",
    "ParentSource",
    "ReaderContext",
    "Rejection",
    "SourceError",
    "SourceInfo",
    "as_float",
    "fill_missing_depths",
]


@dataclass
class ParentRecord:
    """One parent galaxy.

    Attributes
    ----------
    galaxy_id : str
        Unique id of the galaxy (the shard key derives from it).
    stamp_nmgy : np.ndarray
        float32 (3, 64, 64) g, r, z image in nanomaggies per pixel (0.262 arcsec pixels).
    catalog : dict[str, float]
        ``ra``, ``dec`` (deg), ``psfsize_g/r/z`` (PSF FWHM, arcsec), ``psfdepth_g/r/z``
        (point-source inverse variance, 1/nanomaggy^2).
    location : str
        Human-readable origin, e.g. ``parents.parquet:rg=3:row=17`` (used in rejects files).
    chunk : int
        Index of the chunk the record came from.
    row : int
        Position of the record inside its chunk.
    psf_images : np.ndarray or None
        Optional float64 (3, K, K) per-band PSF images supplied by the input (validated by
        :func:`builder.parents.psf_input.check_psf_images`: finite, K odd and <= 63, each band
        normalised to unit sum); the injected arc is convolved with them.
    meta : dict
        Descriptive parent metadata copied into the sample's metadata (never a model input):
        the keys of :data:`PARENT_META_COLUMNS` the input provides, e.g. the synthetic sky's
        ``family``, and ``extra``: the configured extra catalogue columns
        (:func:`check_extra_columns`).
    psf_beta : tuple of float or None
        Per-band (g, r, z) Moffat index of the parent's PSF when the input knows it (the
        synthetic sky's draws; Parquet columns ``psf_beta_g/r/z``); the arc's Moffat then uses
        it instead of ``psf.moffat_beta``. Ignored when ``psf_images`` is given.
    """

    galaxy_id: str
    stamp_nmgy: np.ndarray
    catalog: dict[str, float]
    location: str
    chunk: int = 0
    row: int = 0
    psf_images: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    psf_beta: tuple[float, float, float] | None = None


RESERVED_META_KEYS: frozenset[str] = frozenset(
    {"galaxy_id", "key", "split", "role", "label", "source_location", "extra"}
)
"""Keys of a sample's metadata that the builder writes itself (never from an input column)."""


def check_extra_columns(columns: Sequence[str], key: str) -> None:
    """Refuse extra catalogue columns that collide with the builder's metadata or the label.

    Extra columns (``input.<kind>.extra_columns``, e.g. ``z_phot``, ``brickname``) are carried
    into each sample's metadata under ``extra`` and into ``train score``'s output; the model
    never sees them (it reads only :data:`shards.schema.SAFE_MODEL_METADATA`).
    """
    from common.configio import check
    from shards.schema import CATALOG_FIELDS, is_label_leaking

    for i, name in enumerate(columns):
        where = f"{key}[{i}]"
        check(isinstance(name, str) and bool(name), where, f"must be a column name (got {name!r})")
        check(name not in CATALOG_FIELDS, where, f"{name!r} is a catalogue field, read anyway")
        check(
            name not in RESERVED_META_KEYS and not is_label_leaking(name),
            where,
            f"{name!r} is reserved or describes the label/injection; rename the column",
        )
    dupes = sorted({c for c in columns if list(columns).count(c) > 1})
    check(not dupes, key, f"duplicate column(s): {', '.join(dupes)}")


def extra_value(value: object) -> object:
    """An extra column's value as JSON: numbers as float (NaN -> None), the rest as str."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if value != value else float(value)
    return str(value)


PARENT_META_COLUMNS: tuple[str, ...] = ("family",)
"""Optional string columns of a parent input copied into :attr:`ParentRecord.meta` (and so into
every sample's metadata): ``family`` names the hard-negative family of a synthetic parent."""


@dataclass
class CatalogRow:
    """Id and catalog values of a parent galaxy without its stamp (from a catalog-only scan)."""

    galaxy_id: str
    catalog: dict[str, float]
    location: str
    chunk: int = 0
    row: int = 0


@dataclass
class Rejection:
    """A parent galaxy (or row) that was refused, with the reason; written to ``rejects.jsonl``."""

    galaxy_id: str
    location: str
    reason: str
    stage: str = "read"  # read | scan | plan | inject
    detail: str = ""

    def to_json(self) -> dict:
        return {
            "galaxy_id": self.galaxy_id,
            "location": self.location,
            "reason": self.reason,
            "stage": self.stage,
            "detail": self.detail,
        }


@dataclass
class SourceInfo:
    """What a source reports about itself for the manifest and the config fingerprint."""

    kind: str
    path: str
    n_chunks: int
    extra: dict = field(default_factory=dict)


class ParentSource(Protocol):
    """Protocol every parent source implements.

    ``read_chunk(i)`` yields every record of chunk ``i`` in a fixed order, or a
    :class:`Rejection` for a row that cannot be decoded or fails validation. ``read(i, rows)``
    yields the same for only the given rows of chunk ``i``, in the given order. Both must be
    deterministic and must not hold more than one chunk in memory.
    """

    def info(self) -> SourceInfo: ...

    def n_chunks(self) -> int: ...

    def read_chunk(self, chunk: int) -> Iterator[ParentRecord | Rejection]: ...

    def read(self, chunk: int, rows: Sequence[int]) -> Iterator[ParentRecord | Rejection]: ...


class CatalogScannable(Protocol):
    """Optional extension: sources that can list ids and catalog values without stamps.

    ``catalog_scan`` says whether it applies to this input; ``read_catalog(i)`` then yields a
    :class:`CatalogRow` or :class:`Rejection` per row of chunk ``i``.
    """

    catalog_scan: bool

    def read_catalog(self, chunk: int) -> Iterator[CatalogRow | Rejection]: ...


@dataclass(frozen=True)
class ReaderContext:
    """Build-wide settings every parent reader receives besides its own config section.

    Attributes
    ----------
    limits : Limits
        Plausibility limits of the catalog values (``rejects.*`` of the build config).
    moffat_beta : float
        Moffat index of the model PSF (``psf.moffat_beta``), used to estimate missing depths.
    """

    limits: Limits = Limits()
    moffat_beta: float = DEFAULT_MOFFAT_BETA


# --------------------------------------------------------------------------- catalog helpers


def as_float(value: object) -> float | None:
    """Python scalar -> float, None for null; a non-number stays for check_catalog to refuse."""
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value  # type: ignore[return-value]


def fill_missing_depths(
    catalog: dict[str, object],
    stamp: np.ndarray,
    *,
    moffat_beta: float,
    annulus_inner_pix: float,
    mode: str,
) -> None:
    """Estimate absent, null or NaN ``psfdepth_<b>`` values in place from the stamp's noise.

    With ``mode == "reject"`` nothing is filled (:func:`check_catalog` then rejects the record
    with ``missing_catalog``). The estimate needs ``psfsize_<b>``; without it the value is left
    missing. An annulus without noise raises ``BadRecord("bad_psfdepth")``.
    """
    if mode != "estimate":
        return
    for i, b in enumerate(BANDS):
        name = f"psfdepth_{b}"
        value = catalog.get(name)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            continue
        size = catalog.get(f"psfsize_{b}")
        if not isinstance(size, float) or not math.isfinite(size) or size <= 0:
            continue
        depth = estimate_psfdepth(stamp[i], size, moffat_beta, annulus_inner_pix)
        if not math.isfinite(depth):
            raise BadRecord(
                "bad_psfdepth", f"cannot estimate {name}: no noise in the outer annulus"
            )
        catalog[name] = depth
