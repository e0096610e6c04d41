"""PSF information a parent input may carry: PSF images per band, or Moffat indices per band.

* **PSF images** (Parquet column ``input.parquet.psf_column``, default ``psf``; FITS image HDU
  ``input.fits.psf_hdu``, default ``PSF``): a ``(3, K, K)`` g, r, z stack, K odd and at most
  :data:`MAX_PSF_SIZE_PIX`, centred on pixel ``(K // 2, K // 2)``, at the stamp's 0.262"
  pixels. In Parquet either a flat list of ``3 * K * K`` floats in C order (band, row,
  column) or a nested ``[3][K][K]`` list; a null value means "no PSF for this row".
  :func:`check_psf_images` validates and normalises them; the injected arc is convolved with
  them (``psf_model: supplied``).
* **Moffat indices** (Parquet columns ``psf_beta_g``, ``psf_beta_r``, ``psf_beta_z``, as the
  synthetic sky writes them): the arc's Moffat uses them instead of ``psf.moffat_beta``.

Anything malformed raises :class:`~builder.validate.BadRecord` ``bad_psf`` with the reason, so
the row becomes a recorded rejection.
"""

from __future__ import annotations

import math

import numpy as np

from builder.inject.psf import MAX_KERNEL_RADIUS_PIX
from builder.psfmodel import MIN_MOFFAT_BETA
from builder.validate import BadRecord
from shards.schema import BANDS, STAMP_SIZE_PIX

MAX_PSF_SIZE_PIX = min(2 * MAX_KERNEL_RADIUS_PIX + 1, STAMP_SIZE_PIX - 1)
"""Largest accepted PSF image side, pixels (odd, no larger than the stamp): 63."""

PSF_BETA_COLUMNS: tuple[str, ...] = tuple(f"psf_beta_{b}" for b in BANDS)
"""Optional Parquet columns with the per-band Moffat index of each row's PSF."""


def check_psf_images(value: object) -> np.ndarray:
    """Validate supplied PSF images and normalise each band to unit sum.

    Parameters
    ----------
    value : array-like
        ``(3, K, K)`` array or nested list, or a flat sequence of ``3 * K * K`` values in C order.

    Returns
    -------
    np.ndarray
        float64 ``(3, K, K)``, each band summing to 1.

    Raises
    ------
    BadRecord
        ``bad_psf``: not numeric, wrong shape or length, K even or larger than
        :data:`MAX_PSF_SIZE_PIX`, a non-finite value, or a band whose sum is not positive.
    """
    try:
        psf = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # ragged nested lists, strings
        raise BadRecord("bad_psf", f"PSF is not a numeric (3, K, K) array: {exc}") from None
    n_bands = len(BANDS)
    if psf.ndim == 1:
        side = math.isqrt(psf.size // n_bands) if psf.size else 0
        if side == 0 or n_bands * side * side != psf.size:
            raise BadRecord(
                "bad_psf", f"flat PSF has {psf.size} values, not 3 * K * K for an odd K"
            )
        psf = psf.reshape(n_bands, side, side)
    if psf.ndim != 3 or psf.shape[0] != n_bands or psf.shape[1] != psf.shape[2]:
        raise BadRecord("bad_psf", f"PSF must have shape (3, K, K), got {psf.shape}")
    side = psf.shape[1]
    if side % 2 == 0:
        raise BadRecord("bad_psf", f"PSF side K = {side} is even; it must be odd (centre pixel)")
    if side > MAX_PSF_SIZE_PIX:
        raise BadRecord("bad_psf", f"PSF side K = {side} exceeds {MAX_PSF_SIZE_PIX} pixels")
    if not np.isfinite(psf).all():
        raise BadRecord("bad_psf", "PSF has non-finite values")
    sums = psf.sum(axis=(1, 2))
    bad = [b for b, s in zip(BANDS, sums, strict=True) if not s > 0]
    if bad:
        raise BadRecord("bad_psf", f"PSF band(s) {','.join(bad)} do not have a positive sum")
    return psf / sums[:, None, None]


def check_psf_beta(values: list[object]) -> tuple[float, float, float] | None:
    """Per-band Moffat indices of one row: None if all are null, else three valid floats.

    Raises
    ------
    BadRecord
        ``bad_psf``: some but not all null, not a number, not finite or not > 1.1.
    """
    if all(v is None for v in values):
        return None
    out = []
    for band, v in zip(BANDS, values, strict=True):
        try:
            beta = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadRecord("bad_psf", f"psf_beta_{band} = {v!r} is not a number") from None
        if not (math.isfinite(beta) and beta > MIN_MOFFAT_BETA):
            raise BadRecord(
                "bad_psf", f"psf_beta_{band} = {v!r}; a Moffat index must be > {MIN_MOFFAT_BETA}"
            )
        out.append(beta)
    return (out[0], out[1], out[2])
