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

from builder.inject.newton import newton_roots
from builder.inject.triangles import _triangle_hits, count_images  # noqa: F401 (re-export)

#: Below this ``1 - q`` the SIE is evaluated as a singular isothermal sphere.
_ROUND_Q_TOL = 1e-6
#: Radius floor (arcsec) that keeps the deflection finite exactly at the lens centre.
_PSI_FLOOR_ARCSEC = 1e-9
#: find_images: seed grid cells per Einstein radius, and Newton settings.
_SEED_CELLS_PER_THETA_E = 40
_NEWTON_MAX_ITER = 60
#: find_images: Newton backtracking steps 1, 1/2, 1/4, ... while > 1e-6 (2^-19 is the last).
_BACKTRACK_STEPS = np.ldexp(1.0, -np.arange(20))
_BACKTRACK_LIST: list[float] = _BACKTRACK_STEPS.tolist()
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
    for root in _refine(lens, sx, sy, seeds):
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


def _refine(
    lens: LensParams, sx: float, sy: float, seeds: list[tuple[float, float]]
) -> list[tuple[float, float] | None]:
    """Newton roots from ``seeds``: scalar (:mod:`builder.inject.newton`), same values."""
    q = float(lens.q)
    if 1.0 - q < _ROUND_Q_TOL:
        return _newton_many(lens, sx, sy, seeds)
    tol = _ROOT_TOL_REL * float(lens.theta_e_arcsec)
    return newton_roots(
        float(lens.theta_e_arcsec), q, float(lens.phi_deg), float(lens.gamma1),
        float(lens.gamma2), sx, sy, seeds, tol, _NEWTON_MAX_ITER, _BACKTRACK_LIST,
        _PSI_FLOOR_ARCSEC,
    )  # fmt: skip


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


def _hypot(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    # math.hypot element by element: the very norm of the scalar iteration (np.hypot may differ
    # in the last bit), so that the vectorised iteration takes exactly the same steps
    return np.array(
        [math.hypot(a, b) for a, b in zip(fx.tolist(), fy.tolist(), strict=True)], dtype=np.float64
    )


def _newton_many(
    lens: LensParams, sx: float, sy: float, seeds: list[tuple[float, float]]
) -> list[tuple[float, float] | None]:
    """Damped Newton solutions of ``ray_shoot(theta) = beta_s`` from every seed at once.

    Per seed: stop when the residual norm is below ``_ROOT_TOL_REL * theta_E``; else take the
    Newton step with the analytic Jacobian and halve it (down to 1e-6) until the residual
    shrinks; fail (None) on a singular Jacobian, when no step shrinks the residual, or after
    ``_NEWTON_MAX_ITER`` iterations. Each seed keeps its own iterate and step; only the seeds
    still running are evaluated. Element by element this is the arithmetic of a scalar
    iteration (same numpy operations in the same order, ``math.hypot`` norms), so the roots
    do not depend on which other seeds are solved with it.
    """
    out: list[tuple[float, float] | None] = [None] * len(seeds)
    if not seeds:
        return out
    tol = _ROOT_TOL_REL * float(lens.theta_e_arcsec)
    x = np.array([s[0] for s in seeds], dtype=np.float64)
    y = np.array([s[1] for s in seeds], dtype=np.float64)
    bx, by = ray_shoot(x, y, lens)
    fx, fy = bx - sx, by - sy
    live = np.arange(len(seeds))
    for _ in range(_NEWTON_MAX_ITER):
        norm = _hypot(fx, fy)
        conv = norm < tol
        for k in np.flatnonzero(conv).tolist():
            out[live[k]] = (float(x[k]), float(y[k]))
        keep = ~conv
        live, x, y, fx, fy, norm = live[keep], x[keep], y[keep], fx[keep], fy[keep], norm[keep]
        if not live.size:
            return out
        hxx, hxy, hyy = sie_shear_hessian(x, y, lens)
        a11, a12, a22 = 1.0 - hxx, -hxy, 1.0 - hyy
        det = a11 * a22 - a12 * a12
        ok = (det != 0.0) & np.isfinite(det)  # the others fail (None)
        live, x, y, fx, fy, norm = live[ok], x[ok], y[ok], fx[ok], fy[ok], norm[ok]
        a11, a12, a22, det = a11[ok], a12[ok], a22[ok], det[ok]
        dx = (a22 * fx - a12 * fy) / det
        dy = (a11 * fy - a12 * fx) / det
        # backtrack until the residual shrinks: steps t = 1, 1/2, ... (exact powers of two, as
        # repeated halving gives) down to 1e-6, the first that shrinks it is taken; the full
        # step first for every seed, then all shorter steps at once for the seeds it failed
        accepted = np.zeros(x.shape, dtype=bool)
        for steps in (_BACKTRACK_STEPS[:1], _BACKTRACK_STEPS[1:]):
            pending = np.flatnonzero(~accepted)
            if not pending.size:
                break
            t = steps[None, :]
            nx_ = x[pending, None] - t * dx[pending, None]
            ny_ = y[pending, None] - t * dy[pending, None]
            gbx, gby = ray_shoot(nx_, ny_, lens)
            gx_, gy_ = gbx - sx, gby - sy
            better = _hypot(gx_.ravel(), gy_.ravel()).reshape(gx_.shape) < norm[pending, None]
            has = better.any(axis=1)
            first = np.argmax(better, axis=1)[has]
            rows, done = np.flatnonzero(has), pending[has]
            x[done], y[done] = nx_[rows, first], ny_[rows, first]
            fx[done], fy[done] = gx_[rows, first], gy_[rows, first]
            accepted[done] = True
        live, x, y, fx, fy = live[accepted], x[accepted], y[accepted], fx[accepted], fy[accepted]
        if not live.size:
            return out
    final = _hypot(fx, fy) < tol
    for k in np.flatnonzero(final).tolist():
        out[live[k]] = (float(x[k]), float(y[k]))
    return out
