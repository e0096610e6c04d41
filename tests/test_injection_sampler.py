"""Parameter draws, acceptance, redraws and the public ``inject_arc`` API."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from builder.inject import InjectionConfig, InjectionResult, inject_arc
from builder.inject.config import SourceConfig
from builder.inject.host_shape import HostShape
from builder.inject.sampler import REJECTION_REASONS, draw_parameters
from builder.inject.visibility import VisibilityConfig
from builder.photometry import band_fluxes_nmgy, nmgy_to_mag
from common.configio import ConfigError, from_mapping, to_dict
from shards.schema import BANDS, STAMP_SHAPE

CATALOG = {
    "ra": 150.0,
    "dec": 2.0,
    "psfsize_g": 1.5,
    "psfsize_r": 1.35,
    "psfsize_z": 1.25,
    "psfdepth_g": 1500.0,
    "psfdepth_r": 600.0,
    "psfdepth_z": 150.0,
}
REQUIRED_PARAMS = (
    "theta_e_arcsec lens_q lens_phi_deg gamma1 gamma2 source_x_arcsec source_y_arcsec "
    "source_re_arcsec source_n_sersic source_q source_phi_deg source_z source_sed "
    "source_mag_g source_mag_r source_mag_z magnification arc_snr_g arc_snr_r arc_snr_z "
    "arc_flux_nmgy_g arc_flux_nmgy_r arc_flux_nmgy_z psf_fwhm_g psf_fwhm_r psf_fwhm_z host_q "
    "host_phi_deg n_draws gain_e_per_nmgy_g gain_e_per_nmgy_r gain_e_per_nmgy_z"
).split()


def make_host(brightness: float = 1.0, noise_sigma: float = 0.006, seed: int = 0) -> np.ndarray:
    """Elliptical exponential host (q ~ 0.7 along x) plus Gaussian sky noise, nmgy."""
    yy, xx = np.mgrid[:64, :64] - 31.5
    light = np.exp(-np.hypot(xx / 1.0, yy / 0.7) / 3.0) * brightness
    noise = np.random.default_rng(seed).normal(0.0, noise_sigma, STAMP_SHAPE)
    return (noise + light * np.array([0.3, 0.8, 1.5])[:, None, None]).astype(np.float32)


#: Visibility that accepts every arc with any pixel above 1 sigma (tests of the other cuts).
LAX = VisibilityConfig(min_snr=0.0, require_resolved=False, require_stretched=False)


@pytest.fixture(scope="module")
def host() -> np.ndarray:
    return make_host()


def test_draws_respect_configured_ranges():
    source = SourceConfig(model="sersic", mag_r=(24.0, 25.0), z=(1.5, 2.0))
    cfg = InjectionConfig(lens_prior="uniform", theta_e_arcsec=(0.8, 2.0), source=source)
    rng = np.random.default_rng(11)
    host_shape = HostShape(q=0.35, phi_deg=170.0, measured=True)
    draws = [draw_parameters(rng, cfg, host_shape) for _ in range(2000)]
    theta = np.array([d.lens.theta_e_arcsec for d in draws])
    assert theta.min() >= 0.8 and theta.max() <= 2.0
    assert theta.max() - theta.min() > 1.1  # the range is explored
    lens_q = np.array([d.lens.q for d in draws])
    assert lens_q.min() >= cfg.lens_q_range[0] and lens_q.max() <= cfg.lens_q_range[1]
    offset = np.array([math.hypot(d.source.x_arcsec, d.source.y_arcsec) for d in draws])
    assert np.all(offset <= source.offset_max_theta_e * theta + 1e-12)
    shape = source.section("sersic")
    for (lo, hi), values, name in (
        (shape.re_arcsec, [d.source.re_arcsec for d in draws], "re"),
        (shape.n, [d.source.n_sersic for d in draws], "n"),
        (shape.q, [d.source.q for d in draws], "q"),
        (source.mag_r, [d.mag_r for d in draws], "mag_r"),
        (source.z, [d.redshift for d in draws], "z"),
    ):
        assert lo <= min(values) and max(values) <= hi, name
        assert max(values) - min(values) > 0.8 * (hi - lo), name  # the range is explored
    assert {d.sed for d in draws} == set(source.seds)
    g = np.array([[d.lens.gamma1, d.lens.gamma2] for d in draws])
    assert np.std(g, axis=0) == pytest.approx([cfg.shear_sigma] * 2, rel=0.1)
    # the mass angle scatters around the host light's angle (wrapping at 180 deg)
    dphi = (np.array([d.lens.phi_deg for d in draws]) - 170.0 + 90.0) % 180.0 - 90.0
    assert np.std(dphi) == pytest.approx(cfg.lens_phi_sigma_deg, rel=0.1)


@pytest.mark.parametrize("model", ["clumpy", "sersic"])
def test_accepted_injection_api_and_params(host, model):
    cfg = InjectionConfig(source=SourceConfig(model=model))
    res = inject_arc(host, CATALOG, np.random.default_rng(2), cfg)
    assert isinstance(res, InjectionResult) and res.accepted
    assert res.image_nmgy.shape == STAMP_SHAPE and res.image_nmgy.dtype == np.float32
    assert res.arc_nmgy.shape == STAMP_SHAPE and res.arc_nmgy.dtype == np.float32
    p = res.params
    assert not set(REQUIRED_PARAMS) - set(p)
    json.loads(json.dumps(p))  # plain JSON types only
    assert all(isinstance(v, bool | int | float | str) for v in p.values())
    assert p["n_draws"] == res.n_draws == sum(res.rejections.values()) + 1
    assert p["magnification"] >= cfg.min_magnification
    assert math.hypot(*(p[f"arc_snr_{b}"] for b in BANDS)) >= cfg.min_arc_snr
    # source magnitudes: r as drawn, colours from the SED template at the drawn redshift
    if model == "sersic":
        flux = band_fluxes_nmgy(p["source_sed"], p["source_z"], p["source_mag_r"])
    else:  # body + knots: the total colour lies between the body's and the (bluer) knots'
        flux = np.array([10 ** (-0.4 * (p[f"source_mag_{b}"] - 22.5)) for b in BANDS])
        g_r = p["source_mag_g"] - p["source_mag_r"]
        assert p["source_knot_g_minus_r"] - 1e-9 <= g_r <= p["source_body_g_minus_r"] + 1e-9
    for b, band in enumerate(BANDS):
        assert p[f"source_mag_{band}"] == pytest.approx(float(nmgy_to_mag(flux[b])), abs=1e-9)
        # lensed arc flux = magnification x unlensed flux (PSF conserves flux); with two colour
        # components the magnification is their r-flux-weighted mean, exact in r only
        tol = 1e-2 if model == "sersic" or band == "r" else 0.1
        assert p[f"arc_flux_nmgy_{band}"] == pytest.approx(p["magnification"] * flux[b], rel=tol)
        assert res.arc_nmgy[b].sum() == pytest.approx(p[f"arc_flux_nmgy_{band}"], rel=1e-4)
        assert p[f"psf_fwhm_{band}"] == CATALOG[f"psfsize_{band}"]
    # image = host + arc + zero-mean photon noise with variance arc / gain
    resid = res.image_nmgy.astype(np.float64) - host - res.arc_nmgy
    gains = np.array([p[f"gain_e_per_nmgy_{b}"] for b in BANDS])
    bright = res.arc_nmgy > 0.2 * res.arc_nmgy.max(axis=(1, 2), keepdims=True)
    assert np.any(resid[bright] != 0.0)
    z = resid / np.sqrt(np.maximum(res.arc_nmgy, 1e-12) / gains[:, None, None])
    assert abs(np.std(z[bright]) - 1.0) < 0.35


def test_same_seed_same_result_and_different_seed_differs(host):
    cfg = InjectionConfig()
    a = inject_arc(host, CATALOG, np.random.default_rng(7), cfg)
    b = inject_arc(host, CATALOG, np.random.default_rng(7), cfg)
    c = inject_arc(host, CATALOG, np.random.default_rng(8), cfg)
    assert a.params == b.params and a.rejections == b.rejections
    np.testing.assert_array_equal(a.image_nmgy, b.image_nmgy)
    assert a.params["source_mag_r"] != c.params["source_mag_r"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_source_never_depends_on_host_brightness(seed):
    """Uniform lens prior: same generator state -> same draws and acceptance, any host brightness."""
    cfg = InjectionConfig(lens_prior="uniform")
    results = [
        inject_arc(
            make_host(brightness, noise_sigma=0.0), CATALOG, np.random.default_rng(seed), cfg
        )
        for brightness in (0.05, 1.0, 200.0)
    ]
    keys = [k for k in REQUIRED_PARAMS if not k.startswith(("host_", "arc_"))]
    for res in results[1:]:
        assert res.accepted and res.n_draws == results[0].n_draws
        for k in keys:
            want = results[0].params[k]
            assert res.params[k] == (
                want if isinstance(want, str) else pytest.approx(want, rel=1e-6)
            ), k


def test_source_draws_ignore_the_host_shape():
    cfg = InjectionConfig()
    round_host = HostShape(q=1.0, phi_deg=0.0, measured=False)
    flat_host = HostShape(q=0.3, phi_deg=60.0, measured=True)
    for seed in range(20):
        a = draw_parameters(np.random.default_rng(seed), cfg, round_host, 19.0)
        b = draw_parameters(np.random.default_rng(seed), cfg, flat_host, 19.0)
        assert a.source.metadata() == b.source.metadata()
        assert a.source.center_arcsec() == b.source.center_arcsec()
        assert (a.mag_r, a.sed, a.redshift) == (b.mag_r, b.sed, b.redshift)
        assert a.lens.theta_e_arcsec == b.lens.theta_e_arcsec


def test_population_prior_ties_theta_e_to_the_host_but_not_the_source_light():
    """Default prior: a fainter host (farther, less massive) gets smaller Einstein radii; the
    source's magnitude, shape and template never depend on the host."""
    cfg = InjectionConfig()
    shape = HostShape(q=0.8, phi_deg=30.0, measured=True)
    theta = {}
    for mag in (18.0, 20.5):
        draws = [draw_parameters(np.random.default_rng(s), cfg, shape, mag) for s in range(300)]
        theta[mag] = np.array([d.lens.theta_e_arcsec for d in draws])
        for d in draws:
            assert d.redshift == d.population.z_source > d.population.z_lens
            assert d.lens.theta_e_arcsec == d.population.theta_e_arcsec
        if mag == 18.0:
            bright = draws
    assert np.median(theta[18.0]) > 1.2 * np.median(theta[20.5])
    for a, b in zip(bright, draws, strict=True):
        assert (a.mag_r, a.sed, a.source.body.re_arcsec, a.source.body.n_sersic) == (
            b.mag_r,
            b.sed,
            b.source.body.re_arcsec,
            b.source.body.n_sersic,
        )
    with pytest.raises(ValueError, match="host_mag_r"):
        draw_parameters(np.random.default_rng(0), cfg, shape)


def test_rejected_draws_are_counted_by_reason(host):
    default = [
        inject_arc(host, CATALOG, np.random.default_rng(s), InjectionConfig()) for s in range(6)
    ]
    assert sum(r.rejections["visibility"] for r in default) > 0
    cfg = InjectionConfig(min_magnification=12.0, min_arc_snr=40.0, max_draws=60, visibility=LAX)
    rng = np.random.default_rng(4)
    totals = dict.fromkeys(REJECTION_REASONS, 0)
    for _ in range(6):
        res = inject_arc(host, CATALOG, rng, cfg)
        assert set(res.rejections) == set(REJECTION_REASONS)
        assert sum(res.rejections.values()) == res.n_draws - int(res.accepted)
        if res.accepted:
            assert res.params["magnification"] >= 12.0 and res.params["arc_snr"] >= 40.0
        for k, v in res.rejections.items():
            totals[k] += v
    assert totals["magnification"] > 0 and totals["arc_snr"] > 0


def test_hopeless_config_is_rejected_after_max_draws(host):
    cfg = InjectionConfig(min_arc_snr=1e6, max_draws=7, visibility=LAX)
    res = inject_arc(host, CATALOG, np.random.default_rng(0), cfg)
    assert not res.accepted
    assert res.image_nmgy is None and res.arc_nmgy is None
    assert res.n_draws == 7 and sum(res.rejections.values()) == 7
    assert res.rejections["arc_snr"] > 0
    assert res.params["n_draws"] == 7
    json.dumps(res.params)


def test_supplied_psf_images_are_used(host):
    yy, xx = np.mgrid[:25, :25] - 12
    wide = np.exp(-(xx**2 + yy**2) / (2 * 4.0**2))
    psf = np.stack([wide / wide.sum()] * 3)
    cfg = InjectionConfig(visibility=LAX)  # the same draw is accepted whatever the PSF
    moffat = inject_arc(host, CATALOG, np.random.default_rng(3), cfg)
    supplied = inject_arc(host, CATALOG, np.random.default_rng(3), cfg, psf_images=psf)
    assert supplied.params["psf_model"] == "supplied"
    assert supplied.params["theta_e_arcsec"] == moffat.params["theta_e_arcsec"]
    # a much wider PSF spreads the same arc flux: lower peak
    assert supplied.arc_nmgy.max() < moffat.arc_nmgy.max()
    with pytest.raises(ValueError):
        inject_arc(host, CATALOG, np.random.default_rng(3), cfg, psf_images=psf[:, :24, :24])


def test_annulus_noise_method_measures_stamp_noise(host):
    cfg = InjectionConfig(noise_sigma_method="annulus_mad")
    res = inject_arc(host, CATALOG, np.random.default_rng(1), cfg)
    for band in BANDS:
        assert res.params[f"noise_sigma_nmgy_{band}"] == pytest.approx(0.006, rel=0.1)


def test_annulus_noise_method_falls_back_to_depth_on_a_constant_annulus():
    flat = np.zeros(STAMP_SHAPE, np.float32)
    flat[:, 20:44, 20:44] = 1.0  # no noise at all in the annulus
    cfg = InjectionConfig(noise_sigma_method="annulus_mad")
    res = inject_arc(flat, CATALOG, np.random.default_rng(1), cfg)
    ref = inject_arc(flat, CATALOG, np.random.default_rng(1), InjectionConfig())
    for band in BANDS:
        key = f"noise_sigma_nmgy_{band}"
        assert res.params[key] == ref.params[key] > 0


def test_config_roundtrip_and_errors_name_the_key():
    cfg = from_mapping(InjectionConfig, {"theta_e_arcsec": [0.6, 2.5], "max_draws": 5}, "injection")
    assert cfg.theta_e_arcsec == (0.6, 2.5) and cfg.max_draws == 5
    assert from_mapping(InjectionConfig, to_dict(cfg), "injection") == cfg
    bad = {
        "theta_e_arcsec": [-1.0, 2.0],
        "source": {"seds": ["Im", "Sbc"]},
        "max_draws": 0,
        "gain_e_per_nmgy": [1e4, 1e4],
        "noise_sigma_method": "guess",
        "psf_kernel_radius_fwhm": 0.5,
    }
    expected_key = {"source": "injection.source.seds[1]"}
    for key, value in bad.items():
        with pytest.raises(ConfigError) as err:
            from_mapping(InjectionConfig, {key: value}, "injection")
        assert err.value.key == expected_key.get(key, f"injection.{key}")
    dataclasses.replace(InjectionConfig(), max_draws=3).validate("injection")
