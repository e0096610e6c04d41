"""Parent galaxies from a Parquet file in the seed pipeline's layout (writer: ``parquet_writer``).

Layout: one row per galaxy; a binary column (``stamp_npz``) of ``np.savez_compressed`` bytes with
keys ``image_g``, ``image_r``, ``image_z`` (float32 64 x 64, nanomaggies per 0.262" pixel);
catalog columns beside it (``ra``, ``dec`` in degrees, ``psfsize_g/r/z`` FWHM in arcsec,
``psfdepth_g/r/z`` in 1/nmgy^2). A chunk is one Parquet row group, read with only the needed
columns, so at most one row group is in memory.

Galaxy ids come from ``cfg.id_column``; if the file has no such column, from
``f"{brickname}_{objid}"`` when both columns exist, else from ``f"J{ra:.6f}{dec:+.6f}"``.
A missing or null ``psfdepth_<b>`` is estimated from the stamp noise when
``cfg.missing_depth == "estimate"`` (columns estimated for every row are listed in
``info().extra["estimated_columns"]``).

Optional PSF columns (:mod:`builder.parents.psf_input`): ``cfg.psf_column`` (default ``psf``,
per-row ``(3, K, K)`` PSF images, flat or nested lists) is read into
:attr:`ParentRecord.psf_images`; ``psf_beta_g/r/z`` (per-row Moffat indices, written by the
synthetic sky) into :attr:`ParentRecord.psf_beta`. A malformed value rejects the row
(``bad_psf``). ``info().extra["psf_from"]`` says which the file has.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from builder.parents.base import (
    PARENT_META_COLUMNS,
    CatalogRow,
    ParentRecord,
    ReaderContext,
    Rejection,
    SourceError,
    SourceInfo,
    as_float,
    extra_value,
    fill_missing_depths,
)
from builder.parents.config import ParquetConfig
from builder.parents.npz import NPZ_KEYS, decode_stamp_npz, encode_stamp_npz
from builder.parents.parquet_writer import write_parents_parquet
from builder.parents.psf_input import PSF_BETA_COLUMNS, check_psf_beta, check_psf_images
from builder.validate import BadRecord, check_catalog, check_galaxy_id
from common.files import NotRegularFileError, require_regular_file
from shards.schema import CATALOG_FIELDS

__all__ = [  # the codec and the writer are re-exported for callers of the seed layout
    "NPZ_KEYS",
    "ParquetSource",
    "SourceError",
    "decode_stamp_npz",
    "encode_stamp_npz",
    "check_numeric_column",
    "radec_id",
    "write_parents_parquet",
]


def check_numeric_column(dtype: pa.DataType, where: str) -> None:
    """Refuse a catalog column that is not numeric (a boolean psfsize would read as 1.0").

    Integers, floats and decimals are accepted, and an all-null column (type ``null``, each
    value then treated as missing).

    Raises
    ------
    SourceError
        Naming the column and its type.
    """
    t = dtype
    if pa.types.is_dictionary(t):
        t = t.value_type
    ok = (
        pa.types.is_null(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or (pa.types.is_integer(t) and not pa.types.is_boolean(t))
    )
    if not ok:
        raise SourceError(f"{where} has type {dtype}, expected a numeric column; refusing it")


def radec_id(ra: float, dec: float) -> str:
    """Galaxy id from coordinates in degrees: ``J{ra:.6f}{dec:+.6f}``."""
    return f"J{ra:.6f}{dec:+.6f}"


class ParquetSource:
    """Parent galaxies from one Parquet file; chunk = row group (see module docstring).

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    cfg : ParquetConfig
        Column/key names and the missing-depth policy.
    context : ReaderContext, optional
        Catalog limits and the model PSF's Moffat beta (defaults: :class:`ReaderContext`).

    Raises
    ------
    SourceError
        The file cannot be opened as Parquet, the stamp column is missing or not binary, or
        there is no way to derive galaxy ids (no id column, no brickname+objid, no ra/dec).
    """

    def __init__(
        self,
        path: str | Path,
        cfg: ParquetConfig | None = None,
        context: ReaderContext | None = None,
    ):
        self.path = Path(path)
        self.cfg = cfg if cfg is not None else ParquetConfig()  # validated once, at config load
        self.context = context if context is not None else ReaderContext()
        self.limits = self.context.limits
        try:  # a FIFO or device would block the open forever: refuse it first
            require_regular_file(self.path, "parent Parquet file")
        except NotRegularFileError as exc:
            raise SourceError(str(exc)) from None
        try:
            with pq.ParquetFile(self.path) as pf:
                schema = pf.schema_arrow
                self._n_row_groups = pf.num_row_groups
                self._num_rows = pf.metadata.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read Parquet file {self.path}: {exc}") from None
        names = set(schema.names)
        stamp = self.cfg.stamp_column
        if stamp not in names:
            raise SourceError(
                f"{self.path}: no stamp column {stamp!r} (columns: {', '.join(schema.names)}); "
                "set parquet.stamp_column"
            )
        stype = schema.field(stamp).type
        if not (pa.types.is_binary(stype) or pa.types.is_large_binary(stype)):
            raise SourceError(
                f"{self.path}: stamp column {stamp!r} has type {stype}, expected binary"
            )

        self._catalog_columns = {
            f: self.cfg.column(f) for f in CATALOG_FIELDS if self.cfg.column(f) in names
        }
        for f, c in self._catalog_columns.items():
            check_numeric_column(schema.field(c).type, f"{self.path}: catalog column {c!r} ({f})")
        if self.cfg.id_column in names:
            self._id_from, self._id_columns = "id_column", [self.cfg.id_column]
        elif {"brickname", "objid"} <= names:
            self._id_from, self._id_columns = "brickname+objid", ["brickname", "objid"]
        elif {"ra", "dec"} <= set(self._catalog_columns):
            self._id_from, self._id_columns = "radec", []
        else:
            raise SourceError(
                f"{self.path}: cannot derive galaxy ids: no {self.cfg.id_column!r} column, no "
                "brickname+objid columns and no ra/dec columns; set parquet.id_column"
            )
        missing = [f for f in CATALOG_FIELDS if f not in self._catalog_columns]
        self._estimated = [
            f for f in missing if f.startswith("psfdepth_") and self.cfg.missing_depth == "estimate"
        ]
        self._missing = [f for f in missing if f not in self._estimated]
        self._meta_columns = [c for c in PARENT_META_COLUMNS if c in names]
        absent = [c for c in self.cfg.extra_columns if c not in names]
        if absent:
            raise SourceError(
                f"{self.path}: input.parquet.extra_columns names column(s) not in the file: "
                f"{', '.join(absent)}"
            )
        self._extra_columns = list(self.cfg.extra_columns)
        self._psf_column, self._beta_columns = self._psf_columns(schema)
        self._columns = list(
            dict.fromkeys(
                [
                    *self._id_columns,
                    stamp,
                    *self._catalog_columns.values(),
                    *self._meta_columns,
                    *self._extra_columns,
                    *self._beta_columns,
                    *([self._psf_column] if self._psf_column else []),
                ]
            )
        )
        self._bulky = {stamp, self._psf_column}  # decoded row by row, never as Python lists

    def _psf_columns(self, schema: pa.Schema) -> tuple[str | None, list[str]]:
        """The PSF-image column (if the file has it) and the Moffat-index columns (all or none)."""
        names = set(schema.names)
        psf = self.cfg.psf_column if self.cfg.psf_column in names else None
        if psf is not None:
            t = schema.field(psf).type
            if not (
                pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            ):
                raise SourceError(
                    f"{self.path}: PSF column {psf!r} has type {t}, expected a list of floats "
                    "(3 * K * K values, or nested [3][K][K]; docs/inputs.md)"
                )
        betas = [c for c in PSF_BETA_COLUMNS if c in names]
        if betas and len(betas) != len(PSF_BETA_COLUMNS):
            raise SourceError(
                f"{self.path}: has {', '.join(betas)} but not all of {', '.join(PSF_BETA_COLUMNS)}"
            )
        for c in betas:
            check_numeric_column(schema.field(c).type, f"{self.path}: PSF column {c!r}")
        return psf, betas

    # -- protocol -----------------------------------------------------------------------

    def info(self) -> SourceInfo:
        """Kind, path, chunk count and how ids/catalog values are obtained."""
        return SourceInfo(
            kind="parquet",
            path=str(self.path),
            n_chunks=self._n_row_groups,
            extra={
                "num_rows": self._num_rows,
                "id_from": self._id_from,
                "estimated_columns": list(self._estimated),
                "missing_columns": list(self._missing),
                "missing_depth": self.cfg.missing_depth,
                "column_map": dict(self.cfg.column_map),
                "band_keys": list(self.cfg.band_keys),
                "psf_from": self._psf_from(),
            },
        )

    def _psf_from(self) -> str:
        """``column <name>`` (PSF images), ``psf_beta columns`` or ``moffat`` (the model)."""
        if self._psf_column is not None:
            return f"column {self._psf_column}"
        return "psf_beta columns" if self._beta_columns else "moffat"

    def n_chunks(self) -> int:
        """Number of row groups."""
        return self._n_row_groups

    @property
    def catalog_scan(self) -> bool:
        """True when ids and catalog values can be read without decoding stamps."""
        return not self._estimated

    def read_catalog(self, chunk: int) -> Iterator[CatalogRow | Rejection]:
        """Ids and catalog values of every row of ``chunk`` without touching the stamp column.

        Only valid when :attr:`catalog_scan` is True (no catalog value must be estimated from the
        stamp); stamps are then decoded and checked once, when the shard task reads them.
        """
        if not self.catalog_scan:
            raise SourceError(f"{self.path}: catalog values {self._estimated} need the stamps")
        columns = [c for c in self._columns if c not in self._bulky]
        table = self._read_row_group(chunk, columns)
        cols = {c: table.column(c).to_pylist() for c in columns}
        for row in range(table.num_rows):
            location = f"{self.path.name}:rg={chunk}:row={row}"
            gid = ""
            try:
                gid = self._galaxy_id(cols, row)
                catalog = {f: as_float(cols[c][row]) for f, c in self._catalog_columns.items()}
                checked = check_catalog(catalog, self.limits)
            except BadRecord as exc:
                yield Rejection(gid, location, exc.reason, stage="read", detail=exc.detail)
                continue
            yield CatalogRow(gid, checked, location, chunk=chunk, row=row)

    def read_chunk(self, chunk: int) -> Iterator[ParentRecord | Rejection]:
        """Yield every row of row group ``chunk`` as a record or a rejection, in file order."""
        table = self._read_row_group(chunk)
        yield from self._decode(table, chunk, range(table.num_rows))

    def read(self, chunk: int, rows: Sequence[int]) -> Iterator[ParentRecord | Rejection]:
        """Yield only ``rows`` (positions inside row group ``chunk``), in the given order."""
        rows = [int(r) for r in rows]
        table = self._read_row_group(chunk)
        bad = [r for r in rows if not 0 <= r < table.num_rows]
        if bad:
            raise IndexError(
                f"{self.path.name}: rows {bad[:5]} out of range for row group {chunk} "
                f"({table.num_rows} rows)"
            )
        table = table.take(pa.array(rows, type=pa.int64()))
        yield from self._decode(table, chunk, rows)

    # -- internals ----------------------------------------------------------------------

    def _read_row_group(self, chunk: int, columns: list[str] | None = None) -> pa.Table:
        if not 0 <= chunk < self._n_row_groups:
            raise IndexError(
                f"{self.path.name}: chunk {chunk} out of range (0..{self._n_row_groups - 1})"
            )
        try:
            with pq.ParquetFile(self.path) as pf:
                return pf.read_row_group(chunk, columns=columns or self._columns)
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"cannot read row group {chunk} of {self.path}: {exc}") from None

    def _galaxy_id(self, cols: Mapping[str, list], k: int) -> str:
        if self._id_from == "id_column":
            return check_galaxy_id(cols[self.cfg.id_column][k])
        if self._id_from == "brickname+objid":
            brick, objid = cols["brickname"][k], cols["objid"][k]
            if brick is None or objid is None:
                raise BadRecord("bad_galaxy_id", f"null brickname/objid ({brick!r}, {objid!r})")
            return check_galaxy_id(f"{brick}_{objid}")
        ra, dec = (as_float(cols[self._catalog_columns[f]][k]) for f in ("ra", "dec"))
        if not all(isinstance(v, float) and math.isfinite(v) for v in (ra, dec)):
            raise BadRecord("bad_galaxy_id", f"cannot form an id from ra={ra!r}, dec={dec!r}")
        return radec_id(ra, dec)  # type: ignore[arg-type]

    def _decode(
        self, table: pa.Table, chunk: int, rows: Sequence[int]
    ) -> Iterator[ParentRecord | Rejection]:
        small = {c: table.column(c).to_pylist() for c in self._columns if c not in self._bulky}
        stamps = table.column(self.cfg.stamp_column)
        psfs = None if self._psf_column is None else table.column(self._psf_column)
        for k, row in enumerate(rows):
            location = f"{self.path.name}:rg={chunk}:row={row}"
            gid = ""
            try:
                gid = self._galaxy_id(small, k)
                stamp = decode_stamp_npz(stamps[k].as_py(), self.cfg.band_keys, self.limits)
                catalog = {f: as_float(small[c][k]) for f, c in self._catalog_columns.items()}
                fill_missing_depths(
                    catalog,
                    stamp,
                    moffat_beta=self.context.moffat_beta,
                    annulus_inner_pix=self.cfg.annulus_inner_pix,
                    mode=self.cfg.missing_depth,
                )
                checked = check_catalog(catalog, self.limits)
                psf_images = None if psfs is None else _psf_value(psfs[k])
                psf_beta = (
                    check_psf_beta([small[c][k] for c in self._beta_columns])
                    if self._beta_columns
                    else None
                )
            except BadRecord as exc:
                yield Rejection(gid, location, exc.reason, stage="read", detail=exc.detail)
                continue
            meta: dict[str, Any] = {
                c: str(small[c][k]) for c in self._meta_columns if small[c][k] is not None
            }
            if self._extra_columns:
                meta["extra"] = {c: extra_value(small[c][k]) for c in self._extra_columns}
            yield ParentRecord(
                gid,
                stamp,
                checked,
                location,
                chunk=chunk,
                row=row,
                psf_images=psf_images,
                meta=meta,
                psf_beta=psf_beta,
            )


def _psf_value(scalar: pa.Scalar) -> object:
    """One row of the PSF column: None for null, else the validated (3, K, K) images."""
    if not scalar.is_valid:
        return None
    values = scalar.values
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        if values.null_count:
            raise BadRecord("bad_psf", "PSF has null values")
        return check_psf_images(values.to_numpy(zero_copy_only=False))
    return check_psf_images(scalar.as_py())  # nested lists: numpy checks the (3, K, K) shape
