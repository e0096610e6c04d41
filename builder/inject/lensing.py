"""SIE + external shear lens: deflection angles, ray shooting and image counting.

Conventions follow lenstronomy (Birrer & Amara 2018) exactly, so that its ``SIE`` + ``SHEAR``
models can be used as a reference:

* ``theta_e_arcsec`` is the product-average ("intermediate-axis") Einstein radius. The SIE
  convergence is ``kappa = b / (2 sqrt(q^2 x'^2 + y'^2))`` with ``b = theta_e * sqrt(q)``, where
  ``x'`` is along the major axis (Kormann, Schneider & Bartelmann 1994; Keeton 2001). lenstronomy
  evaluates the SIE as an NIE with a 1e-10 arcsec core; that core is negligible and omitted here.
* The major axis lies at ``phi`` (radians, from +x towards +y).
* External shear deflects by ``(g1 x + g2 y, g2 x - g1 y)`` about the lens centre.

Coordinates are angles in arcsec relative to the lens centre; the image-plane grid convention
is set in :mod:`builder.inject.render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Below this ``1 - q`` the SIE is evaluated as a singular isothermal sphere.
_ROUND_Q_TOL = 1e-6
#: Radius floor (arcsec) that keeps the deflection finite exactly at the lens centre.
_PSI_FLOOR_ARCSEC = 1e-9


@dataclass(frozen=True)
class LensParams:
    """Parameters of an SIE + external shear lens centred at the origin.

    Attributes
    ----------
    theta_e_arcsec : float
        Einstein radius (product-average convention), arcsec.
    q : float
        Mass axis ratio, minor/major, in (0, 1].
    phi_deg : float
        Position angle of the mass major axis, degrees from +x towards +y.
    gamma1, gamma2 : float
        External shear components (dimensionless).
    """

    theta_e_arcsec: float
    q: float
    phi_deg: float
    gamma1: float = 0.0
    gamma2: float = 0.0

    def lenstronomy_kwargs(self) -> list[dict[str, float]]:
        """Equivalent ``kwargs_lens`` for lenstronomy's ``["SIE", "SHEAR"]`` lens model."""
        phi = math.radians(self.phi_deg)
        ell = (1.0 - self.q) / (1.0 + self.q)
        return [
            {
                "theta_E": self.theta_e_arcsec,
                "e1": ell * math.cos(2.0 * phi),
                "e2": ell * math.sin(2.0 * phi),
                "center_x": 0.0,
                "center_y": 0.0,
            },
            {"gamma1": self.gamma1, "gamma2": self.gamma2, "ra_0": 0.0, "dec_0": 0.0},
        ]


def sie_deflection(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, theta_e_arcsec: float, q: float, phi_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """Deflection of a singular isothermal ellipsoid centred at the origin.

    Parameters
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Image-plane positions, arcsec (any shape, float32 or float64; the dtype is preserved).
    theta_e_arcsec : float
        Product-average Einstein radius, arcsec.
    q : float
        Axis ratio (minor/major) in (0, 1].
    phi_rad : float
        Major-axis position angle, radians from +x towards +y.

    Returns
    -------
    alpha_x_arcsec, alpha_y_arcsec : np.ndarray
        Deflection components, arcsec.
    """
    q = float(q)
    cos_p, sin_p = math.cos(phi_rad), math.sin(phi_rad)
    # rotate into the major-axis frame
    xr = cos_p * x_arcsec + sin_p * y_arcsec
    yr = cos_p * y_arcsec - sin_p * x_arcsec
    if 1.0 - q < _ROUND_Q_TOL:
        r = np.maximum(np.hypot(xr, yr), _PSI_FLOOR_ARCSEC)
        scale = float(theta_e_arcsec) / r
        ax_r, ay_r = xr * scale, yr * scale
    else:
        b = float(theta_e_arcsec) * math.sqrt(q)
        e = math.sqrt(1.0 - q * q)
        psi = np.maximum(np.sqrt((q * q) * (xr * xr) + yr * yr), _PSI_FLOOR_ARCSEC)
        ax_r = (b / e) * np.arctan((e * xr) / psi)
        ay_r = (b / e) * np.arctanh((e * yr) / psi)
    # rotate back
    return cos_p * ax_r - sin_p * ay_r, sin_p * ax_r + cos_p * ay_r


def ray_shoot(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, lens: LensParams
) -> tuple[np.ndarray, np.ndarray]:
    """Map image-plane positions to the source plane, ``beta = theta - alpha(theta)``.

    Parameters
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Image-plane positions relative to the lens centre, arcsec.
    lens : LensParams
        The SIE + shear lens.

    Returns
    -------
    beta_x_arcsec, beta_y_arcsec : np.ndarray
        Source-plane positions, arcsec, same shape and dtype as the input.
    """
    ax, ay = sie_deflection(
        x_arcsec, y_arcsec, lens.theta_e_arcsec, lens.q, math.radians(lens.phi_deg)
    )
    g1, g2 = float(lens.gamma1), float(lens.gamma2)
    # beta = theta - alpha_SIE - alpha_shear, with alpha_shear = (g1 x + g2 y, g2 x - g1 y)
    bx = (1.0 - g1) * x_arcsec - g2 * y_arcsec - ax
    by = (1.0 + g1) * y_arcsec - g2 * x_arcsec - ay
    return bx, by


def count_images(
    beta_x_arcsec: np.ndarray,
    beta_y_arcsec: np.ndarray,
    source_x_arcsec: float,
    source_y_arcsec: float,
    exclude: np.ndarray | None = None,
) -> int:
    """Count the images of a point source by triangle mapping of a ray-traced grid.

    Each grid cell is split into two triangles; their source-plane images (the ray-traced
    corners) contain the source position once per image (the standard triangle-mapping image
    finder). Triangles of either orientation count, so both image parities are found. The
    count is at grid resolution: two images closer than a cell (a source on a caustic) may be
    counted once.

    Parameters
    ----------
    beta_x_arcsec, beta_y_arcsec : np.ndarray
        Source-plane positions of the (ny+1, nx+1) cell corners, arcsec.
    source_x_arcsec, source_y_arcsec : float
        Point-source position, arcsec.
    exclude : np.ndarray or None
        Boolean (ny, nx) mask of cells to ignore (those touching the singular lens centre, whose
        ray-traced triangles straddle the cut and would give spurious images).

    Returns
    -------
    int
        Number of triangles containing the source position.
    """
    bx = beta_x_arcsec - source_x_arcsec
    by = beta_y_arcsec - source_y_arcsec
    v00 = (bx[:-1, :-1], by[:-1, :-1])
    v01 = (bx[:-1, 1:], by[:-1, 1:])
    v10 = (bx[1:, :-1], by[1:, :-1])
    v11 = (bx[1:, 1:], by[1:, 1:])

    def cross(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # z-component of a x b: the sign tells on which side of the edge a->b the origin lies
        return a[0] * b[1] - a[1] * b[0]

    c_00_01 = cross(v00, v01)
    c_01_11 = cross(v01, v11)
    c_11_00 = cross(v11, v00)
    c_11_10 = cross(v11, v10)
    c_10_00 = cross(v10, v00)
    inside_a = _same_sign(c_00_01, c_01_11, c_11_00)
    inside_b = _same_sign(-c_11_00, c_11_10, c_10_00)
    if exclude is not None:
        keep = ~exclude
        inside_a &= keep
        inside_b &= keep
    return int(np.count_nonzero(inside_a) + np.count_nonzero(inside_b))


def _same_sign(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """True where ``a``, ``b``, ``c`` are all >= 0 or all <= 0 (point inside a triangle)."""
    return ((a >= 0) & (b >= 0) & (c >= 0)) | ((a <= 0) & (b <= 0) & (c <= 0))
