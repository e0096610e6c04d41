"""Physics of the arc injection checked against lenstronomy, GalSim and analytic expectations."""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
from lenstronomy.Data.pixel_grid import PixelGrid as LenstronomyPixelGrid
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.LightModel.Profiles.sersic import SersicElliptic
from scipy import special
from scipy.interpolate import CubicSpline
from scipy.signal import fftconvolve

from builder.inject.host_shape import measure_host_shape
from builder.inject.lensing import LensParams, count_images, ray_shoot
from builder.inject.noise import (
    DEFAULT_GAIN_E_PER_NMGY,
    DR10_EXPTIME_S,
    arc_poisson_noise,
    coadd_gain_e_per_nmgy,
    optimal_snr,
)
from builder.inject.psf import band_kernel_ffts, convolve, moffat_kernel
from builder.inject.render import (
    PixelGrid,
    central_cells,
    corner_coordinates,
    render_lensed,
    render_lensed_adaptive,
    subpixel_coordinates,
)
from builder.inject.source_light.sersic import SersicParams, sersic_b_n
from shards.schema import PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX

PIX = PIXEL_SCALE_ARCSEC
N = STAMP_SIZE_PIX
CENTER = (N - 1) / 2.0

LENS_CASES = [
    LensParams(1.3, 0.7, 30.0, 0.03, -0.02),
    LensParams(2.4, 0.5, 115.0, -0.06, 0.04),
    LensParams(0.7, 0.92, -20.0, 0.0, 0.05),
]
SOURCE_CASES = [
    SersicParams(0.10, -0.15, 0.25, 1.5, 0.6, 70.0),
    SersicParams(-0.30, 0.20, 0.45, 2.0, 0.9, 10.0),
    SersicParams(0.05, 0.02, 0.10, 0.5, 0.3, 140.0),
]


def lenstronomy_grid(n_pix: int = N) -> LenstronomyPixelGrid:
    """lenstronomy pixel grid with the stamp convention of ``builder.inject.render``."""
    c = (n_pix - 1) / 2.0
    return LenstronomyPixelGrid(
        nx=n_pix,
        ny=n_pix,
        transform_pix2angle=np.eye(2) * PIX,
        ra_at_xy_0=-c * PIX,
        dec_at_xy_0=-c * PIX,
    )


def lenstronomy_source_kwargs(src: SersicParams, flux: float) -> list[dict[str, float]]:
    """SERSIC_ELLIPSE kwargs describing the same profile and total flux as ``src``.

    lenstronomy uses ``b_n ~ 1.9992 n - 0.3271``; our exact ``b_n`` gives an identical profile
    shape for ``R_sersic = R_e (b_lenstronomy / b_exact)^n`` (only ``b_n / R^(1/n)`` matters),
    and the amplitude is then fixed by the total flux.
    """
    b_lens = SersicElliptic.b_n(src.n_sersic)
    r_sersic = src.re_arcsec * (b_lens / sersic_b_n(src.n_sersic)) ** src.n_sersic
    ell = (1.0 - src.q) / (1.0 + src.q)
    phi = math.radians(src.phi_deg)
    kw = {
        "R_sersic": r_sersic,
        "n_sersic": src.n_sersic,
        "e1": ell * math.cos(2 * phi),
        "e2": ell * math.sin(2 * phi),
    }
    amp = flux / SersicElliptic().total_flux(amp=1.0, **kw)
    return [{"amp": amp, **kw, "center_x": src.x_arcsec, "center_y": src.y_arcsec}]


def lenstronomy_image(lens: LensParams, src: SersicParams, supersample: int, flux: float = 1.0):
    model = ImageModel(
        lenstronomy_grid(),
        PSF(psf_type="NONE"),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["SERSIC_ELLIPSE"]),
        kwargs_numerics={"supersampling_factor": supersample},
    )
    return model.image(lens.lenstronomy_kwargs(), lenstronomy_source_kwargs(src, flux))


# ----------------------------------------------------------------------------- lensing


@pytest.mark.parametrize("lens", LENS_CASES)
def test_deflection_matches_lenstronomy_sie_shear(lens):
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-8, 8, (2, 2000))
    bx, by = ray_shoot(x, y, lens)
    ax_ref, ay_ref = LensModel(["SIE", "SHEAR"]).alpha(x, y, lens.lenstronomy_kwargs())
    np.testing.assert_allclose(x - bx, ax_ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y - by, ay_ref, rtol=1e-6, atol=1e-7)


def test_round_sie_is_sis():
    x, y = np.array([0.3, -1.0, 2.0]), np.array([0.4, 2.0, -0.5])
    bx, by = ray_shoot(x, y, LensParams(1.2, 1.0, 0.0))
    r = np.hypot(x, y)
    np.testing.assert_allclose(x - bx, 1.2 * x / r, rtol=1e-12)
    np.testing.assert_allclose(y - by, 1.2 * y / r, rtol=1e-12)


def test_grid_convention_matches_lenstronomy_pixel_grid():
    x_ref, y_ref = lenstronomy_grid().pixel_coordinates
    x, y = subpixel_coordinates(PixelGrid(N, PIX, 1))
    np.testing.assert_allclose(x, x_ref, atol=1e-6)
    np.testing.assert_allclose(y, y_ref, atol=1e-6)
    # the lens (origin) sits at the corner shared by pixels 31 and 32
    cx, cy = corner_coordinates(PixelGrid(N, PIX, 1))
    assert cx[0, 32] == 0.0 and cy[32, 0] == 0.0
    assert x[0, 31] == pytest.approx(-PIX / 2) and x[0, 32] == pytest.approx(PIX / 2)


@pytest.mark.parametrize(
    ("lens", "source_xy", "expected"),
    [
        (LensParams(1.5, 1.0, 0.0), (0.3, 0.1), 2),  # SIS, inside the cut: double
        (LensParams(1.5, 1.0, 0.0), (1.9, 0.07), 1),  # SIS, outside theta_E: single
        (LensParams(1.5, 0.6, 0.0), (0.05, 0.02), 4),  # inside the astroid: quad
    ],
)
def test_count_images_matches_lenstronomy_solver(lens, source_xy, expected):
    grid = PixelGrid(N, PIX, 1)
    cx, cy = corner_coordinates(grid)
    bx, by = ray_shoot(cx.astype(np.float64), cy.astype(np.float64), lens)
    found = count_images(bx, by, *source_xy, exclude=central_cells(grid))
    model = LensModel(["SIE", "SHEAR"])
    xi, yi = LensEquationSolver(model).image_position_from_source(
        *source_xy, lens.lenstronomy_kwargs(), min_distance=0.05, search_window=10
    )
    mu = np.abs(model.magnification(xi, yi, lens.lenstronomy_kwargs()))
    assert found == expected == int(np.sum(mu > 1e-3))


# ----------------------------------------------------------------------------- source


@pytest.mark.parametrize("n", [0.5, 1.0, 2.0, 4.0])
def test_b_n_agrees_with_ciotti_bertin_series(n):
    series = (
        2 * n
        - 1 / 3
        + 4 / (405 * n)
        + 46 / (25515 * n**2)
        + 131 / (1148175 * n**3)
        - 2194697 / (30690717750 * n**4)
    )
    assert sersic_b_n(n) == pytest.approx(series, abs=5e-4)
    assert special.gammainc(2 * n, sersic_b_n(n)) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("src", SOURCE_CASES)
def test_unlensed_sersic_has_requested_total_flux(src):
    no_lens = LensParams(0.0, 1.0, 0.0)  # zero deflection
    image = render_lensed(no_lens, src, PixelGrid(N, PIX, 8), flux=3.7)
    assert image.sum(dtype=np.float64) == pytest.approx(3.7, rel=5e-3)


# ----------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("case", range(3))
def test_render_matches_lenstronomy_image_model(case, adaptive):
    lens, src = LENS_CASES[case], SOURCE_CASES[case]
    grid = PixelGrid(N, PIX, 4)
    ref = lenstronomy_image(lens, src, supersample=4, flux=2.0)
    render = render_lensed_adaptive if adaptive else render_lensed
    mine = render(lens, src, grid, flux=2.0)
    assert mine.dtype == np.float32 and mine.shape == (N, N)
    rel_l2 = np.linalg.norm(mine - ref) / np.linalg.norm(ref)
    assert rel_l2 <= 1e-3
    assert mine.sum(dtype=np.float64) == pytest.approx(ref.sum(), rel=1e-2)


def test_arc_flux_is_magnification_times_source_flux_point_limit():
    """A small source far from the caustics: flux ratio = point-source magnification."""
    lens = LensParams(1.5, 0.8, 20.0, 0.02, -0.03)
    src = SersicParams(0.5, 0.3, 0.01, 0.5, 1.0, 0.0)  # re = 0.01 arcsec: finite-size effect < 0.1%
    flux_r = 0.8  # nmgy
    arc = render_lensed_adaptive(lens, src, PixelGrid(N, PIX, 32), flux=flux_r)
    model = LensModel(["SIE", "SHEAR"])
    kw = lens.lenstronomy_kwargs()
    xi, yi = LensEquationSolver(model).image_position_from_source(
        src.x_arcsec, src.y_arcsec, kw, min_distance=0.05, search_window=10
    )
    mu_point = float(np.sum(np.abs(model.magnification(xi, yi, kw))))
    assert mu_point > 3  # a strongly lensed configuration
    assert arc.sum(dtype=np.float64) == pytest.approx(mu_point * flux_r, rel=1e-2)


@pytest.mark.parametrize("case", range(3))
def test_arc_flux_is_magnification_times_source_flux_extended(case):
    """Extended sources: our flux = lenstronomy's (finely sampled) magnification x flux."""
    lens, src = LENS_CASES[case], SOURCE_CASES[case]
    mu_ref = lenstronomy_image(lens, src, supersample=8, flux=1.0).sum()
    arc = render_lensed_adaptive(lens, src, PixelGrid(N, PIX, 4), flux=0.37)
    assert arc.sum(dtype=np.float64) == pytest.approx(mu_ref * 0.37, rel=1e-2)


def test_round_centred_source_makes_ring_at_theta_e():
    theta_e = 1.5
    lens = LensParams(theta_e, 1.0, 0.0)
    src = SersicParams(0.0, 0.0, 0.1, 1.0, 1.0, 0.0)
    image = render_lensed(lens, src, PixelGrid(N, PIX, 8))
    yy, xx = np.mgrid[:N, :N]
    r_pix = np.hypot(xx - CENTER, yy - CENTER)
    # centroid on the lens centre (31.5, 31.5)
    total = image.sum(dtype=np.float64)
    assert (image * xx).sum() / total == pytest.approx(CENTER, abs=1e-3)
    assert (image * yy).sum() / total == pytest.approx(CENTER, abs=1e-3)
    # azimuthally averaged profile in 0.25-pixel annuli
    edges = np.arange(0.0, 20.0, 0.25)
    which = np.digitize(r_pix.ravel(), edges)
    prof = np.bincount(which, weights=image.ravel(), minlength=edges.size + 1)
    count = np.bincount(which, minlength=edges.size + 1)
    mean = np.where(count > 0, prof / np.maximum(count, 1), 0.0)[1 : edges.size]
    peak_r_pix = edges[:-1][np.argmax(mean)] + 0.125
    assert abs(peak_r_pix - theta_e / PIX) <= 0.5


# ----------------------------------------------------------------------------- PSF


def _fwhm_pix(profile_1d: np.ndarray, center: int) -> float:
    """FWHM of a symmetric 1-D profile from a cubic spline of its right half."""
    right = profile_1d[center:]
    spline = CubicSpline(np.arange(right.size), right - right[0] / 2.0)
    roots = [r for r in spline.roots(extrapolate=False) if r > 0]
    return 2.0 * float(roots[0])


@pytest.mark.parametrize("fwhms", [(1.1, 1.3, 1.6), (1.45, 1.45, 0.9)])
def test_psf_impulse_is_centred_with_requested_fwhm(fwhms):
    impulse = np.zeros((3, N, N), np.float32)
    impulse[:, 32, 32] = 1.0
    out = convolve(impulse, band_kernel_ffts(fwhms, beta=3.5))
    yy, xx = np.mgrid[:N, :N]
    for b, fwhm in enumerate(fwhms):
        img = out[b].astype(np.float64)
        assert np.unravel_index(np.argmax(img), img.shape) == (32, 32)
        assert img.sum() == pytest.approx(1.0, abs=1e-3)  # flux conserved
        assert (img * xx).sum() / img.sum() == pytest.approx(32.0, abs=1e-3)
        assert (img * yy).sum() / img.sum() == pytest.approx(32.0, abs=1e-3)
        for measured in (_fwhm_pix(img[32], 32), _fwhm_pix(img[:, 32], 32)):
            assert measured * PIX == pytest.approx(fwhm, rel=0.03)


def test_fft_convolution_equals_direct_convolution():
    rng = np.random.default_rng(0)
    images = rng.random((3, N, N)).astype(np.float32)
    fwhms = (1.2, 1.35, 1.5)
    out = convolve(images, band_kernel_ffts(fwhms, beta=3.5))
    for b, fwhm in enumerate(fwhms):
        ref = fftconvolve(images[b].astype(np.float64), moffat_kernel(fwhm, 3.5), mode="same")
        np.testing.assert_allclose(out[b], ref, atol=2e-5 * ref.max())


def test_supplied_psf_is_a_convolution_not_a_correlation():
    psf = np.zeros((3, 5, 5))
    psf[:, 2, 3] = 1.0  # kernel centre is (2, 2): light moves one pixel towards +x
    impulse = np.zeros((3, N, N), np.float32)
    impulse[:, 20, 40] = 2.0
    out = convolve(impulse, band_kernel_ffts((1.0, 1.0, 1.0), 3.5, psf_images=psf))
    for b in range(3):
        assert np.unravel_index(np.argmax(out[b]), (N, N)) == (20, 41)
        assert out[b, 20, 41] == pytest.approx(2.0, rel=1e-5)


# ----------------------------------------------------------------------------- noise


def test_default_gain_is_of_order_1e4_and_follows_exposure_time():
    for gain in DEFAULT_GAIN_E_PER_NMGY:
        assert 5e3 <= gain <= 3e4
    # z has the longest exposure; doubling passes doubles the gain
    zp = 26.5
    assert coadd_gain_e_per_nmgy(zp, DR10_EXPTIME_S[2], 6) == pytest.approx(
        2 * coadd_gain_e_per_nmgy(zp, DR10_EXPTIME_S[2], 3)
    )


@pytest.mark.parametrize("gain", [2.0e3, 1.1e4])
def test_arc_poisson_noise_variance_is_arc_over_gain(gain):
    levels = np.array([0.02, 0.2, 2.0])  # nmgy per pixel, one level per band
    arc = np.broadcast_to(levels[:, None, None], (3, 256, 256)).astype(np.float32)
    noise = arc_poisson_noise(arc, (gain, gain, gain), np.random.default_rng(5))
    assert noise.dtype == np.float32 and noise.shape == arc.shape
    var = noise.reshape(3, -1).var(axis=1)
    np.testing.assert_allclose(var, levels / gain, rtol=0.03)
    # zero mean: |mean| within 5 standard errors
    mean_err = np.abs(noise.reshape(3, -1).mean(axis=1))
    assert np.all(mean_err < 5 * np.sqrt(levels / gain / noise[0].size))


def test_optimal_snr_of_simple_arcs():
    sigma, huge_gain = 0.01, 1e12
    arc = np.zeros((3, N, N))
    arc[0, 10, 10] = 0.05  # one pixel: S/N = flux / sigma
    arc[1, :4, :25] = 0.02  # 100 equal pixels: S/N = sqrt(100) a / sigma
    snr = optimal_snr(arc, (sigma,) * 3, (huge_gain,) * 3)
    assert snr[0] == pytest.approx(5.0, rel=1e-6)
    assert snr[1] == pytest.approx(20.0, rel=1e-6)
    assert snr[2] == 0.0
    # the arc's own shot noise lowers the S/N
    assert optimal_snr(arc, (sigma,) * 3, (100.0,) * 3)[1] < snr[1]
    # noiseless background: the S/N is the arc's shot-noise S/N, finite (no 0/0 pixels)
    no_sky = optimal_snr(arc, (0.0,) * 3, (100.0,) * 3)
    assert np.all(np.isfinite(no_sky))
    assert no_sky[1] == pytest.approx(np.sqrt(100 * 0.02 * 100.0), rel=1e-9)


# ----------------------------------------------------------------------------- host shape


@pytest.mark.parametrize(("q", "beta_deg"), [(0.5, 30.0), (0.75, 125.0)])
def test_host_shape_recovers_elliptical_gaussian(q, beta_deg):
    gal = galsim.Gaussian(sigma=1.0).shear(q=q, beta=beta_deg * galsim.degrees)
    img = gal.drawImage(nx=N, ny=N, scale=PIX).array
    shape = measure_host_shape(img)
    assert shape.measured
    assert shape.q == pytest.approx(q, abs=0.02)
    assert abs((shape.phi_deg - beta_deg + 90.0) % 180.0 - 90.0) < 2.0


def test_host_shape_falls_back_to_round():
    for img in (np.zeros((N, N)), np.random.default_rng(1).normal(0, 1, (N, N))):
        shape = measure_host_shape(img)
        assert not shape.measured and shape.q == 1.0 and shape.phi_deg == 0.0
