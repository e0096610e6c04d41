"""Image counts of the injected lenses (lensing.find_images) vs lenstronomy's LensEquationSolver."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

from builder.inject import InjectionConfig
from builder.inject.host_shape import HostShape
from builder.inject.lensing import LensParams, find_images, ray_shoot
from builder.inject.sampler import draw_parameters

LENS_MODEL = LensModel(["SIE", "SHEAR"])
SOLVER = LensEquationSolver(LENS_MODEL)


def _lenstronomy_images(lens: LensParams, sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = SOLVER.image_position_from_source(
        sx,
        sy,
        lens.lenstronomy_kwargs(),
        min_distance=0.005 * lens.theta_e_arcsec,
        search_window=6.0 * lens.theta_e_arcsec,
        precision_limit=1e-10,
        num_iter_max=100,
    )
    x, y = np.asarray(x), np.asarray(y)
    # drop the (infinitely demagnified) central image of lenstronomy's 1e-10" core
    mu = np.atleast_1d(LENS_MODEL.magnification(x, y, lens.lenstronomy_kwargs()))
    keep = np.abs(mu) > 1e-3
    return x[keep], y[keep]


def _sampled_configurations(n: int) -> list[tuple[LensParams, float, float]]:
    """Lenses and source centres drawn by the injection sampler itself (both lens priors)."""
    out = []
    rng = np.random.default_rng(10)
    for prior in ("population", "uniform"):
        cfg = InjectionConfig(lens_prior=prior, shear_sigma=0.08)
        for _ in range(n // 2):
            host = HostShape(
                q=float(rng.uniform(0.4, 1.0)), phi_deg=float(rng.uniform(0, 180)), measured=True
            )
            d = draw_parameters(rng, cfg, host, float(rng.uniform(18.0, 21.0)))
            out.append((d.lens, *d.source.center_arcsec()))
    return out


CONFIGS = _sampled_configurations(20)


def test_image_counts_match_lenstronomy_on_sampled_configurations():
    counts = []
    for lens, sx, sy in CONFIGS:
        ours = find_images(lens, sx, sy)
        lx, ly = _lenstronomy_images(lens, sx, sy)
        counts.append(ours.count)
        assert ours.count in (1, 2, 3, 4)
        assert ours.count == lx.size, (lens, sx, sy, ours, lx, ly)
        # the same image positions
        for x, y in zip(lx, ly, strict=True):
            d = np.hypot(ours.x_arcsec - x, ours.y_arcsec - y)
            assert d.min() < 1e-5 * lens.theta_e_arcsec
        # and each of ours solves the lens equation with lenstronomy's deflection
        bx, by = LENS_MODEL.ray_shooting(ours.x_arcsec, ours.y_arcsec, lens.lenstronomy_kwargs())
        np.testing.assert_allclose(bx, sx, atol=1e-8)
        np.testing.assert_allclose(by, sy, atol=1e-8)
    # both 2- and 4-image configurations are exercised
    assert {2, 4} <= set(counts)


def test_magnifications_match_lenstronomy_deflections():
    """Our analytic magnification vs 1 / det of the central-difference Jacobian of
    lenstronomy's ray shooting (its own ``magnification`` differs at ~5e-6 in det A)."""
    h = 1e-5
    for lens, sx, sy in CONFIGS[:20]:
        ours = find_images(lens, sx, sy)
        kw = lens.lenstronomy_kwargs()
        x, y = ours.x_arcsec, ours.y_arcsec
        bxp, byp = LENS_MODEL.ray_shooting(x + h, y, kw)
        bxm, bym = LENS_MODEL.ray_shooting(x - h, y, kw)
        bxu, byu = LENS_MODEL.ray_shooting(x, y + h, kw)
        bxd, byd = LENS_MODEL.ray_shooting(x, y - h, kw)
        a11, a21 = (bxp - bxm) / (2 * h), (byp - bym) / (2 * h)
        a12, a22 = (bxu - bxd) / (2 * h), (byu - byd) / (2 * h)
        np.testing.assert_allclose(1.0 / ours.magnification, a11 * a22 - a12 * a21, atol=1e-7)


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.9, 1.5])
def test_singular_isothermal_sphere_images_are_analytic(offset):
    """SIS: two images at beta +- theta_E inside the cut (|beta| < theta_E), else one."""
    lens = LensParams(1.2, 1.0, 0.0, 0.0, 0.0)
    beta = offset * 1.2
    if beta == 0.0:
        beta = 1e-3  # exactly on the point caustic the images form a ring
    ours = find_images(lens, beta, 0.0)
    if beta < 1.2:
        assert ours.count == 2
        np.testing.assert_allclose(sorted(ours.x_arcsec), [beta - 1.2, beta + 1.2], atol=1e-9)
        np.testing.assert_allclose(
            sorted(np.abs(ours.magnification)),
            sorted([abs(1.2 / beta - 1), 1.2 / beta + 1]),
            rtol=1e-6,
        )
    else:
        assert ours.count == 1 and ours.x_arcsec[0] == pytest.approx(beta + 1.2, abs=1e-9)


def test_no_unphysical_counts_near_the_caustic():
    """Sources on a fine line across the tangential caustic: counts are only 1-4 and change by
    two at the caustic (the old triangle counter gave 3, 6, 8, 14 there)."""
    lens = LensParams(1.0, 0.7, 20.0, 0.03, -0.02)
    prev = None
    for t in np.linspace(0.0, 0.6, 121):
        sx, sy = t * math.cos(0.3), t * math.sin(0.3)
        images = find_images(lens, sx, sy)
        n = images.count
        assert n in (1, 2, 3, 4)
        bx, by = ray_shoot(images.x_arcsec, images.y_arcsec, lens)
        np.testing.assert_allclose(bx, sx, atol=1e-8)
        np.testing.assert_allclose(by, sy, atol=1e-8)
        if prev is not None:
            assert abs(n - prev) in (0, 1, 2)
        prev = n


def test_scalar_newton_roots_equal_the_vectorised_iteration_bit_for_bit():
    # find_images refines its seeds with builder/inject/newton.py (scalar, for speed): its roots
    # must be exactly those of the vectorised iteration (lensing._newton_many), failures included
    from builder.inject import lensing

    rng = np.random.default_rng(7)
    n_roots = 0
    for trial in range(300):
        te = float(rng.uniform(0.3, 3.0))
        q = float(rng.choice([rng.uniform(0.2, 1.0), 1.0 - 1e-7]))  # also the round-lens path
        lens = LensParams(te, q, float(rng.uniform(0, 180)), *rng.normal(0, 0.08, 2).tolist())
        r, a = te * float(rng.uniform(0, 1.3)), float(rng.uniform(0, 2 * math.pi))
        sx, sy = r * math.cos(a), r * math.sin(a)
        seeds = [tuple(s) for s in rng.normal(0, te, (int(rng.integers(1, 10)), 2)).tolist()]
        if trial % 7 == 0:
            seeds += [(0.0, 0.0), (1e-12, -1e-12)]  # the singular centre
        want = lensing._newton_many(lens, sx, sy, seeds)
        got = lensing._refine(lens, sx, sy, seeds)
        assert [None if w is None else (w[0].hex(), w[1].hex()) for w in want] == [
            None if g is None else (float(g[0]).hex(), float(g[1]).hex()) for g in got
        ]
        n_roots += sum(g is not None for g in got)
    assert n_roots > 300
