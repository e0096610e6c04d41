"""User-supplied source images (source_light/stamps.py) pinned against lenstronomy's INTERPOL."""

from __future__ import annotations

import math
from pathlib import Path

import galsim
import numpy as np
import pytest
from astropy.io import fits
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.inject.config import SourceConfig
from builder.inject.lensing import LensParams
from builder.inject.render import PixelGrid, render_components
from builder.inject.source_light import SOURCE_LIGHTS
from builder.inject.source_light.stamps import StampLight, StampsConfig, load_stamps
from common.configio import ConfigError, from_mapping
from shards.reader import iter_tar_samples
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX
from tests.test_injection_physics import LENS_CASES, lenstronomy_grid

R = BANDS.index("r")
PREFIX = "injection.source.stamps"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "build-stamps.yaml"


def sersic_array(scale: float = 0.05, n: int = 81, flux: float = 100.0, q: float = 0.5):
    """A GalSim Sersic drawn on an n x (n - 10) grid, off-centre and elongated."""
    gal = galsim.Sersic(1.5, half_light_radius=0.3, flux=flux)
    gal = gal.shear(q=q, beta=30 * galsim.degrees).shift(0.1, 0.05)
    return gal.drawImage(nx=n, ny=n - 10, scale=scale).array.astype(np.float64)


def write_stamp(path: Path, data: np.ndarray, **header) -> Path:
    """Write ``data`` as a FITS primary image with the given header keywords."""
    hdr = fits.Header()
    for k, v in header.items():
        hdr[k] = v
    fits.writeto(path, data, hdr, overwrite=True)
    return path


def source_cfg(directory: Path, **stamps) -> SourceConfig:
    section = {"dir": str(directory), **stamps}
    return from_mapping(SourceConfig, {"model": "stamps", "stamps": section}, "injection.source")


@pytest.fixture
def stamp_dir(tmp_path: Path) -> Path:
    d = tmp_path / "stamps"
    d.mkdir()
    write_stamp(d / "a_sersic.fits", sersic_array(), PIXSCALE=0.05, MAGZP=25.0)
    return d


def lenstronomy_interpol_image(lens: LensParams, src: StampLight, k: int) -> np.ndarray:
    """The same stamp through lenstronomy's INTERPOL (r band), k x k regular supersampling.

    INTERPOL anchors the array centre at ``center``; ours anchors the flux centroid, so the
    array centre sits at the centroid minus the rotated centroid offset.
    """
    p, stamp = src.profiles[0], src.stamp
    phi = math.radians(p.rotation_deg)
    c, s = math.cos(phi), math.sin(phi)
    ny, nx = stamp.units.shape[1] - 2, stamp.units.shape[2] - 2
    ox, oy = stamp.anchor_pix[0] - (nx - 1) / 2, stamp.anchor_pix[1] - (ny - 1) / 2
    sc = stamp.scale_arcsec
    kw = {
        "image": np.asarray(stamp.units[0, 1:-1, 1:-1], np.float64),
        "amp": src.fluxes[0][R],
        "center_x": p.center[0] - sc * (c * ox - s * oy),
        "center_y": p.center[1] - sc * (s * ox + c * oy),
        "phi_G": phi,
        "scale": sc,
    }
    model = ImageModel(
        lenstronomy_grid(),
        PSF(psf_type="NONE"),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=LightModel(["INTERPOL"]),
        kwargs_numerics={"supersampling_factor": k},
    )
    return model.image(lens.lenstronomy_kwargs(), [kw])


def test_registered():
    assert SOURCE_LIGHTS["stamps"].light_cls is StampLight
    assert SOURCE_LIGHTS["stamps"].config_cls is StampsConfig


@pytest.mark.parametrize(("lens", "seed"), list(zip(LENS_CASES, (1, 2, 3), strict=True)))
@pytest.mark.parametrize("adaptive", [False, True])
def test_lensed_stamp_matches_lenstronomy_interpol(stamp_dir, lens, seed, adaptive):
    """Same stamp, rotation and SIE+shear lens: relative L2 < 1e-5 with full supersampling
    (float32 ray tracing; measured 3e-7), < 2e-4 with the adaptive renderer (measured 2e-5)."""
    src = StampLight.draw(np.random.default_rng(seed), source_cfg(stamp_dir), 0.12, -0.07)
    grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, 4)
    ((unit, flux),) = render_components(lens, src, grid, adaptive=adaptive)
    ours = unit.astype(np.float64) * flux[R]
    ref = lenstronomy_interpol_image(lens, src, 4)
    tol = 2e-4 if adaptive else 1e-5
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < tol
    assert ours.sum() == pytest.approx(ref.sum(), rel=tol)


def test_unlensed_stamp_keeps_the_drawn_flux(stamp_dir):
    """theta_E ~ 0: every band's image sums to the drawn unlensed flux to < 1%."""
    cfg = source_cfg(stamp_dir)
    for seed in range(3):
        src = StampLight.draw(np.random.default_rng(seed), cfg, 0.3, -0.2)
        expected_r = 10 ** (-0.4 * (src.photometry.mag_r - 22.5))
        assert src.total_flux_nmgy()[R] == pytest.approx(expected_r, rel=1e-12)
        grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, 4)
        comps = render_components(LensParams(1e-4, 1.0, 0.0), src, grid)
        band_flux = sum(unit.sum(dtype=np.float64) * flux for unit, flux in comps)
        np.testing.assert_allclose(band_flux, src.total_flux_nmgy(), rtol=0.01)


def test_unit_profile_integrates_to_one_and_rotates_about_the_centroid(stamp_dir):
    src = StampLight.draw(np.random.default_rng(0), source_cfg(stamp_dir), 0.0, 0.0)
    p = src.profiles[0]
    step = 0.01
    u = (np.arange(-400, 401)) * step
    x, y = np.meshgrid(u, u)
    assert p.unit_surface_brightness(x, y).sum() * step**2 == pytest.approx(1.0, rel=2e-3)
    sb = p.unit_surface_brightness(x, y)
    assert (sb * x).sum() / sb.sum() == pytest.approx(0.0, abs=2e-3)  # centroid at the centre
    assert (sb * y).sum() / sb.sum() == pytest.approx(0.0, abs=2e-3)
    assert sb.max() <= p.peak_unit_sb_arcsec2() * (1 + 1e-6)


def test_cube_keeps_its_colours_and_per_band_morphology(tmp_path):
    d = tmp_path / "cube"
    d.mkdir()
    cube = np.stack([sersic_array(flux=f, q=q) for f, q in ((50.0, 0.4), (100.0, 0.6), (200, 0.9))])
    write_stamp(d / "cube.fits", cube, PIXSCALE=0.05, MAGZP_G=25.0, MAGZP_R=25.0, MAGZP_Z=24.0)
    src = StampLight.draw(np.random.default_rng(4), source_cfg(d), 0.0, 0.0)
    assert len(src.components()) == 3 and src.photometry.sed == "stamp"
    total, sums = src.total_flux_nmgy(), np.maximum(cube, 0).sum(axis=(1, 2))  # clip_negative
    assert total[0] / total[R] == pytest.approx(sums[0] / sums[R], rel=1e-9)
    assert total[2] / total[R] == pytest.approx(sums[2] / sums[R] * 10 ** (0.4 * 1.0), rel=1e-9)
    assert total[R] == pytest.approx(10 ** (-0.4 * (src.photometry.mag_r - 22.5)))
    assert not np.array_equal(src.stamp.units[0], src.stamp.units[2])


def test_header_wcs_and_hst_zero_point_are_read(tmp_path):
    d = tmp_path / "wcs"
    d.mkdir()
    scale_deg = 0.03 / 3600
    hdr = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0}
    hdr |= {"CD1_1": -scale_deg, "CD1_2": 0.0, "CD2_1": 0.0, "CD2_2": scale_deg}
    hdr |= {"PHOTFLAM": 7.0e-20, "PHOTPLAM": 8000.0}
    data = sersic_array(scale=0.03)
    write_stamp(d / "hst.fits", data, **hdr)
    (stamp,) = load_stamps(source_cfg(d).section("stamps"))
    assert stamp.scale_arcsec == pytest.approx(0.03, rel=1e-6)
    zp = -2.5 * math.log10(7.0e-20) - 5 * math.log10(8000.0) - 2.408
    assert stamp.native_mag_r == pytest.approx(zp - 2.5 * math.log10(data.sum()), abs=1e-6)
    with pytest.raises(ConfigError) as err:  # header and config disagree
        source_cfg(d, pixel_scale_arcsec=0.05)
    assert err.value.key == f"{PREFIX}.pixel_scale_arcsec" and "hst.fits" in str(err.value)


@pytest.mark.parametrize(
    ("name", "data", "header", "key", "words"),
    [
        ("nan.fits", "nan", {"PIXSCALE": 0.05}, "dir", "non-finite"),
        ("zero.fits", "zero", {"PIXSCALE": 0.05}, "dir", "sum must be > 0"),
        ("flat.fits", "1d", {"PIXSCALE": 0.05}, "dir", "2-D image"),
        ("noscale.fits", "ok", {}, "pixel_scale_arcsec", "no PIXSCALE"),
    ],
)
def test_bad_stamps_name_the_key_and_the_file(tmp_path, name, data, header, key, words):
    arr = sersic_array()
    arr = {"nan": np.where(arr > arr.max() / 2, np.nan, arr), "zero": -arr, "1d": arr[0]}.get(
        data, arr
    )
    write_stamp(tmp_path / name, arr, **header)
    with pytest.raises(ConfigError) as err:
        source_cfg(tmp_path)
    assert err.value.key == f"{PREFIX}.{key}"
    assert name in str(err.value) and words in str(err.value)


def test_bad_directories_name_the_key(tmp_path):
    (tmp_path / "notes.txt").write_text("not a stamp")
    for directory, words in ((tmp_path / "missing", "not a directory"), (tmp_path, "no FITS")):
        with pytest.raises(ConfigError) as err:
            source_cfg(directory)
        assert err.value.key == f"{PREFIX}.dir" and words in str(err.value)
    with pytest.raises(ConfigError) as err:  # dir left empty: refused at config load
        from_mapping(SourceConfig, {"model": "stamps"}, "injection.source")
    assert err.value.key == f"{PREFIX}.dir" and "required" in str(err.value)
    from_mapping(SourceConfig, {"model": "sersic"}, "injection.source")  # unused: no dir needed
    with pytest.raises(ConfigError) as err:
        source_cfg(tmp_path, pixel_scale_arcsec=-1.0)
    assert err.value.key == f"{PREFIX}.pixel_scale_arcsec"


def test_draws_are_reproducible_and_choose_among_stamps(tmp_path):
    for i, q in enumerate((0.3, 0.6, 0.9)):
        write_stamp(tmp_path / f"s{i}.fits", sersic_array(q=q), PIXSCALE=0.05)
    cfg = source_cfg(tmp_path)
    a = StampLight.draw(np.random.default_rng(7), cfg, 0.1, 0.2, redshift=1.7)
    b = StampLight.draw(np.random.default_rng(7), cfg, 0.1, 0.2, redshift=1.7)
    assert a.metadata() == b.metadata() and a.fluxes == b.fluxes
    assert a.photometry.redshift == 1.7
    names = {
        StampLight.draw(np.random.default_rng(s), cfg, 0, 0).metadata()["source_stamp_file"]
        for s in range(30)
    }
    assert names == {"s0.fits", "s1.fits", "s2.fits"}


def test_build_with_the_stamps_config_records_model_and_file(tmp_path):
    d = tmp_path / "stamps"
    d.mkdir()
    for i, q in enumerate((0.4, 0.7, 1.0)):
        write_stamp(d / f"gal{i}.fits", sersic_array(q=q, flux=10.0 * (i + 1)), PIXSCALE=0.05)
    overrides = {
        "input": {"synthetic": {"n_parents": 40, "row_group_size": 20}},
        "output": {"samples_per_shard": 16},
        "injection": {"source": {"stamps": {"dir": str(d)}}},
    }
    cfg = load_build_config(CONFIG, overrides)
    assert cfg.injection.source.model == "stamps"
    out = tmp_path / "out"
    manifest = make_shards(cfg, out, BuildOptions(workers=1, progress=False))
    assert manifest.status == "complete"
    samples = [s for p in sorted(out.rglob("*.tar")) for s in iter_tar_samples(str(p))]
    positives = [s["meta"]["injection"] for s in samples if s["label"] == 1]
    assert positives
    for inj in positives:
        assert inj["source_model"] == "stamps"
        assert inj["source_stamp_file"] in {"gal0.fits", "gal1.fits", "gal2.fits"}
    with pytest.raises(ConfigError) as err:  # the committed placeholder path is refused
        load_build_config(CONFIG)
    assert err.value.key == f"{PREFIX}.dir"
