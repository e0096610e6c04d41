"""One-time notices when a build falls back to defaults for physical inputs.

A default PSF FWHM is used to convolve every arc of a parent that has none, a Moffat model PSF
(index ``psf.moffat_beta``) for every parent that brings no PSF image, and a depth estimated
from the stamp sets its noise level: assumptions a user must know about. The readers
report what they found (``SourceInfo.extra``); :func:`input_notices` turns that into one line
per assumption, which ``builder make-shards`` prints once (``builder: note: ...``). A table maps
each parent kind to its notice function; a kind without one has no notices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NoticeFn = Callable[[Mapping[str, Any], float], list[str]]
NOTICES: dict[str, NoticeFn] = {}
"""Parent kind -> ``f(source extra, moffat_beta) -> notices``."""


def register_notices(kind: str) -> Callable[[NoticeFn], NoticeFn]:
    """Decorator registering the notice function of parent kind ``kind``."""

    def deco(fn: NoticeFn) -> NoticeFn:
        NOTICES[kind] = fn
        return fn

    return deco


def input_notices(source: Mapping[str, Any], moffat_beta: float) -> list[str]:
    """The notices for a source description (``kind`` and ``extra`` of the manifest's source)."""
    fn = NOTICES.get(str(source.get("kind")))
    return fn(source.get("extra") or {}, moffat_beta) if fn else []


@register_notices("fits")
def _fits(extra: Mapping[str, Any], moffat_beta: float) -> list[str]:
    psf = extra.get("default_psfsize_arcsec") or {}
    fwhm = ", ".join(f"{b} {v:g}" for b, v in psf.items())
    hdu = f"{extra['psf_hdu']} image" if extra.get("psf_hdu") else "PSF image"
    if not extra.get("side_table"):
        depth = (
            "estimated from each stamp's noise"
            if extra.get("missing_depth") == "estimate"
            else "missing, so every file is rejected (missing_depth: reject)"
        )
        return [
            f"FITS input without a side table: every arc of a cutout without a {hdu} HDU is "
            f"convolved with a Moffat PSF (beta {moffat_beta:g}; psf.moffat_beta) of the "
            f"DEFAULT FWHM ({fwhm} arcsec; input.fits.psfsize_arcsec) and psfdepth is {depth}. "
            "Give the real values with --side-table (docs/inputs.md)."
        ]
    return [
        f"FITS side table {extra.get('side_table')}: files absent from it, or with null "
        f"psfsize values, use the default FWHM ({fwhm} arcsec; input.fits.psfsize_arcsec); "
        f"cutouts without a {hdu} HDU get a Moffat PSF (beta {moffat_beta:g}; psf.moffat_beta)."
    ]


@register_notices("parquet")
def _parquet(extra: Mapping[str, Any], moffat_beta: float) -> list[str]:
    out = []
    if extra.get("psf_from") == "moffat":  # no PSF column and no per-row Moffat indices
        out.append(
            f"Parquet input has no PSF images (column input.parquet.psf_column) or psf_beta_g/r/z "
            f"columns: every arc is convolved with a Moffat PSF (beta {moffat_beta:g}; "
            "psf.moffat_beta) of the catalogue FWHM psfsize_<b> (docs/inputs.md)."
        )
    estimated = list(extra.get("estimated_columns") or [])
    if estimated:
        out.append(
            f"Parquet input lacks {', '.join(estimated)}: estimated from each stamp's noise "
            "(input.parquet.missing_depth: estimate; a few per cent low where a large host or "
            "a neighbour reaches the annulus)."
        )
    return out
