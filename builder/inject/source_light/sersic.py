"""Elliptical Sersic surface brightness normalised to a given total flux.

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

import numpy as np
from scipy import special


@dataclass(frozen=True)
class SersicParams:
    """An elliptical Sersic source.

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
    """

    x_arcsec: float
    y_arcsec: float
    re_arcsec: float
    n_sersic: float
    q: float
    phi_deg: float


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
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, source: SersicParams, flux: float = 1.0
) -> np.ndarray:
    """Surface brightness of an elliptical Sersic with total flux ``flux``.

    Parameters
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Positions (source plane), arcsec; float32 input gives float32 output.
    source : SersicParams
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
