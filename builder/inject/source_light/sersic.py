"""The Sersic source-light model (``injection.source.model: sersic``, the default).

Elliptical Sersic surface brightness normalised to a given total flux.

``I(R) = I_e exp(-b_n [(R / R_e)^(1/n) - 1])`` (Sersic 1968) with the elliptical radius
``R^2 = q x'^2 + y'^2 / q`` (``x'`` along the major axis), so ``R_e`` is the product average of
the semi-axes of the half-light ellipse (lenstronomy's ``SERSIC_ELLIPSE`` convention). ``b_n``
is the exact root of ``P(2n, b_n) = 1/2`` (regularised lower incomplete gamma), computed with
:func:`scipy.special.gammaincinv`; Ciotti & Bertin (1999) give its asymptotic series. The
total flux is ``F = 2 pi n R_e^2 I_e e^{b_n} Gamma(2n) / b_n^{2n}`` for any ``q`` (the
elliptical mapping has unit Jacobian).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from builder.inject.source_light.base import (
    Photometry,
    SourceLight,
    draw_photometry,
    register_source_light,
    uniform,
)
from common.configio import check_range

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.config import SourceConfig

#: Adaptive rendering: pixels whose source-plane footprint comes within this many half-light
#: radii (major axis) of the source centre are always supersampled.
CORE_RADIUS_RE = 2.0


@dataclass(frozen=True)
class SersicConfig:
    """Shape distribution of the Sersic source (``injection.source.sersic``).

    Attributes
    ----------
    re_arcsec : tuple[float, float]
        Half-light radius (product average of the semi-axes), arcsec, uniform. Default
        ``(0.1, 0.5)``.
    n : tuple[float, float]
        Sersic index, uniform. Default ``(0.5, 2.0)``.
    q : tuple[float, float]
        Axis ratio (minor/major), uniform; the position angle is uniform in [0, 180) deg.
        Default ``(0.3, 1.0)``.
    """

    re_arcsec: tuple[float, float] = (0.1, 0.5)
    n: tuple[float, float] = (0.5, 2.0)
    q: tuple[float, float] = (0.3, 1.0)

    def validate(self, prefix: str = "injection.source.sersic") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        check_range(self.re_arcsec, f"{prefix}.re_arcsec", lo=0.01, hi=5.0)
        check_range(self.n, f"{prefix}.n", lo=0.3, hi=8.0)
        check_range(self.q, f"{prefix}.q", lo=0.05, hi=1.0)


@register_source_light("sersic", SersicConfig)
@dataclass(frozen=True)
class SersicLight(SourceLight):
    """An elliptical Sersic source with one colour (a :class:`SourceLight` of one component).

    Attributes
    ----------
    x_arcsec, y_arcsec : float
        Centre in the source plane, arcsec from the lens centre.
    re_arcsec : float
        Half-light radius (product average of the semi-axes), arcsec.
    n_sersic : float
        Sersic index.
    q : float
        Axis ratio (minor/major) in (0, 1].
    phi_deg : float
        Major-axis position angle, degrees from +x towards +y.
    flux_nmgy : tuple of float
        Unlensed g, r, z flux, nmgy (default 1 in every band: a unit-flux profile).
    photometry : Photometry or None
        Magnitude, SED and redshift the fluxes came from (None when given directly).
    """

    x_arcsec: float
    y_arcsec: float
    re_arcsec: float
    n_sersic: float
    q: float
    phi_deg: float
    flux_nmgy: tuple[float, ...] = (1.0, 1.0, 1.0)
    photometry: Photometry | None = None

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        cfg: SourceConfig,
        x_arcsec: float,
        y_arcsec: float,
        redshift: float | None = None,
    ) -> SersicLight:
        """Draw shape (re, n, q, angle) then photometry: seven generator calls.

        Parameters
        ----------
        rng : np.random.Generator
            Random generator.
        cfg : SourceConfig
            ``injection.source`` (this model reads ``cfg.section("sersic")``).
        x_arcsec, y_arcsec : float
            Source centre, arcsec from the lens centre.
        redshift : float or None
            Source redshift when already drawn (lens population); else uniform in ``cfg.z``.

        Returns
        -------
        SersicLight
            The source.
        """
        shape: SersicConfig = cfg.section("sersic")
        re_arcsec = uniform(rng, shape.re_arcsec)
        n_sersic = uniform(rng, shape.n)
        q = uniform(rng, shape.q)
        phi_deg = float(rng.uniform(0.0, 180.0))
        phot = draw_photometry(rng, cfg, redshift)
        flux = tuple(float(f) for f in phot.band_fluxes_nmgy())
        return cls(x_arcsec, y_arcsec, re_arcsec, n_sersic, q, phi_deg, flux, phot)

    def unit_surface_brightness(
        self, beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray
    ) -> np.ndarray:
        """Unit-flux surface brightness, arcsec^-2 (float32 in, float32 out)."""
        return sersic_surface_brightness(beta_x_arcsec, beta_y_arcsec, self)

    def peak_unit_sb_arcsec2(self) -> float:
        """Central unit-flux surface brightness, arcsec^-2."""
        return sersic_peak_sb(1.0, self.re_arcsec, self.n_sersic)

    def center_arcsec(self) -> tuple[float, float]:
        """Source centre, arcsec from the lens."""
        return self.x_arcsec, self.y_arcsec

    def core_radius_arcsec(self) -> float:
        """``CORE_RADIUS_RE`` half-light radii along the major axis, arcsec."""
        return CORE_RADIUS_RE * self.re_arcsec / math.sqrt(self.q)

    def half_light_radius_arcsec(self) -> float:
        """The Sersic half-light radius (product average of the semi-axes), arcsec."""
        return self.re_arcsec

    def metadata(self) -> dict[str, Any]:
        """``source_re_arcsec``, ``source_n_sersic``, ``source_q``, ``source_phi_deg``."""
        return {
            "source_re_arcsec": self.re_arcsec,
            "source_n_sersic": self.n_sersic,
            "source_q": self.q,
            "source_phi_deg": self.phi_deg,
        }


#: Name used by the lenstronomy cross-checks and older call sites: a Sersic of unit flux.
SersicParams = SersicLight


def sersic_b_n(n_sersic: float) -> float:
    """Exact Sersic ``b_n``: the half-light radius encloses half of the total flux.

    Parameters
    ----------
    n_sersic : float
        Sersic index (> 0).

    Returns
    -------
    float
        ``b_n`` with ``gammainc(2n, b_n) = 1/2``.
    """
    return float(special.gammaincinv(2.0 * n_sersic, 0.5))


def sersic_peak_sb(flux: float, re_arcsec: float, n_sersic: float) -> float:
    """Central surface brightness ``I_0 = I_e e^{b_n}`` of a Sersic with total flux ``flux``.

    Parameters
    ----------
    flux : float
        Total flux (any unit, e.g. nanomaggies).
    re_arcsec : float
        Half-light radius, arcsec.
    n_sersic : float
        Sersic index.

    Returns
    -------
    float
        Central surface brightness, ``flux`` units per arcsec^2.
    """
    b = sersic_b_n(n_sersic)
    two_n = 2.0 * n_sersic
    # I_0 = F b^{2n} / (2 pi n R_e^2 Gamma(2n)); computed in logs to stay finite for large n
    log_i0 = two_n * math.log(b) - math.log(2.0 * math.pi * n_sersic) - special.gammaln(two_n)
    return flux * math.exp(log_i0) / (re_arcsec * re_arcsec)


def sersic_surface_brightness(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, source: SersicLight, flux: float = 1.0
) -> np.ndarray:
    """Surface brightness of an elliptical Sersic with total flux ``flux``.

    Parameters
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Positions (source plane), arcsec; float32 input gives float32 output.
    source : SersicLight
        Shape and position of the source.
    flux : float
        Total flux, e.g. nanomaggies (default 1: a unit-flux profile).

    Returns
    -------
    np.ndarray
        Surface brightness in ``flux`` units per arcsec^2.
    """
    n = float(source.n_sersic)
    b = sersic_b_n(n)
    q = float(source.q)
    phi = math.radians(source.phi_deg)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    dx = x_arcsec - float(source.x_arcsec)
    dy = y_arcsec - float(source.y_arcsec)
    xr = cos_p * dx + sin_p * dy
    yr = cos_p * dy - sin_p * dx
    re2 = float(source.re_arcsec) ** 2
    # (R / R_e)^2 in the elliptical radius R^2 = q x'^2 + y'^2 / q
    r2_rel = (q / re2) * (xr * xr) + (1.0 / (q * re2)) * (yr * yr)
    i0 = sersic_peak_sb(flux, float(source.re_arcsec), n)
    return i0 * np.exp(-b * np.power(r2_rel, 0.5 / n))
