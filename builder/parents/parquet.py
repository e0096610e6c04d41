"""Parent galaxies from a Parquet file in the seed pipeline's layout, and a writer for it.

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
"""

from __future__ import annotations

import io
import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from builder.parents.base import CatalogRow, ParentRecord, Rejection, SourceInfo
from builder.parents.config import ParquetConfig
from builder.photometry import estimate_psfdepth
from builder.validate import BadRecord, Limits, check_catalog, check_galaxy_id, check_stamp
from shards.reader import parse_npy_header
from shards.schema import BANDS, CATALOG_FIELDS, STAMP_SIZE_PIX

NPZ_KEYS: tuple[str, ...] = tuple(f"image_{b}" for b in BANDS)
"""Keys of the band images inside a ``stamp_npz`` value (seed layout)."""

# Everything numpy/zipfile may raise on hostile bytes: numpy parses .npy headers with
# ast.literal_eval (SyntaxError, tokenize errors), a forged shape can ask for huge allocations.
_NPZ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    KeyError,
    TypeError,
    SyntaxError,
    RecursionError,
    MemoryError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
)


class SourceError(ValueError):
    """A parent source that cannot be read at all (missing file or column, wrong type)."""


# --------------------------------------------------------------------------- stamp codec


def encode_stamp_npz(stamp_nmgy: np.ndarray, keys: Sequence[str] = NPZ_KEYS) -> bytes:
    """Encode a (3, H, W) g, r, z stamp as ``np.savez_compressed`` bytes (float32 per band).

    Parameters
    ----------
    stamp_nmgy : ndarray
        Band images in nanomaggies, bands in :data:`shards.schema.BANDS` order.
    keys : sequence of str
        npz key of each band.
    """
    arr = np.asarray(stamp_nmgy)
    if arr.ndim != 3 or arr.shape[0] != len(keys):
        raise ValueError(f"expected a ({len(keys)}, H, W) stamp, got shape {arr.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: arr[i].astype(np.float32) for i, k in enumerate(keys)})
    return buf.getvalue()


def _decode_npz_fast(data: bytes, keys: Sequence[str]) -> np.ndarray | None:
    """Fast path for well-formed stamps: zipfile (CRC-checked) + cached header + frombuffer.

    Returns None whenever anything is unusual, so that :func:`decode_stamp_npz` falls back to
    ``np.load`` and reports the precise rejection reason.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            planes = []
            for key in keys:
                raw = zf.read(f"{key}.npy")
                parsed = parse_npy_header(raw)  # the shard reader's cached parser
                if parsed is None or parsed[1] != (STAMP_SIZE_PIX, STAMP_SIZE_PIX):
                    return None
                dtype, shape, offset = parsed
                planes.append(np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape))
    except _NPZ_ERRORS:
        return None
    return np.stack(planes).astype(np.float32, copy=False)


def decode_stamp_npz(data: bytes | None, keys: Sequence[str] = NPZ_KEYS) -> np.ndarray:
    """Decode ``np.savez_compressed`` bytes into a validated float32 (3, 64, 64) stamp.

    Raises
    ------
    BadRecord
        ``corrupt_stamp`` (null, truncated or non-npz bytes), ``missing_band`` (a key is
        absent), ``bad_shape`` (a band is not 64 x 64), or the reasons of
        :func:`builder.validate.check_stamp` (``nonfinite_pixels``, ``zero_band`` ...).
    """
    if data is None:
        raise BadRecord("corrupt_stamp", "null stamp value")
    fast = _decode_npz_fast(data, keys)
    if fast is not None:
        return check_stamp(fast)
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise BadRecord(
            "corrupt_stamp", f"cannot decode npz: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise BadRecord("corrupt_stamp", "bytes hold a single .npy array, not an npz archive")
    planes = []
    with npz:
        for key in keys:
            if key not in npz.files:
                raise BadRecord("missing_band", f"npz has no key {key!r} (keys: {npz.files})")
            try:
                plane = npz[key]
            except _NPZ_ERRORS as exc:
                raise BadRecord(
                    "corrupt_stamp", f"cannot decode {key!r}: {type(exc).__name__}: {exc}"
                ) from None
            if plane.shape != (STAMP_SIZE_PIX, STAMP_SIZE_PIX):
                raise BadRecord("bad_shape", f"{key} has shape {plane.shape}, expected 64x64")
            planes.append(plane)
    return check_stamp(np.stack(planes))


# --------------------------------------------------------------------------- catalog helpers


def _as_float(value: object) -> float | None:
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
    psf_beta: float,
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
        depth = estimate_psfdepth(stamp[i], size, psf_beta, annulus_inner_pix)
        if not math.isfinite(depth):
            raise BadRecord(
                "bad_psfdepth", f"cannot estimate {name}: no noise in the outer annulus"
            )
        catalog[name] = depth


def radec_id(ra: float, dec: float) -> str:
    """Galaxy id from coordinates in degrees: ``J{ra:.6f}{dec:+.6f}``."""
    return f"J{ra:.6f}{dec:+.6f}"


# --------------------------------------------------------------------------- reader


class ParquetSource:
    """Parent galaxies from one Parquet file; chunk = row group (see module docstring).

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    cfg : ParquetConfig
        Column/key names and the missing-depth policy.
    limits : Limits, optional
        Plausibility limits for the catalog values (default :class:`builder.validate.Limits`).

    Raises
    ------
    SourceError
        The file cannot be opened as Parquet, the stamp column is missing or not binary, or
        there is no way to derive galaxy ids (no id column, no brickname+objid, no ra/dec).
    """

    def __init__(
        self, path: str | Path, cfg: ParquetConfig | None = None, limits: Limits | None = None
    ):
        self.path = Path(path)
        self.cfg = cfg if cfg is not None else ParquetConfig()
        self.cfg.validate("parquet")
        self.limits = limits if limits is not None else Limits()
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
        self._columns = list(
            dict.fromkeys([*self._id_columns, stamp, *self._catalog_columns.values()])
        )

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
            },
        )

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
        columns = [c for c in self._columns if c != self.cfg.stamp_column]
        table = self._read_row_group(chunk, columns)
        cols = {c: table.column(c).to_pylist() for c in columns}
        for row in range(table.num_rows):
            location = f"{self.path.name}:rg={chunk}:row={row}"
            gid = ""
            try:
                gid = self._galaxy_id(cols, row)
                catalog = {f: _as_float(cols[c][row]) for f, c in self._catalog_columns.items()}
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
        ra, dec = (_as_float(cols[self._catalog_columns[f]][k]) for f in ("ra", "dec"))
        if not all(isinstance(v, float) and math.isfinite(v) for v in (ra, dec)):
            raise BadRecord("bad_galaxy_id", f"cannot form an id from ra={ra!r}, dec={dec!r}")
        return radec_id(ra, dec)  # type: ignore[arg-type]

    def _decode(
        self, table: pa.Table, chunk: int, rows: Sequence[int]
    ) -> Iterator[ParentRecord | Rejection]:
        small = {
            c: table.column(c).to_pylist() for c in self._columns if c != self.cfg.stamp_column
        }
        stamps = table.column(self.cfg.stamp_column)
        for k, row in enumerate(rows):
            location = f"{self.path.name}:rg={chunk}:row={row}"
            gid = ""
            try:
                gid = self._galaxy_id(small, k)
                stamp = decode_stamp_npz(stamps[k].as_py(), self.cfg.band_keys)
                catalog = {f: _as_float(small[c][k]) for f, c in self._catalog_columns.items()}
                fill_missing_depths(
                    catalog,
                    stamp,
                    psf_beta=self.cfg.psf_beta,
                    annulus_inner_pix=self.cfg.annulus_inner_pix,
                    mode=self.cfg.missing_depth,
                )
                checked = check_catalog(catalog, self.limits)
            except BadRecord as exc:
                yield Rejection(gid, location, exc.reason, stage="read", detail=exc.detail)
                continue
            yield ParentRecord(gid, stamp, checked, location, chunk=chunk, row=row)


# --------------------------------------------------------------------------- writer


def _record_row(rec: ParentRecord) -> dict[str, object]:
    row: dict[str, object] = {
        "galaxy_id": rec.galaxy_id,
        "stamp_npz": encode_stamp_npz(rec.stamp_nmgy),
    }
    for f in CATALOG_FIELDS:
        v = rec.catalog.get(f)
        row[f] = None if v is None else float(v)
    return row


def write_parents_parquet(
    path: str | Path,
    records: Iterable[ParentRecord],
    row_group_size: int,
    extra_columns: Mapping[str, Callable[[ParentRecord], object]] | None = None,
) -> Path:
    """Write parent records in the seed layout, streaming one row group at a time.

    Columns: ``galaxy_id`` (string), ``stamp_npz`` (binary npz with ``image_g/r/z``),
    ``ra``, ``dec``, ``psfsize_g/r/z``, ``psfdepth_g/r/z`` (float64), then any extra columns.
    The file is written to ``path + ".tmp"`` and renamed over ``path`` only when complete.

    Parameters
    ----------
    path : str or Path
        Output file.
    records : iterable of ParentRecord
        Consumed lazily; at most ``row_group_size`` records are held at once.
    row_group_size : int
        Rows per row group (> 0).
    extra_columns : mapping, optional
        Column name -> function of the record giving that column's value (e.g. a brickname).

    Returns
    -------
    Path
        ``path``.
    """
    if row_group_size <= 0:
        raise ValueError(f"row_group_size must be > 0 (got {row_group_size})")
    extra = dict(extra_columns or {})
    clash = set(extra) & {"galaxy_id", "stamp_npz", *CATALOG_FIELDS}
    if clash:
        raise ValueError(f"extra_columns {sorted(clash)} clash with the standard columns")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    base_fields = [pa.field("galaxy_id", pa.string()), pa.field("stamp_npz", pa.binary())]
    base_fields += [pa.field(f, pa.float64()) for f in CATALOG_FIELDS]
    schema: pa.Schema | None = None if extra else pa.schema(base_fields)
    writer: pq.ParquetWriter | None = None

    def flush(batch: list[ParentRecord]) -> None:
        nonlocal writer, schema
        rows = [_record_row(r) | {name: fn(r) for name, fn in extra.items()} for r in batch]
        if schema is None:  # infer the extra columns' types from the first row group
            inferred = pa.Table.from_pylist(rows)
            schema = pa.schema(base_fields + [inferred.schema.field(n) for n in extra])
        table = pa.Table.from_pylist(rows, schema=schema)
        if writer is None:
            # npz bytes are already deflated: Parquet compression would only cost read time
            codecs = {name: "zstd" for name in schema.names}
            codecs["stamp_npz"] = "none"
            writer = pq.ParquetWriter(
                tmp,
                schema,
                compression=codecs,
                use_dictionary=[n for n in schema.names if n != "stamp_npz"],
            )
        writer.write_table(table, row_group_size=row_group_size)

    try:
        batch: list[ParentRecord] = []
        for rec in records:
            batch.append(rec)
            if len(batch) == row_group_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if writer is None:  # no records: an empty file with the base schema
            writer = pq.ParquetWriter(tmp, schema or pa.schema(base_fields))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path
