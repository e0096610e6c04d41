"""Validation of parent records: every bad input becomes a named rejection reason.

Reasons (stable strings, counted in the manifest):
``corrupt_stamp``, ``bad_shape``, ``missing_band``, ``nonfinite_pixels``, ``zero_band``,
``missing_catalog``, ``nonfinite_catalog``, ``bad_psfsize``, ``bad_psfdepth``,
``duplicate_galaxy_id``, ``unreadable_file``, ``bad_galaxy_id``, ``injection_failed``,
``bad_radec`` (ra outside [0, 360] or dec outside [-90, 90] degrees), ``implausible_pixels``
(a pixel beyond ``Limits.max_abs_pixel_nmgy``), ``float16_overflow`` (a value that float16
storage cannot hold, found before the sample is written), ``bad_psf`` (a supplied PSF image
or Moffat index that is malformed: :mod:`builder.parents.psf_input`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from builder.errors import BuilderError
from shards.schema import BANDS, CATALOG_FIELDS, MAX_ABS_PIXEL_NMGY, STAMP_SHAPE, STAMP_SIZE_PIX

REASONS: tuple[str, ...] = (
    "corrupt_stamp",
    "bad_shape",
    "missing_band",
    "nonfinite_pixels",
    "zero_band",
    "missing_catalog",
    "nonfinite_catalog",
    "bad_psfsize",
    "bad_psfdepth",
    "duplicate_galaxy_id",
    "unreadable_file",
    "bad_galaxy_id",
    "injection_failed",
    "bad_radec",
    "implausible_pixels",
    "float16_overflow",
    "bad_psf",
)

FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


@dataclass(frozen=True)
class Limits:
    """Plausibility limits for catalog values.

    Attributes
    ----------
    psfsize_arcsec : tuple[float, float]
        Accepted PSF FWHM range in arcsec (DR10 typical 1.1-1.6; default 0.5-4.0).
    psfdepth_invnmgy2 : tuple[float, float]
        Accepted point-source inverse variance range, 1/nanomaggy^2. 1 corresponds to a
        5-sigma depth of 20.75 mag, 1e6 to 35.75 mag; DR10 is ~ 1e2-1e4.
    max_abs_pixel_nmgy : float
        Largest plausible |pixel| in nanomaggies per 0.262" pixel (default 1e5, AB 10.0 mag in
        one pixel, see :data:`shards.schema.MAX_ABS_PIXEL_NMGY`); beyond it a stamp is corrupt.
    """

    psfsize_arcsec: tuple[float, float] = (0.5, 4.0)
    psfdepth_invnmgy2: tuple[float, float] = (1.0, 1.0e6)
    max_abs_pixel_nmgy: float = MAX_ABS_PIXEL_NMGY


class BadRecord(BuilderError):
    """Raised by the checks below; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def check_stamp(stamp: np.ndarray, limits: Limits = Limits()) -> np.ndarray:
    """Return the stamp as C-contiguous float32 (3, 64, 64) or raise :class:`BadRecord`.

    Pixels must be finite, no band all zero, and every |pixel| at most
    ``limits.max_abs_pixel_nmgy`` (``implausible_pixels``).
    """
    arr = np.asarray(stamp)
    if arr.shape != STAMP_SHAPE:
        raise BadRecord("bad_shape", f"expected {STAMP_SHAPE}, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise BadRecord("corrupt_stamp", f"expected floating pixels, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = [BANDS[b] for b in range(arr.shape[0]) if not finite[b].all()]
        raise BadRecord("nonfinite_pixels", f"NaN/inf pixels in band(s) {','.join(bad)}")
    peak = float(np.abs(arr).max())
    if peak > limits.max_abs_pixel_nmgy:
        raise BadRecord(
            "implausible_pixels",
            f"|pixel| {peak:.3g} nmgy above the plausible {limits.max_abs_pixel_nmgy:g} "
            "(rejects.max_abs_pixel_nmgy)",
        )
    for b, band in enumerate(BANDS):
        if not np.any(arr[b]):
            raise BadRecord("zero_band", f"band {band} is all zero")
    return arr


def check_catalog(catalog: Mapping[str, object], limits: Limits = Limits()) -> dict[str, float]:
    """Return the catalog values as floats or raise :class:`BadRecord`."""
    out: dict[str, float] = {}
    for name in CATALOG_FIELDS:
        if name not in catalog or catalog[name] is None:
            raise BadRecord("missing_catalog", f"no value for {name}")
        if isinstance(catalog[name], bool | np.bool_):
            raise BadRecord(
                "nonfinite_catalog", f"{name}={catalog[name]!r} is a boolean, not a number"
            )
        try:
            v = float(catalog[name])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise BadRecord(
                "nonfinite_catalog", f"{name}={catalog[name]!r} is not a number"
            ) from None
        if not np.isfinite(v):
            raise BadRecord("nonfinite_catalog", f"{name}={v}")
        out[name] = v
    lo, hi = limits.psfsize_arcsec
    for b in BANDS:
        v = out[f"psfsize_{b}"]
        if not lo <= v <= hi:
            raise BadRecord("bad_psfsize", f"psfsize_{b}={v} arcsec outside [{lo}, {hi}]")
    lo, hi = limits.psfdepth_invnmgy2
    for b in BANDS:
        v = out[f"psfdepth_{b}"]
        if not lo <= v <= hi:
            raise BadRecord("bad_psfdepth", f"psfdepth_{b}={v} 1/nmgy^2 outside [{lo}, {hi}]")
    if not (0.0 <= out["ra"] <= 360.0):
        raise BadRecord("bad_radec", f"ra={out['ra']} deg outside [0, 360]")
    if not (-90.0 <= out["dec"] <= 90.0):
        raise BadRecord("bad_radec", f"dec={out['dec']} deg outside [-90, 90]")
    return out


def storage_overflow(values: Mapping[str, object], dtype: str) -> str | None:
    """Why the array values of a sample cannot be stored in ``dtype``, or ``None`` if they can.

    float16 holds |x| <= 65504; a larger finite value would become inf in the shard. Checked
    before writing, so one bright pixel is a ``float16_overflow`` rejection of its row instead of
    an error that stops the build.
    """
    if dtype != "float16":
        return None
    for name, value in values.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
            peak = float(np.abs(value).max())
            if peak > FLOAT16_MAX:
                return f"{name}: |value| {peak:.6g} exceeds the float16 maximum {FLOAT16_MAX:g}"
    return None


def check_galaxy_id(galaxy_id: object) -> str:
    """Return the id as a non-empty string or raise :class:`BadRecord`."""
    if galaxy_id is None:
        raise BadRecord("bad_galaxy_id", "missing galaxy id")
    gid = str(galaxy_id).strip()
    if not gid or gid.lower() in {"nan", "none"}:
        raise BadRecord("bad_galaxy_id", f"unusable galaxy id {galaxy_id!r}")
    return gid


def center_crop(image: np.ndarray, size: int = STAMP_SIZE_PIX) -> np.ndarray:
    """Crop the last two axes to ``size`` x ``size`` starting at ``(n - size) // 2``.

    Raises
    ------
    BadRecord
        ``bad_shape`` if an axis is smaller than ``size``.
    """
    ny, nx = image.shape[-2:]
    if ny < size or nx < size:
        raise BadRecord("bad_shape", f"cutout is {ny}x{nx}, smaller than {size}x{size}")
    y0, x0 = (ny - size) // 2, (nx - size) // 2
    return image[..., y0 : y0 + size, x0 : x0 + size]
