"""The stamp files of ``injection.source.model: stamps``: listing, reading, checking, caching.

Each FITS file is one galaxy (a 2-D image or a ``(3, ny, nx)`` g, r, z cube); its pixel scale and
AB zero point come from the header (:data:`SCALE_KEYS` or a WCS, :data:`ZP_KEYS` or HST
PHOTFLAM/PHOTPLAM), else the config (:class:`~.stamps.StampsConfig`), and disagreeing values are
an error naming the key and the file. The light model itself is :mod:`~.stamps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from builder.photometry import AB_ZEROPOINT_MAG
from common.configio import ConfigError, check
from shards.schema import BANDS

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.source_light.stamps import StampsConfig


#: File name endings read from ``injection.source.stamps.dir`` (not recursive, sorted by name).
FITS_SUFFIXES: tuple[str, ...] = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
#: Header keywords of the pixel scale (arcsec) and the AB zero point, tried in order.
SCALE_KEYS: tuple[str, ...] = ("PIXSCALE", "PIXSCAL", "PIXSCAL1")
ZP_KEYS: tuple[str, ...] = ("MAGZP", "MAGZPT", "ZP", "ZEROPT", "PHOTZP")
#: The adaptive renderer always supersamples within the radius enclosing this flux fraction.
CORE_FLUX_FRACTION = 0.99


@dataclass(frozen=True)
class Stamp:
    """One validated stamp: unit-normalised planes and their geometry.

    Attributes
    ----------
    name : str
        File name (recorded as ``source_stamp_file``).
    units : np.ndarray
        float32 ``(n_planes, ny + 2, nx + 2)`` surface brightness per plane, arcsec^-2,
        integrating to 1, padded with a ring of zeros (the bilinear ramp beyond the edge).
    scale_arcsec : float
        Pixel scale, arcsec.
    anchor_pix : tuple[float, float]
        Flux-weighted centroid (column, row), unpadded pixel coordinates.
    band_flux_ratio : np.ndarray
        ``(3,)`` g, r, z flux relative to r (cubes; ones for a 2-D stamp).
    native_mag_r : float or None
        AB magnitude of the (r) plane from its zero point; None without one.
    hlr_arcsec, core_arcsec : float
        Radii about the anchor enclosing half and :data:`CORE_FLUX_FRACTION` of the flux.
    """

    name: str
    units: np.ndarray = field(repr=False)
    scale_arcsec: float
    anchor_pix: tuple[float, float]
    band_flux_ratio: np.ndarray = field(repr=False)
    native_mag_r: float | None
    hlr_arcsec: float
    core_arcsec: float


def _header_scale(header: Any, key: str, name: str) -> float | None:
    """Pixel scale from ``SCALE_KEYS`` or a celestial WCS (square pixels), arcsec; else None."""
    for k in SCALE_KEYS:
        if k in header:
            return float(header[k])
    from astropy.wcs import WCS  # noqa: PLC0415  (only for stamps without PIXSCALE)
    from astropy.wcs.utils import proj_plane_pixel_scales  # noqa: PLC0415

    try:
        wcs = WCS(header, naxis=2)
    except Exception:  # noqa: BLE001  (a broken WCS is "no scale in the header")
        return None
    if not wcs.has_celestial:
        return None
    sx, sy = (float(v) * 3600.0 for v in proj_plane_pixel_scales(wcs.celestial))  # deg
    check(abs(sx - sy) <= 0.01 * max(sx, sy), key, f"{name}: non-square WCS pixels ({sx}, {sy})")
    return math.sqrt(sx * sy)


def _header_zp(header: Any, band: str | None) -> float | None:
    """AB zero point from ``MAGZP_<BAND>``, ``ZP_KEYS`` or HST PHOTFLAM/PHOTPLAM; else None."""
    for k in ((f"MAGZP_{band.upper()}",) if band else ()) + ZP_KEYS:
        if k in header:
            return float(header[k])
    if "PHOTFLAM" in header and "PHOTPLAM" in header:  # HST: AB ZP from the inverse sensitivity
        flam, plam = float(header["PHOTFLAM"]), float(header["PHOTPLAM"])
        return -2.5 * math.log10(flam) - 5.0 * math.log10(plam) - 2.408
    return None


def _pick(header: float | None, config: float | None, tol: float, key: str, name: str) -> Any:
    """The header value, else the config one; both given and further apart than ``tol``: error."""
    if header is not None and config is not None and abs(header - config) > tol:
        raise ConfigError(key, f"{name}: header value {header:g} disagrees with {config:g}")
    return header if header is not None else config


def _radii(plane: np.ndarray, anchor: tuple[float, float], scale: float) -> tuple[float, float]:
    """Radii about ``anchor`` enclosing 1/2 and ``CORE_FLUX_FRACTION`` (+1.5 pixels), arcsec."""
    rows, cols = np.indices(plane.shape)
    r = np.hypot(cols - anchor[0], rows - anchor[1]).ravel()
    order = np.argsort(r)
    cum = np.cumsum(plane.ravel()[order]) / plane.sum()
    r50, r_core = np.interp([0.5, CORE_FLUX_FRACTION], cum, r[order])
    return max(float(r50), 0.5) * scale, (float(r_core) + 1.5) * scale


def read_stamp(path: Path, cfg: StampsConfig, prefix: str) -> Stamp:
    """Read and validate one FITS stamp (errors name ``{prefix}.<key>`` and the file)."""
    from astropy.io import fits  # noqa: PLC0415

    key, name = f"{prefix}.dir", path.name
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim >= 2), None)
            check(hdu is not None, key, f"{name}: no HDU holds a 2-D image or a (3, ny, nx) cube")
            data = np.asarray(hdu.data, dtype=np.float64)
            header = hdul[0].header.copy()
            header.update(hdu.header)
    except OSError as exc:
        raise ConfigError(key, f"{name}: cannot read FITS ({exc})") from None
    shape_ok = data.ndim == 2 or (data.ndim == 3 and data.shape[0] == len(BANDS))
    check(shape_ok, key, f"{name}: need a 2-D image or a (3, ny, nx) cube, got {data.shape}")
    check(min(data.shape[-2:]) >= 3, key, f"{name}: smaller than 3 x 3 pixels ({data.shape})")
    planes = data[None] if data.ndim == 2 else data
    check(bool(np.isfinite(planes).all()), key, f"{name}: non-finite pixels (NaN or inf)")
    planes = np.maximum(planes, 0.0) if cfg.clip_negative else planes
    sums = planes.sum(axis=(1, 2))
    check(bool((sums > 0).all()), key, f"{name}: pixel sum must be > 0 (got {sums.tolist()})")
    scale_key, zp_key = f"{prefix}.pixel_scale_arcsec", f"{prefix}.zero_point_mag"
    config_scale = cfg.pixel_scale_arcsec
    tol = 0.01 * (config_scale or 0.0)
    scale = _pick(_header_scale(header, scale_key, name), config_scale, tol, scale_key, name)
    check(scale is not None, scale_key, f"{name}: no PIXSCALE or WCS in the header; set the key")
    check(0 < scale <= 1.0, scale_key, f"{name}: pixel scale {scale:g} not in (0, 1] arcsec")
    bands = BANDS if planes.shape[0] > 1 else (None,)
    zps = [_pick(_header_zp(header, b), cfg.zero_point_mag, 0.01, zp_key, name) for b in bands]
    r = BANDS.index("r") if planes.shape[0] > 1 else 0
    zp_arr = np.asarray([AB_ZEROPOINT_MAG if z is None else z for z in zps])
    nmgy = sums * 10.0 ** (-0.4 * (zp_arr - AB_ZEROPOINT_MAG))  # relative unless the ZPs are known
    ratio = nmgy / nmgy[r] if planes.shape[0] > 1 else np.ones(len(BANDS))
    native = None if zps[r] is None else float(zps[r] - 2.5 * math.log10(sums[r]))
    total = planes.sum(axis=0)
    rows, cols = np.indices(total.shape)
    anchor = (float((cols * total).sum() / total.sum()), float((rows * total).sum() / total.sum()))
    units = np.zeros((planes.shape[0], planes.shape[1] + 2, planes.shape[2] + 2), np.float32)
    units[:, 1:-1, 1:-1] = planes / (sums[:, None, None] * scale * scale)
    units.setflags(write=False)
    hlr = _radii(planes[r], anchor, scale)[0]
    core = max(_radii(p, anchor, scale)[1] for p in planes)
    return Stamp(name, units, float(scale), anchor, ratio, native, hlr, core)


#: Stamps kept in memory per process (each draw reads only the file it picks).
STAMP_CACHE_SIZE = 512


@lru_cache(maxsize=8)
def stamp_files(directory: str, prefix: str = "injection.source.stamps") -> tuple[Path, ...]:
    """The FITS files of ``directory``, sorted by name (listed once per process)."""
    key = f"{prefix}.dir"
    check(bool(directory), key, "required when injection.source.model is 'stamps'")
    path = Path(directory).expanduser()
    check(path.is_dir(), key, f"not a directory: {directory!r}")
    files = sorted(
        p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(FITS_SUFFIXES)
    )
    check(bool(files), key, f"no FITS file ({', '.join(FITS_SUFFIXES)}) in {directory!r}")
    return tuple(files)


@lru_cache(maxsize=8)
def validate_stamp_dir(cfg: StampsConfig, prefix: str = "injection.source.stamps") -> int:
    """Read and check every stamp of ``cfg.dir`` once (none is kept); returns their number."""
    files = stamp_files(cfg.dir, prefix)
    for path in files:
        read_stamp(path, cfg, prefix)
    return len(files)


@lru_cache(maxsize=STAMP_CACHE_SIZE)
def cached_stamp(path: Path, cfg: StampsConfig, prefix: str) -> Stamp:
    """:func:`read_stamp`, keeping the last :data:`STAMP_CACHE_SIZE` stamps in memory."""
    return read_stamp(path, cfg, prefix)


def load_stamps(cfg: StampsConfig, prefix: str = "injection.source.stamps") -> tuple[Stamp, ...]:
    """All stamps of ``cfg.dir``, validated, sorted by file name."""
    return tuple(cached_stamp(p, cfg, prefix) for p in stamp_files(cfg.dir, prefix))
