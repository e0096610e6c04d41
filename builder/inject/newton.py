"""Damped Newton refinement of lens-equation roots, one seed at a time in scalar arithmetic.

:func:`newton_roots` gives, seed by seed, exactly the roots of the vectorised iteration
``builder.inject.lensing._newton_many`` (``tests/test_injection_images.py`` compares them bit for
bit): the same IEEE operations in the same order on Python floats, numpy's own ``arctan`` /
``arctanh`` (called on scalars, whose results equal numpy's array loops; the C library's
``math.atan`` may differ in the last bit), ``math.hypot`` norms, and the same backtracking
steps tried in the same order (here one at a time, stopping at the first that shrinks the
residual, which is the one the vectorised iteration picks). For the few seeds of a
``find_images`` call this avoids the per-call overhead of numpy on arrays of a few elements.
Round lenses (``1 - q`` below the sphere tolerance) are left to the vectorised iteration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def newton_roots(
    theta_e_arcsec: float,
    q: float,
    phi_deg: float,
    gamma1: float,
    gamma2: float,
    sx: float,
    sy: float,
    seeds: Sequence[tuple[float, float]],
    tol: float,
    max_iter: int,
    steps: Sequence[float],
    psi_floor: float,
) -> list[tuple[float, float] | None]:
    """Root of ``ray_shoot(theta) = (sx, sy)`` from each seed (None where Newton fails).

    Parameters
    ----------
    theta_e_arcsec, q, phi_deg, gamma1, gamma2 : float
        The SIE + shear lens (``q`` not round: ``1 - q`` at least the sphere tolerance).
    sx, sy : float
        Source position, arcsec.
    seeds : Sequence of (float, float)
        Starting points, arcsec.
    tol : float
        Residual norm below which a point is a root, arcsec.
    max_iter : int
        Newton iterations at most.
    steps : Sequence[float]
        Backtracking step fractions, tried in order (1, 1/2, ...).
    psi_floor : float
        Radius floor of the deflection, arcsec.
    """
    phi = math.radians(phi_deg)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    b = float(theta_e_arcsec) * math.sqrt(q)
    e = math.sqrt(1.0 - q * q)
    b_e = b / e
    qq = q * q
    g1, g2 = float(gamma1), float(gamma2)
    one_m_g1, one_p_g1 = 1.0 - g1, 1.0 + g1
    c2, s2, cs = cos_p * cos_p, sin_p * sin_p, cos_p * sin_p
    two_cs, c2_s2 = 2.0 * cs, c2 - s2
    r2_floor = psi_floor**2
    arctan, arctanh = np.arctan, np.arctanh

    def residual(x: float, y: float) -> tuple[float, float]:
        # ray_shoot(x, y) - source, as builder.inject.lensing.ray_shoot / sie_deflection
        xr = cos_p * x + sin_p * y
        yr = cos_p * y - sin_p * x
        psi = max(math.sqrt(qq * (xr * xr) + yr * yr), psi_floor)
        ax_r = b_e * float(arctan((e * xr) / psi))
        ay_r = b_e * float(arctanh((e * yr) / psi))
        ax = cos_p * ax_r - sin_p * ay_r
        ay = sin_p * ax_r + cos_p * ay_r
        return (one_m_g1 * x - g2 * y - ax) - sx, (one_p_g1 * y - g2 * x - ay) - sy

    def hessian(x: float, y: float) -> tuple[float, float, float]:
        # as builder.inject.lensing.sie_shear_hessian
        xr = cos_p * x + sin_p * y
        yr = cos_p * y - sin_p * x
        r2 = max(xr * xr + yr * yr, r2_floor)
        psi = max(math.sqrt(q * q * xr * xr + yr * yr), psi_floor)
        k = b / (psi * r2)
        hxx_r, hxy_r, hyy_r = k * yr * yr, -k * xr * yr, k * xr * xr
        hxx = c2 * hxx_r - two_cs * hxy_r + s2 * hyy_r
        hyy = s2 * hxx_r + two_cs * hxy_r + c2 * hyy_r
        hxy = cs * (hxx_r - hyy_r) + c2_s2 * hxy_r
        return hxx + g1, hxy + g2, hyy - g1

    out: list[tuple[float, float] | None] = []
    for x0, y0 in seeds:
        x, y = float(x0), float(y0)
        fx, fy = residual(x, y)
        root: tuple[float, float] | None = None
        for _ in range(max_iter):
            norm = math.hypot(fx, fy)
            if norm < tol:
                root = (x, y)
                break
            hxx, hxy, hyy = hessian(x, y)
            a11, a12, a22 = 1.0 - hxx, -hxy, 1.0 - hyy
            det = a11 * a22 - a12 * a12
            if not (det != 0.0 and math.isfinite(det)):
                break
            dx = (a22 * fx - a12 * fy) / det
            dy = (a11 * fy - a12 * fx) / det
            for t in steps:
                nx, ny = x - t * dx, y - t * dy
                gx, gy = residual(nx, ny)
                if math.hypot(gx, gy) < norm:
                    x, y, fx, fy = nx, ny, gx, gy
                    break
            else:  # no step shrinks the residual
                break
        else:
            if math.hypot(fx, fy) < tol:
                root = (x, y)
        out.append(root)
    return out
