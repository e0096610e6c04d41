"""LensPop-style visibility (builder/inject/visibility.py) on hand-built arcs, and its use."""

from __future__ import annotations

import math

import numpy as np
import pytest

from builder.inject import InjectionConfig, inject_arc
from builder.inject.noise import optimal_snr
from builder.inject.visibility import (
    VisibilityConfig,
    can_be_visible,
    measure_visibility,
    stacked_snr_above_1sigma,
)
from common.configio import ConfigError, from_mapping
from shards.schema import STAMP_SHAPE

SIGMA = np.array([0.004, 0.006, 0.015])  # g, r, z per-pixel sky sigma, nmgy
GAINS = [1e12] * 3  # no arc shot noise unless a test asks for it
FWHM = [1.3, 1.2, 1.1]


def _box_arc(level_g: float, level_r: float, n_pix: int) -> np.ndarray:
    arc = np.zeros(STAMP_SHAPE)
    rows, cols = np.unravel_index(np.arange(n_pix), (8, 64))
    arc[0, 10 + rows, cols] = level_g
    arc[1, 10 + rows, cols] = level_r
    arc[2, 10 + rows, cols] = 1.0  # z is not in the default stack: must not matter
    return arc


def test_stacked_snr_of_a_box_arc_is_the_hand_computed_value():
    # weights 1/sigma^2 of g and r; the stack of a constant box is constant
    w = 1.0 / SIGMA[:2] ** 2
    level_g, level_r, n = 0.006, 0.009, 40
    stack = (w[0] * level_g + w[1] * level_r) / w.sum()
    stack_sigma = 1.0 / math.sqrt(w.sum())
    assert stack > stack_sigma  # every box pixel is above 1 sigma
    want = n * stack / math.sqrt(n * stack_sigma**2)
    arc = _box_arc(level_g, level_r, n)
    snr, n_pix = stacked_snr_above_1sigma(arc[:2], SIGMA[:2])
    assert n_pix == n and snr == pytest.approx(want, rel=1e-12)
    vis = measure_visibility(arc, SIGMA, GAINS, FWHM, 1.5, 0.2, 8.0, VisibilityConfig())
    assert vis.snr == pytest.approx(want, rel=1e-9) and vis.n_pix_above_1sigma == n
    assert vis.fwhm_arcsec == 1.3  # widest PSF of g and r


def test_arc_below_one_sigma_everywhere_is_invisible_even_with_a_large_matched_filter_snr():
    # 2048 pixels at 0.5 sigma: matched-filter S/N ~ 0.5 sqrt(2000) ~ 22 per band, but no pixel
    # stands out of the noise, so LensPop's S/N is 0
    arc = np.zeros(STAMP_SHAPE)
    arc[0, 10:42, :] = 0.5 * SIGMA[0]
    arc[1, 10:42, :] = 0.5 * SIGMA[1]
    mf = optimal_snr(arc, SIGMA, GAINS)
    assert mf[0] > 20 and mf[1] > 20
    vis = measure_visibility(arc, SIGMA, GAINS, FWHM, 1.5, 0.3, 8.0, VisibilityConfig())
    # the g+r stack: level 0.5 sigma_b in each band is 0.5 * sqrt(2) stacked sigma < 1 sigma
    assert vis.snr == 0.0 and vis.n_pix_above_1sigma == 0 and not vis.visible


def test_only_the_pixels_above_one_sigma_count():
    arc = _box_arc(0.02, 0.03, 30)  # bright core
    arc[0, 30:40, :] = 1e-4  # faint wings, far below 1 sigma: excluded from the sum
    arc[1, 30:40, :] = 1e-4
    bright, n_bright = stacked_snr_above_1sigma(_box_arc(0.02, 0.03, 30)[:2], SIGMA[:2])
    snr, n_pix = stacked_snr_above_1sigma(arc[:2], SIGMA[:2])
    assert (snr, n_pix) == (pytest.approx(bright, rel=1e-12), n_bright)


def test_arc_shot_noise_lowers_the_snr():
    arc = _box_arc(0.05, 0.08, 40)
    no_shot, _ = stacked_snr_above_1sigma(arc[:2], SIGMA[:2])
    shot, _ = stacked_snr_above_1sigma(arc[:2], SIGMA[:2], [1e2, 1e2])
    assert shot < no_shot


@pytest.mark.parametrize(
    ("theta_e", "re", "mu", "resolved", "stretched"),
    [
        (1.5, 0.3, 8.0, True, True),
        # theta_E^2 = 0.36 < re^2 + (FWHM/2)^2 = 0.09 + 0.4225
        (0.6, 0.3, 8.0, False, True),
        # mu re = 0.6 < FWHM/2 = 0.65
        (1.5, 0.1, 6.0, True, False),
        (1.5, 0.1, 7.0, True, True),
    ],
)
def test_resolved_and_stretched_criteria(theta_e, re, mu, resolved, stretched):
    arc = _box_arc(0.05, 0.08, 60)
    vis = measure_visibility(arc, SIGMA, GAINS, FWHM, theta_e, re, mu, VisibilityConfig())
    assert (vis.resolved, vis.stretched) == (resolved, stretched)
    assert vis.snr > 20 and vis.visible == (resolved and stretched)
    lax = VisibilityConfig(require_resolved=False, require_stretched=False)
    assert measure_visibility(arc, SIGMA, GAINS, FWHM, theta_e, re, mu, lax).visible
    weak = measure_visibility(arc, SIGMA, GAINS, FWHM, theta_e, re, 2.5, lax)
    assert not weak.magnified and not weak.visible


def test_default_injections_are_visible_and_hard_ones_are_flagged():
    from tests.test_injection_sampler import CATALOG, make_host

    host = make_host()
    cfg = InjectionConfig()
    for seed in range(4):
        res = inject_arc(host, CATALOG, np.random.default_rng(seed), cfg)
        assert res.accepted and res.params["visible"] and not res.params["hard_positive"]
        assert res.params["vis_snr"] >= 20.0 and res.params["magnification"] >= 3.0
        theta, re = res.params["theta_e_arcsec"], res.params["source_re_arcsec"]
        half = 0.5 * res.params["vis_fwhm_arcsec"]
        assert theta**2 > re**2 + half**2 and res.params["magnification"] * re > half
    hard = InjectionConfig(
        visibility=VisibilityConfig(hard_fraction=1.0, hard_min_snr=0.0), min_magnification=0.0
    )
    flags = [inject_arc(host, CATALOG, np.random.default_rng(s), hard).params for s in range(12)]
    assert all(p["hard_positive"] for p in flags)
    assert not all(p["visible"] for p in flags)  # sub-threshold arcs are kept, and say so


def test_config_errors_name_the_key():
    for key, value in {"bands": ["g", "u"], "hard_fraction": 1.5, "min_snr": -1}.items():
        with pytest.raises(ConfigError) as err:
            from_mapping(VisibilityConfig, {key: value}, "injection.visibility")
        assert err.value.key == f"injection.visibility.{key}"


def test_can_be_visible_is_the_image_free_part_of_measure_visibility():
    # the sampler rejects a draw before its convolution when can_be_visible is False: then
    # measure_visibility must say invisible for any arc; when True, visibility is the S/N alone
    rng = np.random.default_rng(5)
    arc = _box_arc(0.006, 0.009, 40)
    configs = [
        VisibilityConfig(),
        VisibilityConfig(require_resolved=False),
        VisibilityConfig(require_stretched=False, bands=("r", "z")),
        VisibilityConfig(min_snr=0.0),
    ]
    n_false = 0
    for _ in range(300):
        cfg = configs[int(rng.integers(len(configs)))]
        fwhm = list(rng.uniform(0.8, 2.0, 3))
        theta_e, re, mu = rng.uniform(0.3, 3.0), rng.uniform(0.05, 1.5), rng.uniform(1.0, 20.0)
        vis = measure_visibility(
            arc * rng.uniform(0.1, 3), SIGMA, GAINS, fwhm, theta_e, re, mu, cfg, 3.0
        )
        ok = can_be_visible(fwhm, theta_e, re, mu, cfg, 3.0)
        n_false += not ok
        assert vis.visible == (ok and vis.snr >= cfg.min_snr)
        assert ok == (
            vis.magnified
            and (vis.resolved or not cfg.require_resolved)
            and (vis.stretched or not cfg.require_stretched)
        )
    assert 30 < n_false < 270  # both outcomes exercised
