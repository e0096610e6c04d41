"""Spatial cells of the split schemes: HEALPix pixels of (ra, dec), and the check that none spans
two splits (used by ``builder verify``; the builder assigns splits with the same function).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

HEALPIX_ORDER = "nested"


def healpix_pixels(ra_deg: Any, dec_deg: Any, nside: int, order: str = HEALPIX_ORDER) -> np.ndarray:
    """HEALPix pixel index of each position (astropy-healpix), int64.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        ICRS positions, degrees.
    nside : int
        HEALPix resolution (a power of 2); pixel area ``4 pi / (12 nside^2)`` sr.
    order : str
        ``nested`` (default) or ``ring``.
    """
    from astropy import units as u
    from astropy_healpix import HEALPix

    ra = np.asarray(ra_deg, dtype=np.float64).reshape(-1)
    dec = np.asarray(dec_deg, dtype=np.float64).reshape(-1)
    if ra.size == 0:
        return np.zeros(0, dtype=np.int64)
    hp = HEALPix(nside=int(nside), order=order)
    return np.asarray(hp.lonlat_to_healpix(ra * u.deg, dec * u.deg), dtype=np.int64)


def healpix_pixel_area_deg2(nside: int) -> float:
    """Area of one HEALPix pixel at ``nside``, square degrees (41252.96 / (12 nside^2))."""
    return float(4.0 * np.pi * (180.0 / np.pi) ** 2 / (12 * int(nside) ** 2))


def split_scheme_problems(
    scheme: dict[str, Any], positions: Iterable[tuple[Any, Any, str, str]]
) -> list[str]:
    """Problems with a spatial split: a HEALPix pixel holding samples of two splits.

    Parameters
    ----------
    scheme : dict
        The manifest's ``split_scheme`` (``scheme``, ``nside``, ``order``); nothing is checked
        unless ``scheme`` is ``healpix``.
    positions : iterable of (ra, dec, split, where)
        Every sample's metadata ``ra``/``dec`` (degrees), its split and a name for messages.

    Returns
    -------
    list of str
        One message per pixel spanning splits (or per sample without a finite position).
    """
    if scheme.get("scheme") != "healpix":
        return []
    nside, order = scheme.get("nside"), scheme.get("order", HEALPIX_ORDER)
    if not isinstance(nside, int) or nside < 1 or nside & (nside - 1):
        return [f"manifest split_scheme has no valid healpix nside (got {nside!r})"]
    problems: list[str] = []
    ra, dec, splits, where = [], [], [], []
    for r, d, split, name in positions:
        try:
            r, d = float(r), float(d)
        except (TypeError, ValueError):
            r = d = float("nan")
        if not (np.isfinite(r) and np.isfinite(d) and -90.0 <= d <= 90.0):
            problems.append(f"{name}: no valid ra/dec in its metadata for the healpix split check")
            continue
        ra.append(r)
        dec.append(d)
        splits.append(split)
        where.append(name)
    by_pixel: dict[int, dict[str, str]] = defaultdict(dict)
    pixels = healpix_pixels(ra, dec, nside, order).tolist()
    for p, split, name in zip(pixels, splits, where, strict=True):
        by_pixel[p].setdefault(split, name)
    for p, seen in sorted(by_pixel.items()):
        if len(seen) > 1:
            examples = ", ".join(f"{s}: {n}" for s, n in sorted(seen.items()))
            problems.append(
                f"healpix pixel {p} (nside {nside}, {order}) spans splits {sorted(seen)} "
                f"(e.g. {examples})"
            )
    return problems
