"""Tests of the synthetic DR10-like sky (builder.parents.synthetic)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import galsim
import numpy as np
import pyarrow.parquet as pq
import pytest

from builder.executors import make_executor
from builder.parents.base import ParentRecord
from builder.parents.config import ParquetConfig, SynthConfig
from builder.parents.parquet import ParquetSource
from builder.parents.synthetic import (
    CENTER_PIX,
    SynthComponent,
    draw_params,
    iter_synthetic_parents,
    make_parent,
    render_stamp,
    write_synthetic_parquet,
)
from builder.photometry import (
    band_fluxes_nmgy,
    estimate_psfdepth,
    mag_to_nmgy,
    moffat_nea_pix,
    nmgy_to_mag,
    sigma_pix_from_psfdepth,
)
from builder.validate import check_catalog, check_stamp
from common.configio import ConfigError, from_mapping
from shards.schema import BANDS, CATALOG_FIELDS, PIXEL_SCALE_ARCSEC

CFG = SynthConfig()


def test_parent_is_reproducible_per_seed_and_index() -> None:
    a = make_parent(7, 3, CFG)
    b = make_parent(7, 3, CFG)
    np.testing.assert_array_equal(a.stamp_nmgy, b.stamp_nmgy)
    assert a.catalog == b.catalog and a.galaxy_id == b.galaxy_id == "synth-7-00000003"
    assert not np.array_equal(a.stamp_nmgy, make_parent(7, 4, CFG).stamp_nmgy)
    assert not np.array_equal(a.stamp_nmgy, make_parent(8, 3, CFG).stamp_nmgy)
    # Galaxy i does not depend on which others were generated before it.
    later = list(iter_synthetic_parents(2, 7, CFG, start=2))
    assert [r.galaxy_id for r in later] == ["synth-7-00000002", "synth-7-00000003"]
    np.testing.assert_array_equal(later[1].stamp_nmgy, a.stamp_nmgy)


def test_parents_pass_validation() -> None:
    for rec in iter_synthetic_parents(4, 11, CFG):
        assert isinstance(rec, ParentRecord)
        check_stamp(rec.stamp_nmgy)
        assert check_catalog(rec.catalog) == rec.catalog
        assert list(rec.catalog) == list(CATALOG_FIELDS)
        assert rec.stamp_nmgy.dtype == np.float32
        assert CFG.ra_range[0] <= rec.catalog["ra"] <= CFG.ra_range[1]
        assert CFG.dec_range[0] <= rec.catalog["dec"] <= CFG.dec_range[1]


def test_central_galaxy_flux_matches_its_magnitude() -> None:
    """Noiseless host-only renders of compact hosts hold their whole total flux."""
    cfg = dataclasses.replace(CFG, hlr_arcsec_range=(0.6, 0.8))
    for i in range(6):
        p = draw_params(2, i, cfg)
        host = p.components[0]
        assert host.kind == "host"
        assert CFG.mag_r_range[0] <= p.mag_r <= CFG.mag_r_range[1]
        np.testing.assert_allclose(host.flux_nmgy, band_fluxes_nmgy("E", p.redshift, p.mag_r))
        sums = render_stamp(p, cfg, kinds=("host",)).sum(axis=(1, 2), dtype=np.float64)
        assert nmgy_to_mag(sums[1]) == pytest.approx(p.mag_r, abs=0.02)  # 2 %
        np.testing.assert_allclose(sums, host.flux_nmgy, rtol=0.02)


def test_host_is_centred_on_the_centre_pixel() -> None:
    cfg = dataclasses.replace(CFG, center_jitter_pix=0.0)
    p = draw_params(5, 0, cfg)
    img = render_stamp(p, cfg, kinds=("host",))[1]
    y, x = np.mgrid[: img.shape[0], : img.shape[1]]
    cx, cy = (img * x).sum() / img.sum(), (img * y).sum() / img.sum()
    assert (cx, cy) == pytest.approx(CENTER_PIX, abs=0.05)


def test_host_colours_are_those_of_an_elliptical() -> None:
    for i in range(10):
        p = draw_params(3, i, CFG)
        assert CFG.redshift_range[0] <= p.redshift <= CFG.redshift_range[1]
        g, r, _ = p.components[0].flux_nmgy
        assert 1.0 <= -2.5 * math.log10(g / r) <= 2.0
    sums = render_stamp(draw_params(3, 0, CFG), CFG, kinds=("host",)).sum(axis=(1, 2))
    assert 1.0 <= -2.5 * math.log10(sums[0] / sums[1]) <= 2.0


def test_sky_noise_matches_psfdepth() -> None:
    """A source-free stamp has the per-pixel noise implied by psfdepth and the PSF's NEA."""
    for i in range(4):
        p = draw_params(9, i, CFG)
        img = render_stamp(p, CFG, noise_rng=np.random.default_rng(i), kinds=())
        for b in range(len(BANDS)):
            nea = moffat_nea_pix(p.psfsize_arcsec[b], p.psf_beta[b])  # the drawn PSF's
            want = float(sigma_pix_from_psfdepth(p.psfdepth[b], nea))
            assert float(np.std(img[b])) == pytest.approx(want, rel=0.05)
            assert abs(float(np.mean(img[b]))) < 5 * want / 64  # zero-mean sky
            # The stamp-based estimator used for missing depths recovers it too.
            est = estimate_psfdepth(img[b], p.psfsize_arcsec[b], p.psf_beta[b])
            assert est == pytest.approx(p.psfdepth[b], rel=0.15)


def test_sources_add_poisson_noise() -> None:
    """Noise variance = sky^2 + model / gain (a low gain makes the Poisson term dominate)."""
    cfg = dataclasses.replace(CFG, gain_e_per_nmgy=100.0)
    p = draw_params(1, 0, dataclasses.replace(cfg, mag_r_range=(17.0, 17.0)))
    model = render_stamp(p, cfg)
    noisy = render_stamp(p, cfg, noise_rng=np.random.default_rng(0))
    for b in range(len(BANDS)):
        sky = float(sigma_pix_from_psfdepth(p.psfdepth[b], moffat_nea_pix(p.psfsize_arcsec[b])))
        expected = np.sqrt(sky**2 + np.clip(model[b], 0, None) / cfg.gain_e_per_nmgy)
        resid = noisy[b] - model[b]
        assert np.std(resid / expected) == pytest.approx(1.0, rel=0.05)
        core = model[b] / cfg.gain_e_per_nmgy > 4 * sky**2
        assert core.sum() > 50
        assert np.std(resid[core] / sky) > 1.5  # far more than sky noise alone


def test_star_fwhm_matches_psfsize() -> None:
    for i in range(3):
        p = draw_params(4, i, CFG)
        # place the star on a pixel centre (0-based (32, 32)): GalSim's calculateFWHM reads the
        # peak from the central pixel, which is biased when the star sits on a pixel corner
        half = 0.5 * PIXEL_SCALE_ARCSEC
        star = SynthComponent("star", half, half, (1.0, 2.0, 3.0))
        img = render_stamp(dataclasses.replace(p, components=(star,)), CFG)
        np.testing.assert_allclose(img.sum(axis=(1, 2)), star.flux_nmgy, rtol=2e-3)
        for b in range(len(BANDS)):
            image = galsim.Image(img[b].astype(np.float64), scale=PIXEL_SCALE_ARCSEC)
            centre = galsim.PositionD(CENTER_PIX[0] + 1.5, CENTER_PIX[1] + 1.5)  # 1-based
            fwhm = image.calculateFWHM(center=centre)
            assert fwhm == pytest.approx(p.psfsize_arcsec[b], rel=0.04)


def test_observing_conditions_follow_the_config() -> None:
    params = [draw_params(12, i, CFG) for i in range(300)]
    sizes = np.array([p.psfsize_arcsec for p in params])
    assert np.all((sizes[:, 1] >= 1.1) & (sizes[:, 1] <= 1.6))
    assert np.median(sizes[:, 0] / sizes[:, 1]) == pytest.approx(CFG.psfsize_ratio_g, abs=0.01)
    assert np.median(sizes[:, 2] / sizes[:, 1]) == pytest.approx(CFG.psfsize_ratio_z, abs=0.01)
    assert np.corrcoef(sizes[:, 0], sizes[:, 2])[0, 1] > 0.8  # correlated across bands
    for b, band in enumerate(BANDS):
        depth5 = 22.5 - 2.5 * np.log10(5.0 / np.sqrt([p.psfdepth[b] for p in params]))
        lo, hi = getattr(CFG, f"depth5_{band}_mag")
        assert np.all((depth5 >= lo - 1e-9) & (depth5 <= hi + 1e-9))
    n_nb = [sum(c.kind == "neighbour" for c in p.components) for p in params]
    n_star = [sum(c.kind == "star" for c in p.components) for p in params]
    assert 0.8 <= np.mean(n_nb) <= 1.2 and 0.2 <= np.mean(n_star) <= 0.4
    for p in params:
        for c in p.components[1:]:
            sep = math.hypot(c.dx_arcsec, c.dy_arcsec)
            lo = (
                CFG.neighbour_sep_arcsec_range[0]
                if c.kind == "neighbour"
                else CFG.star_sep_arcsec_range[0]
            )
            assert sep >= lo
            if c.kind == "neighbour":
                assert c.flux_nmgy[1] <= mag_to_nmgy(CFG.neighbour_mag_r_range[0]) * (1 + 1e-12)


def test_synthetic_parquet_round_trips(tmp_path: Path) -> None:
    path = write_synthetic_parquet(
        tmp_path / "synth.parquet", 5, seed=21, cfg=CFG, row_group_size=2
    )
    assert pq.ParquetFile(path).num_row_groups == 3
    src = ParquetSource(path, ParquetConfig())
    got = [x for c in range(src.n_chunks()) for x in src.read_chunk(c)]
    assert all(isinstance(x, ParentRecord) for x in got)
    assert [x.galaxy_id for x in got] == [f"synth-21-{i:08d}" for i in range(5)]
    direct = make_parent(21, 3, CFG)
    np.testing.assert_array_equal(got[3].stamp_nmgy, direct.stamp_nmgy)
    assert got[3].catalog == pytest.approx(direct.catalog)


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"mag_r_range": [21.0, 18.0]}, "synthetic.mag_r_range"),
        ({"n_parents": 0}, "synthetic.n_parents"),
        ({"psf_beta": 3.5}, "synthetic.psf_beta"),  # one PSF beta: psf.moffat_beta
        ({"neighbour_red_fraction": 1.5}, "synthetic.neighbour_red_fraction"),
        ({"depth5_z_mag": [22.0]}, "synthetic.depth5_z_mag"),
        ({"sersic_n": 9.0}, "synthetic.sersic_n"),
    ],
)
def test_synth_config_errors_name_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(SynthConfig, mapping, "synthetic")
    assert info.value.key == key


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        make_parent(-1, 0, CFG)
    with pytest.raises(ValueError):
        render_stamp(draw_params(0, 0, CFG), CFG, kinds=("quasar",))
    with pytest.raises(ConfigError):  # validated once, when the config is loaded
        from_mapping(SynthConfig, {"star_mean": -1.0}, "synthetic")


def test_parallel_render_writes_the_same_file(tmp_path) -> None:
    a = write_synthetic_parquet(tmp_path / "a.parquet", 30, 3, CFG, row_group_size=8)
    with make_executor("local", 2) as pool:
        b = write_synthetic_parquet(
            tmp_path / "b.parquet", 30, 3, CFG, row_group_size=8, executor=pool, window=2
        )
    assert a.read_bytes() == b.read_bytes()
