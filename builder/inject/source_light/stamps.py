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
from typing import TYPE_CHECKING, Any

import numpy as np

from builder.inject.source_colours import SourceColourPrior, SourceColours, draw_source_colours
from builder.inject.source_light.base import Photometry, SourceLight, register_source_light, uniform
from builder.inject.source_light.stamp_files import (  # noqa: F401 (re-exported)
    CORE_FLUX_FRACTION,
    FITS_SUFFIXES,
    SCALE_KEYS,
    STAMP_CACHE_SIZE,
    ZP_KEYS,
    Stamp,
    cached_stamp,
    load_stamps,
    read_stamp,
    stamp_files,
    validate_stamp_dir,
)
from builder.photometry import AB_ZEROPOINT_MAG
from common.configio import check_between
from shards.schema import BANDS

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.config import SourceConfig


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

    def validate_selected(self, prefix: str = "injection.source.stamps") -> None:
        """When ``model: stamps`` is selected, ``dir`` is required (checked at config load)."""
        stamp_files(self.dir, prefix)


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
