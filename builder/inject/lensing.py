"""SIE + external shear lens: deflection angles, ray shooting and image finding.

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
from dataclasses import dataclass, field

import numpy as np

#: Below this ``1 - q`` the SIE is evaluated as a singular isothermal sphere.
_ROUND_Q_TOL = 1e-6
#: Radius floor (arcsec) that keeps the deflection finite exactly at the lens centre.
_PSI_FLOOR_ARCSEC = 1e-9
#: find_images: seed grid cells per Einstein radius, and Newton settings.
_SEED_CELLS_PER_THETA_E = 40
_NEWTON_MAX_ITER = 60
#: find_images: a root is accepted when the source-plane residual is below this times theta_E.
_ROOT_TOL_REL = 1e-10
#: find_images: roots closer than this times theta_E are one image.
_SAME_IMAGE_REL = 1e-6
#: find_images: a root closer to the lens centre than this times theta_E is the (absent) central
#: image of the singular lens, where the deflection is discontinuous.
_CENTRAL_REL = 1e-4


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
    finder). Triangles of either orientation count, so both image parities are found. A source
    exactly on a shared edge or vertex is counted once (simulation of simplicity).

    This is a grid-resolution estimate: where the grid does not resolve a critical curve (small
    ``theta_E``, sources near a caustic) the piecewise-linear map folds in the wrong places and
    one image may cover several triangles, or an image pair none. For the number of images use
    :func:`find_images` (root finding on the lens equation); this function is its seed finder.

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
    inside_a, inside_b = _triangle_hits(
        beta_x_arcsec, beta_y_arcsec, source_x_arcsec, source_y_arcsec
    )
    if exclude is not None:
        keep = ~exclude
        inside_a &= keep
        inside_b &= keep
    return int(np.count_nonzero(inside_a) + np.count_nonzero(inside_b))


def _triangle_hits(
    beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray, source_x: float, source_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: does its lower-left / upper-right triangle's source-plane image hold the source?"""
    bx = beta_x_arcsec - source_x
    by = beta_y_arcsec - source_y
    v00 = (bx[:-1, :-1], by[:-1, :-1])
    v01 = (bx[:-1, 1:], by[:-1, 1:])
    v10 = (bx[1:, :-1], by[1:, :-1])
    v11 = (bx[1:, 1:], by[1:, 1:])

    def side(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # Sign (+1 / -1) of the z-component of a x b: on which side of the edge a->b the source
        # lies. An exact zero (source on the edge's line) is decided by simulation of
        # simplicity: the source is moved by (eps, eps^2), which gives -sign(dy), or sign(dx) when
        # dy == 0, for the edge d = b - a. The reversed edge of the neighbouring triangle gets the
        # opposite sign, so a source on a shared edge or vertex is counted once, not twice.
        c = a[0] * b[1] - a[1] * b[0]
        dx, dy = b[0] - a[0], b[1] - a[1]
        tie = np.where(dy != 0, -np.sign(dy), np.sign(dx))
        return np.where(c != 0, np.sign(c), tie)

    s_11_00 = side(v11, v00)
    inside_a = _inside(side(v00, v01), side(v01, v11), s_11_00)
    inside_b = _inside(side(v00, v11), side(v11, v10), side(v10, v00))
    return inside_a, inside_b


def _inside(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Inside a triangle: its three edge signs (+1/-1, 0 for a degenerate edge) all agree."""
    return ((a > 0) & (b > 0) & (c > 0)) | ((a < 0) & (b < 0) & (c < 0))


def sie_shear_hessian(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, lens: LensParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Second derivatives of the SIE + shear lensing potential, ``(f_xx, f_xy, f_yy)``.

    In the major-axis frame the SIE gives ``f_x'x' = b y'^2 / (psi r^2)``,
    ``f_x'y' = -b x' y' / (psi r^2)``, ``f_y'y' = b x'^2 / (psi r^2)`` (``r^2 = x'^2 + y'^2``;
    Keeton 2001), rotated back to the sky frame; the shear adds ``(g1, g2, -g1)``. The lens
    Jacobian is ``A = I - H``.
    """
    phi = math.radians(lens.phi_deg)
    cos_p, sin_p = math.cos(phi), math.sin(phi)
    xr = cos_p * x_arcsec + sin_p * y_arcsec
    yr = cos_p * y_arcsec - sin_p * x_arcsec
    q = float(lens.q)
    b = float(lens.theta_e_arcsec) * (1.0 if 1.0 - q < _ROUND_Q_TOL else math.sqrt(q))
    if 1.0 - q < _ROUND_Q_TOL:
        q = 1.0
    r2 = np.maximum(xr * xr + yr * yr, _PSI_FLOOR_ARCSEC**2)
    psi = np.maximum(np.sqrt(q * q * xr * xr + yr * yr), _PSI_FLOOR_ARCSEC)
    k = b / (psi * r2)
    hxx_r, hxy_r, hyy_r = k * yr * yr, -k * xr * yr, k * xr * xr
    c2, s2, cs = cos_p * cos_p, sin_p * sin_p, cos_p * sin_p
    hxx = c2 * hxx_r - 2.0 * cs * hxy_r + s2 * hyy_r
    hyy = s2 * hxx_r + 2.0 * cs * hxy_r + c2 * hyy_r
    hxy = cs * (hxx_r - hyy_r) + (c2 - s2) * hxy_r
    return hxx + lens.gamma1, hxy + lens.gamma2, hyy - lens.gamma1


@dataclass(frozen=True)
class Images:
    """Point-source images of an SIE + shear lens (the central image excluded).

    Attributes
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Image positions relative to the lens centre, arcsec, ordered by decreasing ``|mu|``.
    magnification : np.ndarray
        Signed magnification ``1 / det A`` of each image (negative: saddle-point image).
    """

    x_arcsec: np.ndarray = field(repr=False)
    y_arcsec: np.ndarray = field(repr=False)
    magnification: np.ndarray

    @property
    def count(self) -> int:
        """Number of images (1, 2, 3 or 4 for an SIE + shear; no central image)."""
        return int(self.x_arcsec.size)


def find_images(lens: LensParams, source_x_arcsec: float, source_y_arcsec: float) -> Images:
    """Solve the lens equation ``beta = theta - alpha(theta)`` for a point source.

    Seeds come from triangle mapping (:func:`count_images`) of a float64 grid of ``theta_E/40``
    cells covering every possible image, plus the local minima of the source-plane residual
    on that grid (which catch image pairs too close to the caustic for the grid to resolve).
    Each seed is refined by damped Newton iterations with the analytic Jacobian
    (:func:`sie_shear_hessian`); converged roots (residual < 1e-10 ``theta_E``) closer than
    1e-6 ``theta_E`` are merged.

    Convention: the singular isothermal lens has no central image (it is infinitely
    demagnified), so it is never returned. The count is 1 (source outside the cut and the
    caustic), 2 (inside the cut only), 3 (inside the caustic but outside the cut: a "naked cusp"),
    or 4 (inside both). lenstronomy's ``LensEquationSolver`` may return a central image of its
    1e-10" core with ``|mu| ~ 1e-10``; drop those when comparing.

    Parameters
    ----------
    lens : LensParams
        The lens (``theta_e_arcsec > 0``).
    source_x_arcsec, source_y_arcsec : float
        Source position relative to the lens centre, arcsec.

    Returns
    -------
    Images
        Image positions and signed magnifications.
    """
    te = float(lens.theta_e_arcsec)
    if not (math.isfinite(te) and te > 0):
        raise ValueError(f"theta_e_arcsec must be > 0, got {lens.theta_e_arcsec!r}")
    sx, sy = float(source_x_arcsec), float(source_y_arcsec)
    gamma = math.hypot(lens.gamma1, lens.gamma2)
    if gamma >= 0.9:
        raise ValueError(f"external shear |gamma| = {gamma:.3g} is too large (>= 0.9)")
    # |alpha_SIE| <= theta_E / sqrt(q), so an image satisfies
    # |theta| (1 - |gamma|) <= |beta| + theta_E / sqrt(q).
    reach = (math.hypot(sx, sy) + te / math.sqrt(lens.q)) / (1.0 - gamma) * 1.05 + 1e-3 * te
    step = te / _SEED_CELLS_PER_THETA_E
    n = int(math.ceil(reach / step))
    # an odd number of points (2n + 1) centred on 0 would put a corner on the singular centre;
    # shift the grid by a third of a cell so no corner lands there
    u = (np.arange(-n, n + 1, dtype=np.float64) + 1.0 / 3.0) * step
    gx, gy = np.meshgrid(u, u)
    bx, by = ray_shoot(gx, gy, lens)
    seeds = _triangle_seeds(bx, by, sx, sy, gx, gy) + _residual_minima(bx, by, sx, sy, gx, gy)
    roots: list[tuple[float, float]] = []
    for x0, y0 in seeds:
        root = _newton(lens, sx, sy, x0, y0)
        if root is None:
            continue
        if math.hypot(*root) < _CENTRAL_REL * te:
            continue
        if all(math.hypot(root[0] - a, root[1] - b) > _SAME_IMAGE_REL * te for a, b in roots):
            roots.append(root)
    xs = np.array([r[0] for r in roots], dtype=np.float64)
    ys = np.array([r[1] for r in roots], dtype=np.float64)
    hxx, hxy, hyy = sie_shear_hessian(xs, ys, lens)
    mu = 1.0 / ((1.0 - hxx) * (1.0 - hyy) - hxy * hxy)
    order = np.argsort(-np.abs(mu), kind="stable")
    return Images(xs[order], ys[order], mu[order])


def _triangle_seeds(bx, by, sx, sy, gx, gy) -> list[tuple[float, float]]:
    """Centres of the grid cells one of whose triangles maps onto the source."""
    inside_a, inside_b = _triangle_hits(bx, by, sx, sy)
    return [_cell_centre(gx, gy, i, j) for i, j in np.argwhere(inside_a | inside_b)]


def _residual_minima(bx, by, sx, sy, gx, gy) -> list[tuple[float, float]]:
    """Grid corners where ``|beta - beta_s|`` is a strict local minimum of its 3 x 3 block."""
    d = np.hypot(bx - sx, by - sy)
    core = d[1:-1, 1:-1]
    is_min = np.ones_like(core, dtype=bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= core < d[1 + di : d.shape[0] - 1 + di, 1 + dj : d.shape[1] - 1 + dj]
    return [(float(gx[i + 1, j + 1]), float(gy[i + 1, j + 1])) for i, j in np.argwhere(is_min)]


def _cell_centre(gx: np.ndarray, gy: np.ndarray, i: int, j: int) -> tuple[float, float]:
    return 0.5 * float(gx[i, j] + gx[i, j + 1]), 0.5 * float(gy[i, j] + gy[i + 1, j])


def _newton(
    lens: LensParams, sx: float, sy: float, x0: float, y0: float
) -> tuple[float, float] | None:
    """Damped Newton solution of ``ray_shoot(theta) = beta_s`` from ``(x0, y0)``, or None."""
    tol = _ROOT_TOL_REL * float(lens.theta_e_arcsec)
    x, y = x0, y0

    def residual(px: float, py: float) -> tuple[float, float]:
        bx, by = ray_shoot(np.array(px), np.array(py), lens)
        return float(bx) - sx, float(by) - sy

    fx, fy = residual(x, y)
    for _ in range(_NEWTON_MAX_ITER):
        norm = math.hypot(fx, fy)
        if norm < tol:
            return x, y
        hxx, hxy, hyy = (float(v) for v in sie_shear_hessian(np.array(x), np.array(y), lens))
        a11, a12, a22 = 1.0 - hxx, -hxy, 1.0 - hyy
        det = a11 * a22 - a12 * a12
        if det == 0.0 or not math.isfinite(det):
            return None
        dx = (a22 * fx - a12 * fy) / det
        dy = (a11 * fy - a12 * fx) / det
        t = 1.0
        while t > 1e-6:  # backtrack until the residual shrinks
            nx_, ny_ = x - t * dx, y - t * dy
            gx_, gy_ = residual(nx_, ny_)
            if math.hypot(gx_, gy_) < norm:
                x, y, fx, fy = nx_, ny_, gx_, gy_
                break
            t *= 0.5
        else:
            return None
    return (x, y) if math.hypot(fx, fy) < tol else None
