"""Correlated sky noise of resampled coadds (builder/inject/noise.py), pinned against GalSim."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from scipy.signal import correlate2d

from builder.inject.skynoise import (
    RESAMPLING_KERNELS,
    correlated_sky_noise,
    draw_resampling_shifts,
    expected_autocorrelation,
    expected_lag1_autocorrelation,
    lanczos3_weights,
    measured_lag1_autocorrelation,
    resampled_noise,
)
from builder.photometry import moffat_nea_pix, psfdepth_from_sigma_pix, sigma_pix_from_psfdepth

SHAPE = (512, 512)
SHIFTS = np.array([[0.5, 0.5], [0.2, 0.7], [0.9, 0.35]])


def _brute_force_rho(shifts, lag, kernel="lanczos3"):
    """Expected correlation from the full 2-D kernel autocorrelation (scipy), summed over exposures."""
    num = den = 0.0
    for sy, sx in shifts:
        k2 = np.outer(RESAMPLING_KERNELS[kernel](sy), RESAMPLING_KERNELS[kernel](sx))
        acf = correlate2d(k2, k2, mode="full")
        cy, cx = k2.shape[0] - 1, k2.shape[1] - 1
        iy, ix = cy + lag[0], cx + lag[1]
        # beyond the kernel's support the noise is uncorrelated
        inside = iy < acf.shape[0] and ix < acf.shape[1]
        num += acf[iy, ix] if inside else 0.0
        den += acf[cy, cx]
    return num / den


def test_lanczos3_weights_are_the_lanczos_kernel():
    s = 0.3
    x = np.arange(-2, 4) - s
    ref = np.array([np.sin(np.pi * v) * np.sin(np.pi * v / 3) * 3 / (np.pi * v) ** 2 for v in x])
    np.testing.assert_allclose(lanczos3_weights(s), ref / ref.sum(), rtol=1e-12)
    # no shift: the resampling is the identity, and the noise stays white
    np.testing.assert_allclose(lanczos3_weights(0.0), [0, 0, 1, 0, 0, 0], atol=1e-15)
    assert expected_lag1_autocorrelation(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("lag", [(0, 1), (1, 0), (1, 1), (0, 2), (2, 1)])
@pytest.mark.parametrize("kernel", sorted(RESAMPLING_KERNELS))
def test_expected_autocorrelation_equals_brute_force(lag, kernel):
    assert expected_autocorrelation(SHIFTS, lag, kernel) == pytest.approx(
        _brute_force_rho(SHIFTS, lag, kernel), rel=1e-10, abs=1e-14
    )


def test_bilinear_closed_form():
    for d in (0.1, 0.25, 0.5):
        rho = expected_autocorrelation(np.array([[0.0, d]]), (0, 1), "bilinear")
        assert rho == pytest.approx(d * (1 - d) / ((1 - d) ** 2 + d**2), rel=1e-12)


def test_variance_preserved_and_lag1_matches_expected():
    sigma = 0.025
    rng = np.random.default_rng(5)
    field = resampled_noise(SHAPE, sigma, np.array([[0.5, 0.5]]), rng)
    assert field.var() == pytest.approx(sigma**2, rel=0.03)
    expected = expected_lag1_autocorrelation(np.array([[0.5, 0.5]]))
    assert 0.1 < expected < 0.4  # clearly correlated, like a resampled coadd
    assert measured_lag1_autocorrelation(field) == pytest.approx(expected, abs=0.01)
    # and for several exposures with different offsets, x and y separately
    field = resampled_noise(SHAPE, sigma, SHIFTS, rng)
    assert field.var() == pytest.approx(sigma**2, rel=0.03)
    d = field - field.mean()
    rho_x = np.mean(d[:, 1:] * d[:, :-1]) / d.var()
    rho_y = np.mean(d[1:] * d[:-1]) / d.var()
    assert rho_x == pytest.approx(expected_autocorrelation(SHIFTS, (0, 1)), abs=0.01)
    assert rho_y == pytest.approx(expected_autocorrelation(SHIFTS, (1, 0)), abs=0.01)


def test_galsim_correlated_noise_measures_the_same_variance_and_correlation():
    sigma = 0.04
    field = resampled_noise(SHAPE, sigma, SHIFTS, np.random.default_rng(8))
    cn = galsim.CorrelatedNoise(galsim.ImageD(field, scale=1.0))
    assert cn.getVariance() == pytest.approx(sigma**2, rel=0.03)
    cf = cn.drawImage(galsim.ImageD(5, 5, scale=1.0)).array  # correlation function, [y, x]
    var = cf[2, 2]
    assert cf[2, 3] / var == pytest.approx(expected_autocorrelation(SHIFTS, (0, 1)), abs=0.01)
    assert cf[3, 2] / var == pytest.approx(expected_autocorrelation(SHIFTS, (1, 0)), abs=0.01)
    assert cf[3, 3] / var == pytest.approx(expected_autocorrelation(SHIFTS, (1, 1)), abs=0.01)


def test_per_band_noise_keeps_psfdepth():
    psfdepth = np.array([2500.0, 1200.0, 300.0])
    nea = np.array([moffat_nea_pix(f) for f in (1.4, 1.3, 1.2)])
    sigma = sigma_pix_from_psfdepth(psfdepth, nea)
    noise, shifts = correlated_sky_noise(SHAPE, sigma, np.random.default_rng(2))
    assert noise.shape == (3, *SHAPE) and shifts.shape == (3, 3, 2)
    assert not np.allclose(shifts[0], shifts[1])  # each band has its own exposures
    for b in range(3):
        recovered = psfdepth_from_sigma_pix(noise[b].std(), nea[b])
        assert recovered == pytest.approx(psfdepth[b], rel=0.05)
        assert measured_lag1_autocorrelation(noise[b]) == pytest.approx(
            expected_lag1_autocorrelation(shifts[b]), abs=0.015
        )


def test_default_offsets_give_positive_lag1_correlation():
    rng = np.random.default_rng(0)
    rhos = np.array(
        [expected_lag1_autocorrelation(draw_resampling_shifts(rng)) for _ in range(500)]
    )
    print(f"lag-1 correlation, 3 Lanczos-3 exposures: 5/50/95% {np.percentile(rhos, [5, 50, 95])}")
    assert np.all(rhos >= 0) and np.median(rhos) > 0.05


def test_determinism_and_errors():
    a = correlated_sky_noise((32, 32), [0.1], np.random.default_rng(1))
    b = correlated_sky_noise((32, 32), [0.1], np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="resampling kernel"):
        resampled_noise((8, 8), 1.0, SHIFTS, np.random.default_rng(0), kernel="nearest")
    with pytest.raises(ValueError, match="shift"):
        resampled_noise((8, 8), 1.0, np.array([[0.0, 1.0]]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigma"):
        resampled_noise((8, 8), -1.0, SHIFTS, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_exposures"):
        draw_resampling_shifts(np.random.default_rng(0), 0)


def test_synthetic_sky_noise_is_correlated_sky_plus_white_shot_noise():
    from builder.inject.skynoise import synthetic_sky_noise

    sigma = [0.01, 0.02, 0.05]
    model = np.zeros((3, *SHAPE))
    noise = synthetic_sky_noise(model, sigma, 1e4, np.random.default_rng(4))
    for b in range(3):
        assert noise[b].std() == pytest.approx(sigma[b], rel=0.03)
        assert measured_lag1_autocorrelation(noise[b]) > 0.05
    # a bright source adds its (white) Poisson variance model / gain on top of the sky
    bright = np.full((3, *SHAPE), 4.0)
    extra = synthetic_sky_noise(bright, sigma, 1e4, np.random.default_rng(4))
    want = np.sqrt(np.square(sigma) + 4.0 / 1e4)
    np.testing.assert_allclose(extra.std(axis=(1, 2)), want, rtol=0.03)
