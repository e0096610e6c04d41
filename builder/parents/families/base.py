"""Types shared by the hard-negative families: the host a family is drawn around, and a feature.

A *feature* is one extra light source that a family adds to a synthetic stamp (a companion, a
ring, a spiral arm, a tidal tail ...). It is rendered by the profile named in
:attr:`Feature.profile` (:mod:`builder.parents.families.profiles`), convolved with the stamp's
PSF together with the host, neighbours and stars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from builder.photometry import band_fluxes_nmgy

FLUX = tuple[float, float, float]


@dataclass(frozen=True)
class HostContext:
    """What a family needs to know about the central galaxy it is drawn around.

    Attributes
    ----------
    dx_arcsec, dy_arcsec : float
        Host centre relative to the stamp centre, arcsec.
    hlr_arcsec : float
        Host half-light radius, arcsec.
    axis_ratio : float
        Host minor/major axis ratio.
    position_angle_rad : float
        Host major-axis angle (GalSim convention, from +x towards +y), radians.
    redshift : float
        Host redshift.
    mag_r : float
        Host total r magnitude (AB).
    flux_nmgy : tuple of float
        Host g, r, z flux, nanomaggies.
    """

    dx_arcsec: float
    dy_arcsec: float
    hlr_arcsec: float
    axis_ratio: float
    position_angle_rad: float
    redshift: float
    mag_r: float
    flux_nmgy: FLUX


@dataclass(frozen=True)
class Feature:
    """One light source added by a family.

    Attributes
    ----------
    kind : str
        What it is (one of :data:`builder.parents.families.FEATURE_KINDS`), e.g. ``"ring"``.
    dx_arcsec, dy_arcsec : float
        Reference position relative to the stamp centre, arcsec (the centre of a Sersic
        profile; the origin of the knot offsets of a knot chain).
    flux_nmgy : tuple of float
        Total g, r, z flux, nanomaggies.
    profile : str
        Renderer: ``"sersic"`` or ``"knots"`` (:data:`builder.parents.families.profiles.PROFILES`).
    hlr_arcsec, sersic_n, axis_ratio, position_angle_rad : float
        Sersic parameters (``profile == "sersic"``).
    knots : tuple of (dx, dy, weight)
        Gaussian knots of a ``"knots"`` profile: offsets (arcsec) from the reference position and
        relative weights (normalised at render time).
    knot_sigma_arcsec : float
        Gaussian sigma of every knot, arcsec.
    """

    kind: str
    dx_arcsec: float
    dy_arcsec: float
    flux_nmgy: FLUX
    profile: str = "sersic"
    hlr_arcsec: float = 0.5
    sersic_n: float = 1.0
    axis_ratio: float = 1.0
    position_angle_rad: float = 0.0
    knots: tuple[tuple[float, float, float], ...] = ()
    knot_sigma_arcsec: float = 0.15


# ----------------------------------------------------------------------- drawing helpers


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def annulus_offset(rng: np.random.Generator, r_lo: float, r_hi: float) -> tuple[float, float]:
    """Uniform-in-area offset between radii ``r_lo`` and ``r_hi`` (arcsec)."""
    r = math.sqrt(rng.uniform(r_lo**2, r_hi**2))
    t = rng.uniform(0.0, 2.0 * math.pi)
    return r * math.cos(t), r * math.sin(t)


def sed_flux(sed: str, redshift: float, mag_r: float) -> FLUX:
    """g, r, z flux of CWW template ``sed`` at ``redshift`` with r magnitude ``mag_r``."""
    f = band_fluxes_nmgy(sed, min(max(redshift, 0.0), 3.0), mag_r)
    return (float(f[0]), float(f[1]), float(f[2]))


def mixed_flux(redshift: float, mag_r: float, blue_weight: float) -> FLUX:
    """Colour between the E (red) and Scd (blue) templates: r flux fraction ``blue_weight`` Scd."""
    red = np.asarray(sed_flux("E", redshift, mag_r))
    blue = np.asarray(sed_flux("Scd", redshift, mag_r))
    f = (1.0 - blue_weight) * red + blue_weight * blue
    return (float(f[0]), float(f[1]), float(f[2]))


def scaled(flux: Sequence[float], factor: float) -> FLUX:
    return (float(flux[0] * factor), float(flux[1] * factor), float(flux[2] * factor))


def r_mag_of(flux_r_nmgy: float) -> float:
    return 22.5 - 2.5 * math.log10(flux_r_nmgy)


def project(points: np.ndarray, axis_ratio: float, position_angle_rad: float) -> np.ndarray:
    """Incline a face-on (N, 2) point set: squash y by ``axis_ratio``, rotate by the angle."""
    x, y = points[:, 0], points[:, 1] * axis_ratio
    c, s = math.cos(position_angle_rad), math.sin(position_angle_rad)
    return np.stack([c * x - s * y, s * x + c * y], axis=1)


def knot_tuple(points: np.ndarray, weights: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple((float(x), float(y), float(w)) for (x, y), w in zip(points, weights, strict=True))


def clumpy_weights(rng: np.random.Generator, n: int, scatter_dex: float) -> np.ndarray:
    """Log-normal knot weights (``scatter_dex`` dex): star-forming clumps along a structure."""
    return np.power(10.0, rng.normal(0.0, scatter_dex, size=n))


def n_along(length_arcsec: float, sigma_arcsec: float, cap: int = 80) -> int:
    """Knots needed to sample a curve of that length smoothly (spacing ~1.2 sigma)."""
    return int(min(cap, max(6, math.ceil(length_arcsec / (1.2 * sigma_arcsec)))))
