"""User-supplied source images (``injection.source.model: stamps``), e.g. HST/COSMOS stamps.

A directory of FITS files, one galaxy per file: a 2-D image, or a ``(3, ny, nx)`` g, r, z cube.
Pixel values are flux per pixel on an AB zero point. Each draw picks one stamp (uniform), rotates
it by a uniform angle about its flux-weighted centroid (placed at the drawn source position) and
rescales it to the drawn source magnitude: a 2-D stamp keeps its morphology and takes the colours
of :func:`~builder.inject.source_colours.draw_source_colours` (the clumpy model's prior: template,
redshift, dust, IGM); a cube keeps its own colours and per-band morphology (one colour component
per band) and is scaled so that its r flux is the drawn one.

Interpolation: **bilinear** on the stamp's pixel centres, zero outside, with a one-pixel ramp to
zero beyond the edge, exactly lenstronomy's ``INTERPOL`` light profile (scipy
``RectBivariateSpline(kx=1, ky=1)`` over the image padded with a ring of zeros). Bilinear rather
than bicubic because it never overshoots (no negative rings around compact clumps or noise
spikes) and its integral is exactly ``sum(pixels) x pixel area``, so a unit-normalised stamp has
unit flux. Negative pixels (sky noise) are set to 0 first (``clip_negative``).

Pixel scale and AB zero point: from the header (:data:`SCALE_KEYS` or a WCS, :data:`ZP_KEYS`
or HST PHOTFLAM/PHOTPLAM), else the config; disagreeing values are an error. The zero points set
a cube's band ratios and the recorded native magnitude. See ``docs/injection.md`` section 13.

Generator calls per draw: stamp index (1 integer), angle (1 uniform), r magnitude (1 uniform),
then ``draw_source_colours`` (template, redshift unless given, E(B-V)), for cubes too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from builder.inject.source_colours import SourceColourPrior, SourceColours, draw_source_colours
from builder.inject.source_light.base import Photometry, SourceLight, register_source_light, uniform
from builder.photometry import AB_ZEROPOINT_MAG
from common.configio import ConfigError, check, check_between
from shards.schema import BANDS

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.config import SourceConfig

#: File name endings read from ``injection.source.stamps.dir`` (not recursive, sorted by name).
FITS_SUFFIXES: tuple[str, ...] = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
#: Header keywords of the pixel scale (arcsec) and the AB zero point, tried in order.
SCALE_KEYS: tuple[str, ...] = ("PIXSCALE", "PIXSCAL", "PIXSCAL1")
ZP_KEYS: tuple[str, ...] = ("MAGZP", "MAGZPT", "ZP", "ZEROPT", "PHOTZP")
#: The adaptive renderer always supersamples within the radius enclosing this flux fraction.
CORE_FLUX_FRACTION = 0.99


@dataclass(frozen=True)
class StampsConfig:
    """The user-supplied source images (``injection.source.stamps``).

    Attributes
    ----------
    dir : str
        Directory of FITS stamps, one galaxy per file (2-D image or ``(3, ny, nx)`` g, r, z
        cube), all checked when the config is loaded, each read when first drawn. Required
        when ``injection.source.model`` is ``stamps``. Default ``""``.
    pixel_scale_arcsec : float or None
        Stamp pixel scale, arcsec, for files whose header has none (PIXSCALE or a WCS). Default
        None (every file must carry one).
    zero_point_mag : float or None
        AB zero point of the pixel values for files whose header has none (MAGZP, ZP, PHOTFLAM).
        Default None (then the native magnitude is not recorded and cube planes are taken to
        share one zero point).
    clip_negative : bool
        Set negative pixels (sky noise) to 0 before normalising. Default True.
    colours : SourceColourPrior
        Colour prior of 2-D stamps (templates, redshift range, E(B-V), IGM); cubes keep theirs.
    """

    dir: str = ""
    pixel_scale_arcsec: float | None = None
    zero_point_mag: float | None = None
    clip_negative: bool = True
    colours: SourceColourPrior = field(default_factory=SourceColourPrior)

    def validate(self, prefix: str = "injection.source.stamps") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the key (and file) of a bad value.

        A non-empty ``dir`` is read and checked here (missing directory, no FITS file, bad
        shape, non-finite pixels, non-positive sum, no pixel scale).
        """
        if self.pixel_scale_arcsec is not None:
            check_between(self.pixel_scale_arcsec, f"{prefix}.pixel_scale_arcsec", 1e-4, 1.0)
        if self.zero_point_mag is not None:
            check_between(self.zero_point_mag, f"{prefix}.zero_point_mag", 1.0, 50.0)
        self.colours.validate(f"{prefix}.colours")
        if self.dir:
            validate_stamp_dir(self, prefix)


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


@dataclass(frozen=True)
class InterpolatedProfile:
    """Bilinear interpolation of one unit-normalised stamp plane (a :class:`~.base.UnitProfile`).

    Attributes
    ----------
    stamp : Stamp
        The stamp (pixel scale, centroid, core radius).
    plane : int
        Index of the plane in :attr:`Stamp.units`.
    center : tuple[float, float]
        Source-plane position of the stamp's centroid, arcsec from the lens.
    rotation_deg : float
        Counter-clockwise rotation of the stamp on the source plane (lenstronomy ``phi_G``).
    """

    stamp: Stamp
    plane: int
    center: tuple[float, float]
    rotation_deg: float

    def unit_surface_brightness(
        self, beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray
    ) -> np.ndarray:
        """Surface brightness, arcsec^-2 (unit total flux; float32 in, float32 out)."""
        bx = np.asarray(beta_x_arcsec)
        dtype = np.float32 if bx.dtype == np.float32 else np.float64
        dx = bx.astype(np.float64) - self.center[0]
        dy = np.asarray(beta_y_arcsec, dtype=np.float64) - self.center[1]
        phi = math.radians(self.rotation_deg)
        c, s = math.cos(phi), math.sin(phi)
        # padded pixel coordinates: the centroid sits at (anchor + 1) of the zero-padded array
        u, scale, (ax, ay) = self.unit, self.stamp.scale_arcsec, self.stamp.anchor_pix
        col = (c * dx + s * dy) / scale + ax + 1.0
        row = (c * dy - s * dx) / scale + ay + 1.0
        n_rows, n_cols = u.shape
        inside = (col >= 0) & (col <= n_cols - 1) & (row >= 0) & (row <= n_rows - 1)
        j0 = np.clip(np.floor(col), 0, n_cols - 2).astype(np.intp)
        i0 = np.clip(np.floor(row), 0, n_rows - 2).astype(np.intp)
        fx, fy = np.clip(col - j0, 0.0, 1.0), np.clip(row - i0, 0.0, 1.0)
        top = u[i0, j0] * (1 - fx) + u[i0, j0 + 1] * fx
        bottom = u[i0 + 1, j0] * (1 - fx) + u[i0 + 1, j0 + 1] * fx
        return np.where(inside, top * (1 - fy) + bottom * fy, 0.0).astype(dtype, copy=False)

    @property
    def unit(self) -> np.ndarray:
        """The padded unit surface brightness of this plane, arcsec^-2."""
        return self.stamp.units[self.plane]

    def peak_unit_sb_arcsec2(self) -> float:
        """Largest pixel of the plane (bilinear never exceeds it), arcsec^-2."""
        return float(self.unit.max())

    def center_arcsec(self) -> tuple[float, float]:
        """Source-plane position of the stamp's centroid."""
        return self.center

    def core_radius_arcsec(self) -> float:
        """Radius enclosing :data:`CORE_FLUX_FRACTION` of the flux plus 1.5 stamp pixels."""
        return self.stamp.core_arcsec


@register_source_light("stamps", StampsConfig)
@dataclass(frozen=True)
class StampLight(SourceLight):
    """A user-supplied stamp, rotated, placed and scaled (one component per stamp plane).

    Attributes
    ----------
    x_arcsec, y_arcsec : float
        Source-plane position of the stamp's centroid, arcsec from the lens.
    stamp : Stamp
        The chosen stamp.
    profiles : tuple of InterpolatedProfile
        One per plane (one for a 2-D stamp, g, r, z for a cube).
    fluxes : tuple of tuple of float
        Unlensed g, r, z flux of each profile, nmgy.
    photometry : Photometry
        Drawn r magnitude, template (``"stamp"`` for a cube) and redshift.
    colours : SourceColours or None
        The drawn colours of a 2-D stamp (None for a cube).
    """

    x_arcsec: float
    y_arcsec: float
    stamp: Stamp
    profiles: tuple[InterpolatedProfile, ...]
    fluxes: tuple[tuple[float, ...], ...]
    photometry: Photometry
    colours: SourceColours | None

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        cfg: SourceConfig,
        x_arcsec: float,
        y_arcsec: float,
        redshift: float | None = None,
    ) -> StampLight:
        """Draw stamp, rotation, magnitude and colours (order in the module docstring)."""
        c: StampsConfig = cfg.section("stamps")
        files = stamp_files(c.dir)
        stamp = cached_stamp(files[int(rng.integers(len(files)))], c, "injection.source.stamps")
        angle = float(rng.uniform(0.0, 360.0))
        mag_r = uniform(rng, cfg.mag_r)
        drawn = draw_source_colours(rng, c.colours, redshift)
        total_r = 10.0 ** (-0.4 * (mag_r - AB_ZEROPOINT_MAG))
        where = (x_arcsec, y_arcsec)
        profiles = tuple(
            InterpolatedProfile(stamp, i, where, angle) for i in range(len(stamp.units))
        )
        if len(profiles) == 1:
            fluxes = (tuple(float(f) for f in drawn.flux_ratios() * total_r),)
            phot, colours = Photometry(mag_r, drawn.template, drawn.redshift), drawn
        else:
            eye = np.eye(len(BANDS)) * stamp.band_flux_ratio[:, None] * total_r
            fluxes = tuple(tuple(float(f) for f in row) for row in eye)
            phot, colours = Photometry(mag_r, "stamp", drawn.redshift), None
        return cls(x_arcsec, y_arcsec, stamp, profiles, fluxes, phot, colours)

    def components(self) -> tuple[tuple[Any, np.ndarray], ...]:
        """One (interpolated plane, its g, r, z flux) pair per stamp plane."""
        return tuple(
            (p, np.asarray(f, np.float64)) for p, f in zip(self.profiles, self.fluxes, strict=True)
        )

    def half_light_radius_arcsec(self) -> float:
        """Circular radius about the centroid enclosing half the (r) flux, arcsec."""
        return self.stamp.hlr_arcsec

    def metadata(self) -> dict[str, Any]:
        """Stamp file, planes, rotation, pixel scale, native magnitude and 2-D colours."""
        col = self.colours
        return {
            "source_model": "stamps",
            "source_stamp_file": self.stamp.name,
            "source_stamp_bands": len(self.profiles),
            "source_stamp_rotation_deg": self.profiles[0].rotation_deg,
            "source_stamp_pixel_scale_arcsec": self.stamp.scale_arcsec,
            "source_stamp_native_mag_r": self.stamp.native_mag_r,
            "source_ebv_mag": None if col is None else col.ebv_mag,
            "source_re_arcsec": self.stamp.hlr_arcsec,
        }
