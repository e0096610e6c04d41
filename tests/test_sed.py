"""Source colours (builder/inject/sed.py): Calzetti dust, Madau IGM, DECam AB colours, draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import truncnorm

from builder.inject.sed import (
    EBV_MAX,
    LYMAN_LIMIT_AA,
    SF_TEMPLATE_FILES,
    ab_mags,
    calzetti_k,
    load_template,
    madau_igm_transmission,
    observed_flambda,
    template_colours,
)
from builder.inject.source_colours import SourceColourPrior, colour_span, draw_source_colours

C_AA_PER_S = 2.99792458e18
AB_FNU_ZERO = 3631e-23  # erg/s/cm^2/Hz


def _calzetti_reference(lam_um: float) -> float:
    """Calzetti et al. (2000) eq. 4, written out independently of the module."""
    x = 1.0 / lam_um
    if 0.12 <= lam_um <= 0.63:
        return 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 4.05
    assert 0.63 < lam_um <= 2.20
    return 2.659 * (-1.857 + 1.040 * x) + 4.05


@pytest.mark.parametrize("lam_um", [0.125, 0.15, 0.2, 0.3, 0.44, 0.55, 0.62, 0.8, 1.2, 2.2])
def test_calzetti_k_matches_the_published_formula(lam_um):
    assert float(calzetti_k(lam_um)) == pytest.approx(_calzetti_reference(lam_um), rel=1e-12)


def test_calzetti_k_normalisation_in_b_and_v():
    # R_V = A_V / E(B-V) = k(V) and k(B) - k(V) = 1 by construction of the curve (to ~1%)
    k_b, k_v = calzetti_k(np.array([0.44, 0.55]))
    assert k_v == pytest.approx(4.05, abs=0.01)
    assert k_b - k_v == pytest.approx(1.0, abs=0.02)
    # k falls with wavelength on each branch and never goes negative; the published branches
    # do not join exactly at 0.63 um (UV 3.476, IR 3.502: a 0.026 step up, part of eq. 4)
    for lam in (np.linspace(0.08, 0.63, 300), np.linspace(0.6301, 2.2, 300)):
        k = calzetti_k(lam)
        assert np.all(np.diff(k) < 0) and np.all(k >= 0)
    step = float(calzetti_k(0.63 + 1e-9) - calzetti_k(0.63))
    assert step == pytest.approx(
        _calzetti_reference(0.630001) - _calzetti_reference(0.63), abs=1e-4
    )
    assert 0.0 < step < 0.03
    with pytest.raises(ValueError):
        calzetti_k(np.array([0.5, 0.0]))


def _madau_reference(lam_aa: float, z: float) -> float:
    lines = ((1215.67, 3.6e-3), (1025.72, 1.7e-3), (972.537, 1.2e-3), (949.743, 9.3e-4))
    tau = sum(a * (lam_aa / lj) ** 3.46 for lj, a in lines if lam_aa < lj * (1 + z))
    xc, xe = lam_aa / 911.75, 1.0 + z
    if xc < xe:
        tau += (
            0.25 * xc**3 * (xe**0.46 - xc**0.46)
            + 9.4 * xc**1.5 * (xe**0.18 - xc**0.18)
            - 0.7 * xc**3 * (xc**-1.32 - xe**-1.32)
            - 0.023 * (xe**1.68 - xc**1.68)
        )
    return float(np.exp(-tau))


def test_madau_transmission_limits_and_formula():
    z = 3.0
    lya_obs = 1215.67 * (1 + z)
    red = np.array([lya_obs + 1.0, 5500.0, 9000.0])
    np.testing.assert_array_equal(madau_igm_transmission(red, z), 1.0)
    # blueward of Lya it is absorbed, and far below the Lyman limit almost nothing is left
    assert madau_igm_transmission(lya_obs - 1.0, z) < 0.8
    below_limit = LYMAN_LIMIT_AA * (1 + z) * 0.8
    assert madau_igm_transmission(below_limit, z) < 0.1
    for lam in (3000.0, 3500.0, 4000.0, 4500.0, 4800.0):
        assert float(madau_igm_transmission(lam, z)) == pytest.approx(
            _madau_reference(lam, z), rel=1e-10
        )
    # more intervening gas toward a more distant source. At fixed observed wavelength each
    # series line's optical depth depends on lambda only (absorbers at lambda / lambda_j - 1), so
    # the transmission is non-increasing in z and drops only when a new line or the Lyman limit
    # moves redward of lambda: at 4500 A, Lyb enters at z = 3.39, Lyg at 3.63, the limit at 3.94
    lam = 4500.0
    t = [float(madau_igm_transmission(lam, zz)) for zz in (2.8, 3.0, 3.5, 3.8, 4.0)]
    assert t[0] == t[1]  # only Lya reaches 4500 A for both
    assert all(a > b for a, b in zip(t[1:], t[2:], strict=False))
    assert float(madau_igm_transmission(lam, 0.0)) == 1.0


def test_igm_reddens_g_minus_r_at_z3():
    # at z = 3 Lya (4863 A) lies in the g band: the IGM makes g - r redder. Madau's flux
    # decrement blueward of Lya is D_A ~ 0.27 at z = 3 (his Fig. 3), over roughly the bluer half
    # of g, so the g-band loss is ~0.1-0.2 mag; r (5400-7200 A) is untouched
    with_igm, _ = template_colours("Im", 3.0, 0.0, igm="madau1995")
    without, _ = template_colours("Im", 3.0, 0.0, igm="none")
    assert 0.1 < with_igm - without < 0.25
    rest = np.linspace(1050.0, 1170.0, 200) * 4.0
    d_a = 1.0 - np.mean([_madau_reference(lam, 3.0) for lam in rest])
    assert 0.2 < d_a < 0.35
    # at z = 1 nothing of the Lyman series reaches DECam
    with_igm, _ = template_colours("Im", 1.0, 0.0, igm="madau1995")
    without, _ = template_colours("Im", 1.0, 0.0, igm="none")
    assert with_igm == pytest.approx(without, abs=1e-9)


@pytest.mark.parametrize("z", [0.0, 1.5])
def test_flat_fnu_spectrum_has_zero_ab_colours_and_its_ab_magnitude(z):
    mag = 20.0
    rest_wl = np.linspace(500.0, 20000.0, 20000)
    fnu = AB_FNU_ZERO * 10 ** (-0.4 * mag)
    # at z the observed flux density is (1+z) times higher per unit frequency for F_lambda/(1+z)
    rest_flam = fnu * C_AA_PER_S / rest_wl**2
    obs = observed_flambda(rest_wl, rest_flam, z, 0.0, igm="none")
    mags = ab_mags(obs)
    assert mags.shape == (3,)
    np.testing.assert_allclose(mags - mags[1], 0.0, atol=1e-6)
    expected = mag - 2.5 * np.log10(1.0 + z)  # F_lambda/(1+z) at lambda/(1+z): f_nu x (1+z)
    np.testing.assert_allclose(mags, expected, atol=1e-3)


def test_table_interpolation_matches_direct_integration():
    rng = np.random.default_rng(3)
    for template in SF_TEMPLATE_FILES:
        wl, flam = load_template(template)
        for z, ebv in zip(rng.uniform(0.0, 4.0, 8), rng.uniform(0.0, EBV_MAX, 8), strict=True):
            m = ab_mags(observed_flambda(wl, flam, z, ebv))
            gr, rz = template_colours(template, z, ebv)
            assert float(gr) == pytest.approx(m[0] - m[1], abs=0.01)
            assert float(rz) == pytest.approx(m[1] - m[2], abs=0.01)


def test_dust_reddens_every_template():
    for template in SF_TEMPLATE_FILES:
        for z in (1.0, 2.0, 3.0):
            gr, rz = template_colours(template, z, np.array([0.0, 0.2, 0.5]))
            assert np.all(np.diff(gr) > 0) and np.all(np.diff(rz) > 0)


def test_out_of_table_and_unknown_names_are_errors():
    with pytest.raises(ValueError, match="redshift"):
        template_colours("Im", 9.0, 0.1)
    with pytest.raises(ValueError, match="ebv"):
        template_colours("Im", 1.0, 2.0)
    with pytest.raises(ValueError, match="unknown SED template"):
        template_colours("Xyz", 1.0, 0.1)
    with pytest.raises(ValueError, match="templates"):
        draw_source_colours(np.random.default_rng(0), SourceColourPrior(templates=("E0",)))
    with pytest.raises(ValueError, match="knot_ebv_fraction"):
        draw_source_colours(np.random.default_rng(0), SourceColourPrior(knot_ebv_fraction=2.0))


def test_draws_are_deterministic_and_fluxes_follow_colours():
    a = draw_source_colours(np.random.default_rng(11))
    b = draw_source_colours(np.random.default_rng(11))
    assert a == b
    flux = a.band_fluxes_nmgy(22.5)
    assert flux[1] == pytest.approx(1.0)
    assert -2.5 * np.log10(flux[0] / flux[1]) == pytest.approx(a.g_minus_r)
    assert -2.5 * np.log10(flux[1] / flux[2]) == pytest.approx(a.r_minus_z)
    fixed = draw_source_colours(np.random.default_rng(11), redshift=2.25)
    assert fixed.redshift == 2.25


def test_default_draws_span_a_realistic_arc_colour_range_and_knots_are_bluer():
    """The issue's diagnostic: arc g-r 5-95% span >= 0.6 mag over 5,000 default draws."""
    rng = np.random.default_rng(2024)
    draws = [draw_source_colours(rng) for _ in range(5000)]
    g_r = np.array([d.g_minus_r for d in draws])
    knot_g_r = np.array([d.knot_g_minus_r for d in draws])
    span = colour_span(g_r)
    print(f"arc g-r 5-95% span over 5000 default draws: {span:.3f} mag")
    assert span >= 0.6
    assert np.all(knot_g_r <= g_r + 1e-12)
    assert np.median(g_r - knot_g_r) > 0.05
    ebv = np.array([d.ebv_mag for d in draws])
    assert ebv.min() >= 0.0 and ebv.max() <= 0.6
    ref = truncnorm((0.0 - 0.15) / 0.12, (0.6 - 0.15) / 0.12, loc=0.15, scale=0.12)
    assert np.mean(ebv) == pytest.approx(ref.mean(), abs=0.005)
    assert np.std(ebv) == pytest.approx(ref.std(), abs=0.005)
    assert {d.template for d in draws} == set(SF_TEMPLATE_FILES)


def test_fast_table_lookup_equals_scipy_public_call():
    """The direct scipy kernel call in template_colours gives RegularGridInterpolator's values."""
    from builder.inject.sed import EBV_MAX, SF_TEMPLATE_FILES, Z_MAX, _bilinear, _colour_grid

    rng = np.random.default_rng(3)
    points = np.stack([rng.uniform(0, Z_MAX, 500), rng.uniform(0, EBV_MAX, 500)], axis=-1)
    points[:3] = [[0.0, 0.0], [Z_MAX, EBV_MAX], [Z_MAX / 2, 0.0]]  # grid edges and nodes
    template = sorted(SF_TEMPLATE_FILES)[0]
    for table in _colour_grid(template, "madau1995"):
        np.testing.assert_array_equal(_bilinear(table, points), table(points))
