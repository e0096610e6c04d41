"""Host-tied lens population (builder/inject/population.py, cosmology.py) vs astropy.cosmology."""

from __future__ import annotations

import math

import astropy.cosmology as apc
import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from scipy import integrate

from builder.inject.cosmology import COSMOLOGIES, DistanceTable, sie_theta_e_arcsec
from builder.inject.population import (
    PopulationConfig,
    absolute_mag_r,
    draw_lens,
    faber_jackson_sigma_kms,
    k_correction_e_r_mag,
    redshift_for_magnitude,
    source_redshift_from_uniform,
)
from common.configio import ConfigError, from_mapping

ZL = np.array([0.1, 0.3, 0.5, 0.8])
ZS = np.array([0.6, 1.0, 2.0, 3.5])


def _astropy_theta_e(cosmo, sigma_kms, zl, zs):
    d_ls = cosmo.angular_diameter_distance_z1z2(zl, zs)
    d_s = cosmo.angular_diameter_distance(zs)
    c_kms = const.c.to_value(u.km / u.s)
    return (4 * math.pi * (sigma_kms / c_kms) ** 2 * (d_ls / d_s)).value * 206264.80624709636


@pytest.mark.parametrize("name", ["Planck18", "WMAP9", "FlatLambdaCDM_H70_Om0.3"])
def test_distances_match_astropy(name):
    table = DistanceTable(name)
    cosmo = COSMOLOGIES[name]()
    np.testing.assert_allclose(
        table.angular_diameter_distance_mpc(ZS),
        cosmo.angular_diameter_distance(ZS).to_value(u.Mpc),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        table.angular_diameter_distance_mpc(ZL, ZS),
        cosmo.angular_diameter_distance_z1z2(ZL, ZS).to_value(u.Mpc),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        table.distance_modulus_mag(ZS), cosmo.distmod(ZS).to_value(u.mag), atol=1e-4
    )


def test_open_cosmology_uses_the_curvature_relation():
    COSMOLOGIES["_test_open"] = lambda: apc.LambdaCDM(H0=70.0, Om0=0.25, Ode0=0.65)
    try:
        table = DistanceTable("_test_open")
        cosmo = COSMOLOGIES["_test_open"]()
        assert cosmo.Ok0 > 0.05
        np.testing.assert_allclose(
            table.angular_diameter_distance_mpc(ZL, ZS),
            cosmo.angular_diameter_distance_z1z2(ZL, ZS).to_value(u.Mpc),
            rtol=1e-5,
        )
    finally:
        del COSMOLOGIES["_test_open"]
    with pytest.raises(ValueError, match="unknown cosmology"):
        DistanceTable("nope")


def test_sie_theta_e_matches_astropy_and_the_textbook_value():
    cosmo = apc.Planck18
    for sigma in (150.0, 250.0, 320.0):
        got = sie_theta_e_arcsec(sigma, ZL, ZS, "Planck18")
        np.testing.assert_allclose(got, _astropy_theta_e(cosmo, sigma, ZL, ZS), rtol=1e-5)
    # a 250 km/s lens at z = 0.3 with a z = 1 source: ~1.1-1.2" (SLACS-like)
    assert 1.0 < float(sie_theta_e_arcsec(250.0, 0.3, 1.0)) < 1.3
    # theta_E ~ sigma^2, and no lensing of a source in front of the lens
    ratio = sie_theta_e_arcsec(300.0, 0.3, 1.0) / sie_theta_e_arcsec(150.0, 0.3, 1.0)
    assert float(ratio) == pytest.approx(4.0, rel=1e-12)
    assert float(sie_theta_e_arcsec(250.0, 0.5, 0.4)) == 0.0
    with pytest.raises(ValueError, match="sigma_v"):
        sie_theta_e_arcsec(-1.0, 0.3, 1.0)


def test_faber_jackson_and_magnitudes():
    cfg = PopulationConfig()
    assert float(faber_jackson_sigma_kms(cfg.fj_abs_mag_ref, cfg)) == pytest.approx(200.0)
    # L ~ sigma^4: one magnitude brighter is 10^(0.4/4) times the dispersion
    s1, s2 = faber_jackson_sigma_kms([-21.5, -22.5], cfg)
    assert s2 / s1 == pytest.approx(10**0.1, rel=1e-12)
    assert float(k_correction_e_r_mag(0.0)) == pytest.approx(0.0, abs=1e-9)
    # an elliptical gets fainter in observed r with z (the 4000 A break enters r near z ~ 0.4)
    k = k_correction_e_r_mag([0.1, 0.3, 0.5])
    assert np.all(np.diff(k) > 0) and k[-1] > 0.5
    # redshift_for_magnitude inverts absolute_mag_r
    z = redshift_for_magnitude(19.5, -22.0, (0.05, 1.5), "Planck18")
    assert float(absolute_mag_r(19.5, z)) == pytest.approx(-22.0, abs=2e-3)
    m = -22.0 + apc.Planck18.distmod(z).value + float(k_correction_e_r_mag(z))
    assert m == pytest.approx(19.5, abs=2e-3)


def test_redshift_for_magnitude_cached_curve_equals_the_direct_formula():
    # the DM + K curve is tabulated once per (z_range, cosmology): same values as computing it
    # on each call (the formula before the cache), bit for bit, on random magnitudes
    from builder.inject.cosmology import distance_table

    rng = np.random.default_rng(3)
    for z_range, cosmo in (((0.05, 1.5), "Planck18"), ((0.1, 1.2), "Planck18")):
        z = np.arange(z_range[0], z_range[1] + 5e-4, 1e-3)
        curve = distance_table(cosmo).distance_modulus_mag(z) + k_correction_e_r_mag(z)
        for m, a in zip(rng.uniform(15, 24, 50), rng.normal(-22, 0.6, 50), strict=True):
            direct = float(np.interp(float(m) - float(a), curve, z))
            assert redshift_for_magnitude(float(m), float(a), z_range, cosmo) == direct


def test_source_redshift_distribution_matches_its_density():
    cfg = PopulationConfig()
    rng = np.random.default_rng(0)
    z_min = 0.6
    draws = np.array([source_redshift_from_uniform(rng.uniform(), z_min, cfg) for _ in range(4000)])
    assert draws.min() >= z_min and draws.max() <= cfg.source_z_range[1]

    def pdf(z):
        return z**cfg.source_z_alpha * math.exp(-((z / cfg.source_z0) ** cfg.source_z_beta))

    norm = integrate.quad(pdf, z_min, cfg.source_z_range[1])[0]
    for zq in (1.0, 1.5, 2.0, 3.0):
        want = integrate.quad(pdf, z_min, zq)[0] / norm
        assert np.mean(draws <= zq) == pytest.approx(want, abs=0.025)


def test_draw_lens_uses_catalogue_values_and_is_reproducible():
    cfg = PopulationConfig()
    a = draw_lens(19.0, np.random.default_rng(3), cfg)
    b = draw_lens(19.0, np.random.default_rng(3), cfg)
    assert a == b and a.z_lens_from == "magnitude" and a.sigma_v_from == "faber_jackson"
    assert a.z_source > a.z_lens + cfg.source_min_dz - 1e-12
    want = sie_theta_e_arcsec(a.sigma_v_kms, a.z_lens, a.z_source)
    assert a.theta_e_arcsec == pytest.approx(float(want))
    c = draw_lens(19.0, np.random.default_rng(3), cfg, {"z_phot": 0.42, "sigma_v": 260.0})
    assert (c.z_lens, c.z_lens_from, c.sigma_v_kms, c.sigma_v_from) == (
        0.42,
        "z_phot",
        260.0,
        "catalog",
    )
    d = draw_lens(19.0, np.random.default_rng(3), cfg, {"z": 0.3, "z_phot": 0.42, "sigma_v": "nan"})
    assert d.z_lens == 0.3 and d.z_lens_from == "z" and d.sigma_v_from == "faber_jackson"
    with pytest.raises(ValueError, match="host_mag_r"):
        draw_lens(float("nan"), np.random.default_rng(0), cfg)


def test_default_theta_e_distribution_is_galaxy_scale_and_falls_with_radius():
    """DR10-like hosts (r = 18-21): median theta_E <= 1.5", few above 2", and the histogram
    falls above its mode (most galaxy-scale lenses have theta_E ~0.8-2")."""
    cfg = PopulationConfig()
    rng = np.random.default_rng(1)
    mags = rng.uniform(18.0, 21.0, 3000)
    theta = np.array([draw_lens(m, rng, cfg).theta_e_arcsec for m in mags])
    print(f'theta_E 5/50/95%: {np.percentile(theta, [5, 50, 95])}, >=2": {np.mean(theta >= 2):.3f}')
    assert np.median(theta) <= 1.5
    assert np.mean(theta >= 2.0) < 0.1
    hist, _ = np.histogram(theta, bins=np.arange(0.0, 3.01, 0.25))
    mode = int(np.argmax(hist))
    assert np.all(np.diff(hist[mode:]) <= 0)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError) as err:
        from_mapping(PopulationConfig, {"cosmology": "Planck99"}, "injection.population")
    assert err.value.key == "injection.population.cosmology"
    with pytest.raises(ConfigError) as err:
        from_mapping(PopulationConfig, {"source_z_range": [0.5, 1.0]}, "injection.population")
    assert err.value.key == "injection.population.source_z_range"
