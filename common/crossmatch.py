"""Known-lens catalogues (CSV with ra, dec) and sky cross-matching through astropy.

One reader, :func:`read_known_lenses`, used by the builder (``--known-lenses``: controls near a
known lens are excluded) and by scoring (``train score --known-lenses``: how many known lenses a
threshold recovers). One matcher, :func:`match_within`, a thin wrapper of
:meth:`astropy.coordinates.SkyCoord.match_to_catalog_sky` (a KD-tree on the unit sphere).

The CSV has a header line; column names are matched case-insensitively. Required: ``ra`` and
``dec`` in degrees (ICRS). Optional: ``name`` and ``grade`` (free text, e.g. ``confident`` /
``probable``). Lines starting with ``#`` are comments. Other columns are ignored.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

__all__ = ["KnownLensError", "KnownLenses", "match_coords", "match_within", "read_known_lenses"]

RA_COLUMNS = ("ra", "ra_deg")
DEC_COLUMNS = ("dec", "dec_deg")
NAME_COLUMN = "name"
GRADE_COLUMN = "grade"


class KnownLensError(ValueError):
    """A known-lens catalogue that cannot be read; the message names the file (and column/line).

    Callers turn it into their package's user-facing error (``SourceError`` in ``builder``).
    """


@dataclasses.dataclass(frozen=True)
class KnownLenses:
    """Positions (and optional names and grades) of known lenses.

    Attributes
    ----------
    ra_deg, dec_deg : numpy.ndarray
        ICRS coordinates in degrees, float64, shape ``(n,)``.
    name : numpy.ndarray or None
        Object names (``str``), or None when the file has no ``name`` column.
    grade : numpy.ndarray or None
        Grades as written (``str``, stripped; ``""`` where blank), or None without a ``grade``
        column.
    path : str
        The file they were read from ("" when built in memory).
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    name: np.ndarray | None = None
    grade: np.ndarray | None = None
    path: str = ""

    def __post_init__(self) -> None:
        ra = np.asarray(self.ra_deg, dtype=np.float64).reshape(-1)
        dec = np.asarray(self.dec_deg, dtype=np.float64).reshape(-1)
        if ra.shape != dec.shape:
            raise ValueError(f"ra_deg and dec_deg differ in length ({ra.size} vs {dec.size})")
        object.__setattr__(self, "ra_deg", ra)
        object.__setattr__(self, "dec_deg", dec)
        for field in ("name", "grade"):
            val = getattr(self, field)
            if val is not None:
                val = np.asarray(val, dtype=str).reshape(-1)
                if val.size != ra.size:
                    raise ValueError(f"{field} has {val.size} entries for {ra.size} positions")
                object.__setattr__(self, field, val)

    def __len__(self) -> int:
        return int(self.ra_deg.size)


def _pick(header: dict[str, str], candidates: tuple[str, ...], path: Path, what: str) -> str:
    for c in candidates:
        if c in header:
            return header[c]
    have = ", ".join(header.values()) or "(none)"
    raise KnownLensError(
        f"{path}: no {what} column (expected one of {', '.join(candidates)}; columns: {have})"
    )


def _float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise KnownLensError(
            f"{path}: line {line}: column {column!r} is not a number ({text!r})"
        ) from None
    if not math.isfinite(value):
        raise KnownLensError(f"{path}: line {line}: column {column!r} is not finite ({text!r})")
    return value


def read_known_lenses(path: str | Path) -> KnownLenses:
    """Read a known-lens CSV (``ra``, ``dec`` in degrees; optional ``name``, ``grade``).

    Parameters
    ----------
    path : str or pathlib.Path
        CSV file with a header line. Column names are case-insensitive; ``ra_deg``/``dec_deg``
        are accepted for ``ra``/``dec``. ``#`` lines and blank lines are skipped.

    Returns
    -------
    KnownLenses

    Raises
    ------
    KnownLensError
        Missing file, no header, a missing ``ra``/``dec`` column, a value that is not a finite
        number, ``ra`` outside [0, 360) or ``dec`` outside [-90, 90]. The message names the file,
        the column and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise KnownLensError(f"{path}: known-lens file not found")
    with open(path, newline="", encoding="utf-8") as fh:
        lines = [
            (i, ln) for i, ln in enumerate(fh, start=1) if ln.strip() and not ln.startswith("#")
        ]
    if not lines:
        raise KnownLensError(f"{path}: empty file (expected a header line with ra, dec)")
    reader = csv.reader(ln for _, ln in lines)
    fields = [f.strip() for f in next(reader)]
    header = {f.lower(): f for f in fields}
    ra_col = _pick(header, RA_COLUMNS, path, "ra")
    dec_col = _pick(header, DEC_COLUMNS, path, "dec")
    idx = {f: j for j, f in enumerate(fields)}
    name_col = header.get(NAME_COLUMN)
    grade_col = header.get(GRADE_COLUMN)
    ra, dec, names, grades = [], [], [], []
    for (line, _), row in zip(lines[1:], reader, strict=True):
        if len(row) != len(fields):
            raise KnownLensError(
                f"{path}: line {line}: {len(row)} fields, header has {len(fields)}"
            )
        r = _float(row[idx[ra_col]], path, line, ra_col)
        d = _float(row[idx[dec_col]], path, line, dec_col)
        if not 0.0 <= r < 360.0:
            raise KnownLensError(f"{path}: line {line}: column {ra_col!r} = {r} not in [0, 360)")
        if not -90.0 <= d <= 90.0:
            raise KnownLensError(f"{path}: line {line}: column {dec_col!r} = {d} not in [-90, 90]")
        ra.append(r)
        dec.append(d)
        if name_col is not None:
            names.append(row[idx[name_col]].strip())
        if grade_col is not None:
            grades.append(row[idx[grade_col]].strip())
    return KnownLenses(
        ra_deg=np.array(ra, dtype=np.float64),
        dec_deg=np.array(dec, dtype=np.float64),
        name=np.array(names, dtype=str) if name_col is not None else None,
        grade=np.array(grades, dtype=str) if grade_col is not None else None,
        path=str(path),
    )


def match_coords(
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    cat_ra_deg: np.ndarray,
    cat_dec_deg: np.ndarray,
    radius_arcsec: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest catalogue entry of each position, kept when it lies within ``radius_arcsec``.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        Positions to match, degrees (ICRS), shape ``(n,)``.
    cat_ra_deg, cat_dec_deg : array_like
        Catalogue positions, degrees, shape ``(m,)``; may be empty.
    radius_arcsec : float
        Match radius, arcsec (>= 0; a separation equal to the radius matches).

    Returns
    -------
    index : numpy.ndarray of int64, shape ``(n,)``
        Index into the catalogue of the nearest entry, or -1 where it is farther than the radius
        (or the catalogue is empty).
    separation_arcsec : numpy.ndarray of float64, shape ``(n,)``
        Angular distance to the nearest catalogue entry, arcsec, whether or not it matched
        (``inf`` for an empty catalogue).
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if not (radius_arcsec >= 0 and math.isfinite(radius_arcsec)):
        raise ValueError(f"radius_arcsec must be a finite number >= 0 (got {radius_arcsec})")
    ra = np.asarray(ra_deg, dtype=np.float64).reshape(-1)
    dec = np.asarray(dec_deg, dtype=np.float64).reshape(-1)
    cra = np.asarray(cat_ra_deg, dtype=np.float64).reshape(-1)
    cdec = np.asarray(cat_dec_deg, dtype=np.float64).reshape(-1)
    if ra.shape != dec.shape or cra.shape != cdec.shape:
        raise ValueError("ra and dec arrays must have the same length")
    n = ra.size
    if n == 0 or cra.size == 0:
        return np.full(n, -1, dtype=np.int64), np.full(n, np.inf, dtype=np.float64)
    coords = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")
    catalog = SkyCoord(ra=cra * u.deg, dec=cdec * u.deg, frame="icrs")
    idx, sep2d, _ = coords.match_to_catalog_sky(catalog)
    sep = np.asarray(sep2d.to_value(u.arcsec), dtype=np.float64)
    index = np.where(sep <= radius_arcsec, np.asarray(idx, dtype=np.int64), -1)
    return index.astype(np.int64), sep


def match_within(
    ra_deg: np.ndarray, dec_deg: np.ndarray, known: KnownLenses, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Match positions to the nearest known lens within ``radius_arcsec``.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        Positions (degrees, ICRS), shape ``(n,)``.
    known : KnownLenses
        The catalogue (may be empty).
    radius_arcsec : float
        Match radius in arcsec.

    Returns
    -------
    index : numpy.ndarray of int64
        Index of the nearest known lens, or -1 where none lies within the radius.
    separation_arcsec : numpy.ndarray of float64
        Separation to the nearest known lens, arcsec (``inf`` when ``known`` is empty).

    See Also
    --------
    match_coords : the same on plain coordinate arrays (e.g. known lenses -> scored galaxies).
    """
    return match_coords(ra_deg, dec_deg, known.ra_deg, known.dec_deg, radius_arcsec)
