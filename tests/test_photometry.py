"""Tests of builder.photometry: template colours, magnitudes, and the depth/noise relations."""

from __future__ import annotations

import math
from pathlib import Path

import galsim
import numpy as np
import pytest
import speclite.filters

from builder import photometry as ph
from shards.schema import PIXEL_SCALE_ARCSEC


def _colours(sed: str, z: float) -> tuple[float, float]:
    g, r, zz = ph.band_fluxes_nmgy(sed, z, 20.0)
    return -2.5 * math.log10(g / r), -2.5 * math.log10(r / zz)


@pytest.mark.parametrize("sed", ["E", "Im", "Scd"])
@pytest.mark.parametrize("mag_r", [16.0, 19.37, 23.5])
def test_mag_r_round_trips_exactly(sed: str, mag_r: float) -> None:
    for z in (0.0, 0.45, 1.234, 3.0):
        flux = ph.band_fluxes_nmgy(sed, z, mag_r)
        assert flux.shape == (3,) and flux.dtype == np.float64
        assert ph.nmgy_to_mag(flux[1]) == pytest.approx(mag_r, abs=1e-12)


def test_elliptical_colours_in_lrg_range() -> None:
    for z in np.linspace(0.3, 0.8, 26):
        gr, rz = _colours("E", float(z))
        assert 1.0 <= gr <= 2.0, (z, gr)
        # The non-evolving CWW E template reddens in r-z with redshift (the 4000 A break
        # crosses r); it stays in ~0.6-1.5 to z ~ 0.55 and reaches ~2.1 at z = 0.8, close
        # to observed DESI LRGs at that redshift.
        assert 0.6 <= rz <= 2.2, (z, rz)
        if z <= 0.55:
            assert rz <= 1.5, (z, rz)
    _, g_r, r_z = ph.colour_table("E")
    zg = ph.colour_table("E")[0]
    sel = (zg >= 0.3) & (zg <= 0.8)
    assert np.all(np.diff(r_z[sel]) > 0), "r-z of an elliptical must redden with redshift here"


def test_star_forming_template_is_blue_at_high_redshift() -> None:
    for z in np.linspace(1.0, 3.0, 41):
        gr, _ = _colours("Im", float(z))
        assert gr < 0.6, (z, gr)
    # ...and bluer than the elliptical at the same redshift.
    assert _colours("Im", 0.5)[0] < _colours("E", 0.5)[0] - 0.5


def test_colour_table_matches_speclite_on_native_sed_grid() -> None:
    """Independent check: speclite on the template's own (redshifted) wavelength grid."""
    filters = speclite.filters.load_filters("decam2014-g", "decam2014-r", "decam2014-z")
    sed = np.loadtxt(Path(galsim.meta_data.share_dir) / "SEDs" / "CWW_Scd_ext.sed")
    for z in (0.2, 0.77, 1.5):
        wl = sed[:, 0] * (1 + z)
        keep = (wl > 3000) & (wl < 12000)
        mags = filters.get_ab_magnitudes(sed[keep, 1] / (1 + z), wl[keep])
        gr = float(mags["decam2014-g"][0] - mags["decam2014-r"][0])
        rz = float(mags["decam2014-r"][0] - mags["decam2014-z"][0])
        got_gr, got_rz = _colours("Scd", z)
        assert got_gr == pytest.approx(gr, abs=0.01)
        assert got_rz == pytest.approx(rz, abs=0.01)


def test_colour_table_is_read_only_and_consistent() -> None:
    z, gr, rz = ph.colour_table("Im")
    assert z[0] == 0.0 and z[-1] == pytest.approx(ph.Z_GRID_MAX)
    assert z.shape == gr.shape == rz.shape
    with pytest.raises(ValueError):
        gr[0] = 1.0
    i = 123
    assert _colours("Im", float(z[i])) == pytest.approx((gr[i], rz[i]), abs=1e-9)


@pytest.mark.parametrize(
    ("sed", "z", "mag"),
    [("Sbc", 0.5, 20.0), ("E", -0.1, 20.0), ("E", 7.0, 20.0), ("E", 0.5, float("nan"))],
)
def test_band_fluxes_bad_input_raises(sed: str, z: float, mag: float) -> None:
    with pytest.raises(ValueError):
        ph.band_fluxes_nmgy(sed, z, mag)


def test_magnitude_conversions() -> None:
    assert ph.mag_to_nmgy(22.5) == pytest.approx(1.0)
    assert ph.mag_to_nmgy(20.0) == pytest.approx(10.0)
    mags = np.array([15.0, 20.3, 27.1])
    assert np.allclose(ph.nmgy_to_mag(ph.mag_to_nmgy(mags)), mags, atol=1e-12)
    for bad in (0.0, -1.0, np.array([1.0, -2.0]), float("inf")):
        with pytest.raises(ValueError):
            ph.nmgy_to_mag(bad)


def test_depth_sigma_relation_inverts() -> None:
    depth = np.array([30.0, 300.0, 3000.0])
    nea = np.array([40.0, 60.0, 90.0])
    sigma = ph.sigma_pix_from_psfdepth(depth, nea)
    assert np.allclose(sigma, 1 / np.sqrt(depth * nea))
    assert np.allclose(ph.psfdepth_from_sigma_pix(sigma, nea), depth)
    with pytest.raises(ValueError):
        ph.sigma_pix_from_psfdepth(0.0, 50.0)
    with pytest.raises(ValueError):
        ph.psfdepth_from_sigma_pix(0.01, -1.0)


def test_moffat_nea_matches_analytic_when_well_sampled() -> None:
    """For a broad Moffat, NEA -> pi alpha^2 (2 beta - 1) / (beta - 1)^2 (continuous limit)."""
    beta, fwhm = 3.5, 4.0
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1)) / PIXEL_SCALE_ARCSEC
    analytic = math.pi * alpha**2 * (2 * beta - 1) / (beta - 1) ** 2
    assert ph.moffat_nea_pix(fwhm, beta) == pytest.approx(analytic, rel=0.01)


@pytest.mark.parametrize("fwhm", [0.55, 1.137, 1.5313, 2.71, 5.0])
def test_moffat_nea_table_matches_direct_draw(fwhm: float) -> None:
    assert ph.moffat_nea_pix(fwhm, 3.5) == pytest.approx(ph.moffat_nea_direct(fwhm, 3.5), rel=2e-4)
    assert ph.moffat_nea_pix(fwhm, 2.5) > ph.moffat_nea_pix(fwhm, 4.5)  # heavier wings, larger NEA


def test_psfdepth_is_the_inverse_variance_of_a_psf_fit() -> None:
    """Monte Carlo: optimal PSF photometry on white noise has variance 1 / psfdepth."""
    fwhm, beta, sigma = 1.3, 3.5, 0.01
    psf = galsim.Moffat(beta=beta, fwhm=fwhm).drawImage(nx=65, ny=65, scale=PIXEL_SCALE_ARCSEC)
    p = psf.array.astype(np.float64)
    p /= p.sum()
    rng = np.random.default_rng(1)
    fluxes = np.concatenate(
        [
            np.einsum("nij,ij->n", rng.normal(0.0, sigma, size=(1000, 65, 65)), p) / np.sum(p * p)
            for _ in range(10)
        ]
    )  # 10^4 fits: the variance is known to ~1.4 %
    depth = ph.psfdepth_from_sigma_pix(sigma, ph.moffat_nea_pix(fwhm, beta))
    assert 1.0 / np.var(fluxes) == pytest.approx(depth, rel=0.06)


def test_estimate_psfdepth_recovers_white_noise_level() -> None:
    rng = np.random.default_rng(3)
    sigma = 0.02
    img = rng.normal(0.0, sigma, size=(64, 64))
    img[20:44, 20:44] += 5.0  # a bright central source must not matter (outside the annulus)
    est = ph.estimate_psfdepth(img, 1.2, 3.5, 24.0)
    truth = ph.psfdepth_from_sigma_pix(sigma, ph.moffat_nea_pix(1.2, 3.5))
    assert est == pytest.approx(truth, rel=0.08)
    assert math.isnan(ph.estimate_psfdepth(np.ones((64, 64)), 1.2))
