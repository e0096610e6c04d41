"""The clumpy source-light model (source_light/clumpy.py) pinned against GalSim and lenstronomy."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from builder.inject import InjectionConfig
from builder.inject.config import SourceConfig
from builder.inject.lensing import LensParams
from builder.inject.population import PopulationConfig, source_redshift_from_uniform
from builder.inject.render import PixelGrid, render_components
from builder.inject.source_colours import colour_span
from builder.inject.source_light import SOURCE_LIGHTS
from builder.inject.source_light.clumpy import (
    ClumpyConfig,
    ClumpyLight,
    KnotsProfile,
    knot_positions,
)
from builder.photometry import nmgy_to_mag
from common.configio import ConfigError, from_mapping
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX
from tests.test_injection_physics import lenstronomy_grid, lenstronomy_source_kwargs

R = BANDS.index("r")


def _draw(seed: int, redshift: float | None = 2.0) -> ClumpyLight:
    return ClumpyLight.draw(np.random.default_rng(seed), SourceConfig(), 0.1, -0.05, redshift)


def test_registered_and_default():
    assert SOURCE_LIGHTS["clumpy"].light_cls is ClumpyLight
    assert InjectionConfig().source.model == "clumpy"


def test_knot_positions_are_galsim_random_knots_on_the_body_ellipse():
    n, re, q, phi, seed = 12, 0.3, 0.5, 30.0, 77
    x, y = knot_positions(n, re, q, phi, seed)
    pts = galsim.RandomKnots(n, half_light_radius=re, flux=1.0, rng=galsim.BaseDeviate(seed)).points
    # undo the rotation and the area-preserving stretch
    c, s = np.cos(np.radians(phi)), np.sin(np.radians(phi))
    xr, yr = c * x + s * y, -s * x + c * y
    np.testing.assert_allclose(xr * np.sqrt(q), pts[:, 0], atol=1e-12)
    np.testing.assert_allclose(yr / np.sqrt(q), pts[:, 1], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unlensed_profile_matches_galsim(seed):
    """Body Sersic + Gaussian knots, evaluated by us and drawn by GalSim (no pixel), per band."""
    src = _draw(seed)
    body, knots = src.body, src.knots
    scale, n = 0.01, 301
    u = (np.arange(n) - (n - 1) / 2) * scale
    gx, gy = np.meshgrid(u + src.x_arcsec, u + src.y_arcsec)
    ours = src.surface_brightness_nmgy_arcsec2(gx, gy) * scale**2
    for b in range(len(BANDS)):
        gs_body = galsim.Sersic(
            body.n_sersic, half_light_radius=body.re_arcsec, flux=body.flux_nmgy[b]
        ).shear(q=body.q, beta=body.phi_deg * galsim.degrees)
        per_knot = src.knot_flux_nmgy[b] / knots.x_arcsec.size
        gs_knots = [
            galsim.Gaussian(sigma=knots.sigma_arcsec, flux=per_knot).shift(
                xk - src.x_arcsec, yk - src.y_arcsec
            )
            for xk, yk in zip(knots.x_arcsec, knots.y_arcsec, strict=True)
        ]
        ref = galsim.Sum([gs_body, *gs_knots]).drawImage(nx=n, ny=n, scale=scale, method="no_pixel")
        ref = ref.array
        assert np.linalg.norm(ours[b] - ref) / np.linalg.norm(ref) < 2e-3
        # knots are where the source is bluest: a knot-only pixel has the knots' colour
    assert src.total_flux_nmgy()[R] == pytest.approx(10 ** (-0.4 * (src.photometry.mag_r - 22.5)))


def test_lensed_clumpy_source_matches_lenstronomy():
    """Lensed through SIE+shear by our renderer vs lenstronomy (SERSIC_ELLIPSE + GAUSSIANs), both
    with 8 x 8 supersampling (compact knots need it: at 4 x 4 the knots' image is 4% off in L2
    and 0.6% in flux against 16 x 16, before the PSF)."""
    lens = LensParams(1.3, 0.7, 30.0, 0.03, -0.02)
    src = _draw(5)
    grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, 8)
    comps = render_components(lens, src, grid, adaptive=True)
    ours = sum(unit.astype(np.float64) * flux[R] for unit, flux in comps)
    knots = src.knots
    n_k = knots.x_arcsec.size
    model = ImageModel(
        lenstronomy_grid(),
        PSF(psf_type="NONE"),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["SERSIC_ELLIPSE"] + ["GAUSSIAN"] * n_k),
        kwargs_numerics={"supersampling_factor": 8},
    )
    kw = lenstronomy_source_kwargs(src.body, src.body.flux_nmgy[R])
    kw += [
        {
            "amp": src.knot_flux_nmgy[R] / n_k,
            "sigma": knots.sigma_arcsec,
            "center_x": x,
            "center_y": y,
        }
        for x, y in zip(knots.x_arcsec, knots.y_arcsec, strict=True)
    ]
    ref = model.image(lens.lenstronomy_kwargs(), kw)
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 2e-3
    assert ours.sum() == pytest.approx(ref.sum(), rel=1e-3)


def test_knots_are_bluer_and_colours_span_a_realistic_range():
    """At the default lens population's source redshifts (behind z_lens ~ 0.3), the total arc
    g-r spans >= 0.6 mag (5-95%); knots are never redder than the body."""
    pop = PopulationConfig()
    g_r, body_gr, knot_gr = [], [], []
    rng = np.random.default_rng(9)
    for seed in range(300):
        src = _draw(seed, source_redshift_from_uniform(rng.uniform(), 0.4, pop))
        mags = nmgy_to_mag(src.total_flux_nmgy())
        g_r.append(mags[0] - mags[1])
        body_gr.append(src.colours.g_minus_r)
        knot_gr.append(src.colours.knot_g_minus_r)
        body = nmgy_to_mag(np.asarray(src.body.flux_nmgy))
        knot = nmgy_to_mag(np.asarray(src.knot_flux_nmgy))
        assert knot[0] - knot[1] <= body[0] - body[1] + 1e-9
        # the total colour lies between body and knots
        lo, hi = sorted((knot[0] - knot[1], body[0] - body[1]))
        assert lo - 1e-9 <= mags[0] - mags[1] <= hi + 1e-9
    assert colour_span(g_r) >= 0.6
    assert np.median(np.array(body_gr) - np.array(knot_gr)) > 0.05


def test_draw_is_reproducible_and_redshift_is_respected():
    a, b = _draw(4), _draw(4)
    np.testing.assert_array_equal(a.knots.x_arcsec, b.knots.x_arcsec)
    assert a.body == b.body and a.photometry == b.photometry
    assert a.photometry.redshift == 2.0
    lo, hi = ClumpyConfig().n_knots
    assert lo <= a.metadata()["source_n_knots"] <= hi


def test_config_errors_name_the_key():
    cases = {
        "n_knots": ([5, 2], "injection.source.clumpy.n_knots"),
        "knot_flux_fraction": ([0.2, 1.5], "injection.source.clumpy.knot_flux_fraction"),
        "colours": ({"templates": ["Sbc", "Xx"]}, "injection.source.clumpy.colours.templates[1]"),
    }
    for key, (value, where) in cases.items():
        with pytest.raises(ConfigError) as err:
            from_mapping(ClumpyConfig, {key: value}, "injection.source.clumpy")
        assert err.value.key == where


def test_knots_skipping_far_points_equals_summing_every_knot():
    # KnotsProfile skips points whose every term is exp(<= -800) == 0.0: the result must be
    # bit for bit the plain sum over all knots (the formula before the skip), float32 and 64
    assert float(np.exp(-800.0)) == 0.0
    rng = np.random.default_rng(11)
    for trial in range(300):
        k, sigma = int(rng.integers(3, 26)), float(rng.uniform(0.01, 0.3))
        xk, yk = rng.normal(0, 0.3, k), rng.normal(0, 0.3, k)
        prof = KnotsProfile(xk, yk, sigma, (0.0, 0.0))
        shape = [(65, 65), (300, 16), (7,)][trial % 3]
        dtype = np.float32 if trial % 2 else np.float64
        spread = float(rng.choice([0.1, 0.5, 3.0]))
        bx = rng.normal(0, spread, shape).astype(dtype)
        by = rng.normal(0, spread, shape).astype(dtype)
        direct = np.zeros(shape)
        for x0, y0 in zip(xk, yk, strict=True):
            direct += np.exp(-((bx - x0) ** 2 + (by - y0) ** 2) * (0.5 / sigma**2))
        direct = (direct * (1.0 / (2.0 * np.pi * sigma**2 * k))).astype(dtype)
        got = prof.unit_surface_brightness(bx, by)
        assert got.dtype == dtype and np.array_equal(got, direct)
