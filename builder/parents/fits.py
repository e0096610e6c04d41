"""Parent galaxies from a directory of Legacy Survey cutout-service FITS files.

Each file holds one HDU (``cfg.hdu``, the primary by default) with a (3, ny, nx) cube in g, r, z
order, nanomaggies per 0.262" pixel; ``BAND0``/``BAND1``/``BAND2`` or ``BANDS`` header keys, when
present, give the plane order and are honoured. Cubes of any size >= 64 are centre-cropped to
64 x 64 (the crop starts at ``(n - 64) // 2``, so an odd cube's centre pixel lands on index 32).
The galaxy id is the file name stem.

Catalog values come from an optional side table (CSV or Parquet keyed by ``galaxy_id`` = stem or
``filename``); absent or null values fall back to: ``psfsize_<b>`` = ``cfg.psfsize_arcsec``;
``psfdepth_<b>`` estimated from the stamp noise (``cfg.missing_depth == "estimate"``);
``ra``/``dec`` from the header ``RA``/``DEC`` keys, else ``CRVAL1``/``CRVAL2`` when ``CTYPE1``/
``CTYPE2`` name RA/DEC. A file without any ra/dec is rejected with ``missing_catalog``.

An optional image HDU named ``cfg.psf_hdu`` (default ``PSF``) holds the cutout's PSF, a
``(3, K, K)`` g, r, z stack (K odd <= 63; its own ``BAND0``.. keys honoured), read into
:attr:`ParentRecord.psf_images` (:func:`builder.parents.psf_input.check_psf_images`; a bad one
rejects the file with ``bad_psf``); a file without one gets the Moffat model PSF.

Chunks are the sorted file list cut into groups of ``cfg.files_per_chunk``; files are opened
with ``memmap=False`` and closed after reading, one at a time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from astropy.io import fits

from builder.parents.base import (
    ParentRecord,
    ReaderContext,
    Rejection,
    SourceError,
    SourceInfo,
    extra_value,
    fill_missing_depths,
)
from builder.parents.config import FitsConfig
from builder.parents.psf_input import check_psf_images
from builder.validate import (
    BadRecord,
    Limits,
    center_crop,
    check_catalog,
    check_galaxy_id,
    check_stamp,
)
from common.files import NotRegularFileError, not_regular_reason, require_regular_file
from shards.schema import BANDS, CATALOG_FIELDS

_FITS_ERRORS = (OSError, ValueError, TypeError, IndexError, KeyError, EOFError)


def _finite_or_none(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _side_value(value: object) -> object:
    """Null/NaN -> None (use the default); numbers -> float; anything else kept for rejection."""
    if value is None:
        return None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value
    return None if math.isnan(v) else v


def load_side_table(
    path: str | Path, extra_columns: Sequence[str] = ()
) -> dict[str, dict[str, object]]:
    """Read a CSV/Parquet side table into ``{key: {catalog field: value or None}}``.

    The key column is ``galaxy_id`` (matched to file stems) or, failing that, ``filename``
    (matched to file names). Only :data:`shards.schema.CATALOG_FIELDS` columns are kept, plus
    the ``extra_columns`` (under the key ``"extra"``, values as :func:`extra_value`); null
    and NaN values become None (the reader's defaults apply), non-numbers are kept as they are
    so that the record is rejected (``nonfinite_catalog``) rather than silently defaulted.

    Raises
    ------
    SourceError
        The table cannot be read, has no key column, or repeats a key.
    """
    path = Path(path)
    try:
        require_regular_file(path, "side table")
    except NotRegularFileError as exc:
        raise SourceError(str(exc)) from None
    try:
        if path.suffix.lower() == ".csv":
            table = pacsv.read_csv(path)
        else:
            table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"cannot read side table {path}: {exc}") from None
    key = next((k for k in ("galaxy_id", "filename") if k in table.column_names), None)
    if key is None:
        raise SourceError(f"side table {path} has neither a 'galaxy_id' nor a 'filename' column")
    fields = [f for f in CATALOG_FIELDS if f in table.column_names]
    for f in fields:
        if pa.types.is_boolean(table.schema.field(f).type):
            raise SourceError(f"side table {path}: column {f!r} is boolean, expected numbers")
    absent = [c for c in extra_columns if c not in table.column_names]
    if absent:
        raise SourceError(
            f"side table {path}: input.fits.extra_columns names column(s) it lacks: "
            f"{', '.join(absent)}"
        )
    keys = [None if k is None else str(k) for k in table.column(key).to_pylist()]
    values = {f: table.column(f).to_pylist() for f in fields}
    extras = {c: table.column(c).to_pylist() for c in extra_columns}
    out: dict[str, dict[str, object]] = {}
    for i, k in enumerate(keys):
        if k is None:
            continue
        if k in out:
            raise SourceError(f"side table {path}: {key} {k!r} appears more than once")
        out[k] = {f: _side_value(values[f][i]) for f in fields}
        if extras:
            out[k]["extra"] = {c: extra_value(extras[c][i]) for c in extra_columns}
    return out


def band_planes(header: fits.Header, n_planes: int) -> list[int]:
    """Plane index of each of g, r, z according to the header (default: planes 0, 1, 2).

    Raises
    ------
    BadRecord
        ``missing_band`` if the header names the bands and one of g, r, z is absent.
    """
    names: list[str] | None = None
    if any(f"BAND{k}" in header for k in range(n_planes)):
        names = [str(header.get(f"BAND{k}", "")).strip().lower() for k in range(n_planes)]
    elif "BANDS" in header:
        names = list(str(header["BANDS"]).strip().lower())
    if names is None:
        return list(range(len(BANDS)))
    missing = [b for b in BANDS if b not in names]
    if missing:
        raise BadRecord("missing_band", f"header bands {names} lack {','.join(missing)}")
    planes = [names.index(b) for b in BANDS]
    if max(planes) >= n_planes:
        raise BadRecord("missing_band", f"header bands {names} but only {n_planes} planes")
    return planes


def header_radec(header: fits.Header) -> tuple[float | None, float | None]:
    """``(ra, dec)`` in degrees from ``RA``/``DEC`` or (RA/DEC-typed) ``CRVAL1``/``CRVAL2``."""
    ra, dec = _finite_or_none(header.get("RA")), _finite_or_none(header.get("DEC"))
    if ra is not None and dec is not None:
        return ra, dec
    ctype1 = str(header.get("CTYPE1", "")).upper()
    ctype2 = str(header.get("CTYPE2", "")).upper()
    if ctype1.startswith("RA") and ctype2.startswith("DEC"):
        return _finite_or_none(header.get("CRVAL1")), _finite_or_none(header.get("CRVAL2"))
    return None, None


def read_cutout(
    path: Path, hdu: int = 0, limits: Limits | None = None
) -> tuple[np.ndarray, fits.Header]:
    """Read one cutout: the g, r, z planes centre-cropped to (3, 64, 64), and its header.

    As :func:`read_cutout_and_psf`, without the PSF.
    """
    stamp, header, _ = read_cutout_and_psf(path, hdu, limits, psf_hdu=None)
    return stamp, header


def read_cutout_and_psf(
    path: Path, hdu: int = 0, limits: Limits | None = None, psf_hdu: str | None = "PSF"
) -> tuple[np.ndarray, fits.Header, np.ndarray | None]:
    """Read one cutout (g, r, z planes centre-cropped to (3, 64, 64)), its header and its PSF.

    The PSF is the image HDU named ``psf_hdu`` when the file has one (validated and normalised
    per band), else None.

    Raises
    ------
    BadRecord
        ``unreadable_file`` (not FITS, truncated, no such HDU or no data, or not a regular
        file: a dangling symlink, a symlink loop, a FIFO, never opened), ``missing_band``
        (fewer than 3 planes, or header bands lacking one), ``bad_shape`` (not 2-D/3-D, or
        smaller than 64 x 64), a :func:`builder.validate.check_stamp` reason, or ``bad_psf``
        (a PSF HDU that is not a valid (3, K, K) stack).
    """
    why = not_regular_reason(path)
    if why is not None:
        raise BadRecord("unreadable_file", f"{path.name} is {why}, not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns before failing on truncated files
            with fits.open(path, memmap=False) as hdul:
                ext = hdul[hdu]
                header = ext.header.copy()
                data = ext.data
                data = None if data is None else np.array(data)
                psf_raw = _psf_hdu(hdul, psf_hdu)
    except _FITS_ERRORS as exc:
        raise BadRecord("unreadable_file", f"{type(exc).__name__}: {exc}") from None
    if data is None:
        raise BadRecord("unreadable_file", f"HDU {hdu} has no data")
    if data.ndim == 2:
        raise BadRecord("missing_band", f"a single {data.shape} plane, expected 3 (g, r, z)")
    if data.ndim != 3:
        raise BadRecord("bad_shape", f"expected a (3, ny, nx) cube, got shape {data.shape}")
    if data.shape[-1] == len(BANDS) and min(data.shape[:2]) > len(BANDS):
        raise BadRecord(
            "bad_shape",
            f"cube has shape {data.shape}: the bands are on the last axis; expected "
            f"({len(BANDS)}, ny, nx) as the cutout service writes it "
            "(np.moveaxis(cube, -1, 0) converts it)",
        )
    if data.shape[0] < len(BANDS):
        raise BadRecord("missing_band", f"{data.shape[0]} plane(s), expected 3 (g, r, z)")
    planes = band_planes(header, data.shape[0])
    stamp = check_stamp(center_crop(data[planes]), limits if limits is not None else Limits())
    psf = None
    if psf_raw is not None:
        psf_header, psf_data = psf_raw
        if psf_data is None or psf_data.ndim != 3 or psf_data.shape[0] < len(BANDS):
            shape = None if psf_data is None else psf_data.shape
            raise BadRecord("bad_psf", f"{psf_hdu} HDU must be a (3, K, K) stack, got {shape}")
        psf = check_psf_images(psf_data[band_planes(psf_header, psf_data.shape[0])])
    return stamp, header, psf


def _psf_hdu(hdul: fits.HDUList, name: str | None) -> tuple[fits.Header, np.ndarray | None] | None:
    """Header and data of the HDU called ``name`` (None if absent or ``name`` is None)."""
    if name is None or name not in hdul:
        return None
    ext = hdul[name]
    return ext.header.copy(), None if ext.data is None else np.array(ext.data)


class FitsSource:
    """Parent galaxies from a directory of cutout FITS files (see module docstring).

    Parameters
    ----------
    directory : str or Path
        Folder holding the cutouts.
    cfg : FitsConfig
        File pattern, side table, defaults and chunk size.
    context : ReaderContext, optional
        Catalog limits and the model PSF's Moffat beta (defaults: :class:`ReaderContext`).

    Raises
    ------
    SourceError
        The directory does not exist, no file matches the pattern, or the side table is
        unreadable.
    """

    def __init__(
        self,
        directory: str | Path,
        cfg: FitsConfig | None = None,
        context: ReaderContext | None = None,
    ):
        self.directory = Path(directory)
        self.cfg = cfg if cfg is not None else FitsConfig()  # validated once, at config load
        self.context = context if context is not None else ReaderContext()
        self.limits = self.context.limits
        if not self.directory.is_dir():
            raise SourceError(f"FITS directory not found: {self.directory}")
        # Every match but directories: dangling or looping symlinks and FIFOs are kept, so that
        # they are recorded as rejects (unreadable_file) and counted, never skipped silently.
        self._files = sorted(
            p for p in self.directory.glob(self.cfg.pattern) if p.is_symlink() or not p.is_dir()
        )
        if not self._files:
            raise SourceError(f"no files matching {self.cfg.pattern!r} in {self.directory}")
        if self.cfg.extra_columns and not self.cfg.side_table:
            raise SourceError("input.fits.extra_columns needs input.fits.side_table")
        self._side = (
            load_side_table(self.cfg.side_table, self.cfg.extra_columns)
            if self.cfg.side_table
            else {}
        )

    def info(self) -> SourceInfo:
        """Kind, directory, chunk count and the defaults in use."""
        return SourceInfo(
            kind="fits",
            path=str(self.directory),
            n_chunks=self.n_chunks(),
            extra={
                "n_files": len(self._files),
                "pattern": self.cfg.pattern,
                "side_table": self.cfg.side_table,
                "side_table_rows": len(self._side),
                "default_psfsize_arcsec": dict(zip(BANDS, self.cfg.psfsize_arcsec, strict=True)),
                "missing_depth": self.cfg.missing_depth,
                "files_per_chunk": self.cfg.files_per_chunk,
                "psf_hdu": self.cfg.psf_hdu,
            },
        )

    def n_chunks(self) -> int:
        """Number of chunks (groups of ``files_per_chunk`` files)."""
        return -(-len(self._files) // self.cfg.files_per_chunk)

    def chunk_files(self, chunk: int) -> list[Path]:
        """The files of chunk ``chunk``, in order."""
        if not 0 <= chunk < self.n_chunks():
            raise IndexError(f"chunk {chunk} out of range (0..{self.n_chunks() - 1})")
        n = self.cfg.files_per_chunk
        return self._files[chunk * n : (chunk + 1) * n]

    def read_chunk(self, chunk: int) -> Iterator[ParentRecord | Rejection]:
        """Yield a record or rejection for every file of chunk ``chunk``, in sorted order."""
        files = self.chunk_files(chunk)
        yield from self.read(chunk, range(len(files)))

    def read(self, chunk: int, rows: Sequence[int]) -> Iterator[ParentRecord | Rejection]:
        """Yield only files ``rows`` (positions inside chunk ``chunk``), in the given order."""
        files = self.chunk_files(chunk)
        rows = [int(r) for r in rows]
        bad = [r for r in rows if not 0 <= r < len(files)]
        if bad:
            raise IndexError(f"rows {bad[:5]} out of range for chunk {chunk} ({len(files)} files)")
        for row in rows:
            yield self._read_file(files[row], chunk, row)

    def _catalog(self, path: Path, header: fits.Header, stamp: np.ndarray) -> dict[str, float]:
        side = self._side.get(path.stem) or self._side.get(path.name) or {}
        catalog: dict[str, object] = {f: side.get(f) for f in CATALOG_FIELDS}
        for b, default in zip(BANDS, self.cfg.psfsize_arcsec, strict=True):
            if catalog[f"psfsize_{b}"] is None:
                catalog[f"psfsize_{b}"] = float(default)
        if catalog["ra"] is None or catalog["dec"] is None:
            ra, dec = header_radec(header)
            catalog["ra"] = catalog["ra"] if catalog["ra"] is not None else ra
            catalog["dec"] = catalog["dec"] if catalog["dec"] is not None else dec
        fill_missing_depths(
            catalog,
            stamp,
            moffat_beta=self.context.moffat_beta,
            annulus_inner_pix=self.cfg.annulus_inner_pix,
            mode=self.cfg.missing_depth,
        )
        return check_catalog(catalog, self.limits)

    def _read_file(self, path: Path, chunk: int, row: int) -> ParentRecord | Rejection:
        location = f"{path.relative_to(self.directory).as_posix()}:chunk={chunk}:row={row}"
        gid = ""
        try:
            gid = check_galaxy_id(path.stem)
            stamp, header, psf = read_cutout_and_psf(
                path, self.cfg.hdu, self.limits, self.cfg.psf_hdu
            )
            catalog = self._catalog(path, header, stamp)
        except BadRecord as exc:
            return Rejection(gid, location, exc.reason, stage="read", detail=exc.detail)
        meta: dict[str, Any] = {}
        if self.cfg.extra_columns:
            side = self._side.get(path.stem) or self._side.get(path.name) or {}
            empty = dict.fromkeys(self.cfg.extra_columns)
            meta["extra"] = side.get("extra", empty)
        return ParentRecord(
            gid, stamp, catalog, location, chunk=chunk, row=row, psf_images=psf, meta=meta
        )
