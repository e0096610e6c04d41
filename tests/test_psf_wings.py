"""PSF wings: Moffat kernels pinned to GalSim, beta drawn per object and band in the synthetic
sky, the same PSF for host and arc, and psfdepth still holding with wings."""

from __future__ import annotations

import dataclasses

import galsim
import numpy as np
import pytest

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.inject import InjectionConfig, inject_arc
from builder.inject.noise import psf_nea_pix
from builder.inject.psf import band_kernel_ffts, kernel_fft, moffat_kernel, quantize_fwhm
from builder.parents.config import SynthConfig
from builder.parents.synthetic import (
    CENTER_PIX,
    SynthComponent,
    draw_params,
    draw_psf_beta,
    make_parent,
    render_stamp,
    sky_sigma_pix,
)
from builder.photometry import moffat_nea_pix, sigma_pix_from_psfdepth
from common.configio import ConfigError, from_mapping
from shards.reader import iter_tar_samples
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX

CFG = SynthConfig()


def _galsim_psf_image(fwhm: float, beta: float, half: int) -> np.ndarray:
    """Independent reference: the pixel-integrated GalSim Moffat, unit sum, on a big stamp."""
    img = galsim.Moffat(beta=beta, fwhm=fwhm).drawImage(
        nx=2 * half + 1, ny=2 * half + 1, scale=PIXEL_SCALE_ARCSEC
    )
    return img.array.astype(np.float64) / img.array.sum(dtype=np.float64)


@pytest.mark.parametrize(("fwhm", "beta"), [(1.0, 2.5), (1.3, 3.0), (1.6, 4.5), (1.2, 2.2)])
def test_moffat_kernel_equals_galsim_no_pixel(fwhm: float, beta: float) -> None:
    kernel = moffat_kernel(fwhm, beta)
    size = kernel.shape[0]
    ref = galsim.Moffat(beta=beta, fwhm=fwhm).drawImage(
        nx=size, ny=size, scale=PIXEL_SCALE_ARCSEC, method="no_pixel"
    )
    ref = ref.array.astype(np.float64) / ref.array.sum(dtype=np.float64)
    np.testing.assert_allclose(kernel, ref, rtol=0, atol=1e-6 * kernel.max())
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (size // 2, size // 2)


def test_lower_beta_has_more_light_in_the_wings() -> None:
    def outside(beta: float) -> float:  # flux beyond 2 FWHM of the centre
        p = _galsim_psf_image(1.2, beta, 40)
        yy, xx = np.mgrid[: p.shape[0], : p.shape[1]] - 40
        return float(p[np.hypot(xx, yy) * PIXEL_SCALE_ARCSEC > 2.4].sum())

    assert outside(2.5) > 2.0 * outside(4.5)


def test_beta_is_drawn_per_object_and_band_in_the_range() -> None:
    lo, hi = CFG.moffat_beta_range
    draws = np.array([draw_params(5, i, CFG).psf_beta for i in range(60)])
    assert draws.shape == (60, 3) and (draws >= lo).all() and (draws <= hi).all()
    assert draws.std(axis=0).min() > 0.3  # spread over the range (uniform: 0.58)
    assert (np.ptp(draws, axis=1) > 0).all()  # bands differ within an object
    assert draw_params(5, 3, CFG).psf_beta == draw_psf_beta(5, 3, CFG.moffat_beta_range)
    # its own stream: the range changes the indices only, nothing else of the parent
    fixed = dataclasses.replace(CFG, moffat_beta_range=(3.0, 3.0))
    a, b = draw_params(5, 3, CFG), draw_params(5, 3, fixed)
    assert b.psf_beta == (3.0, 3.0, 3.0)
    assert dataclasses.replace(a, psf_beta=b.psf_beta) == b


def test_beta_range_is_one_validated_key() -> None:
    cfg = from_mapping(SynthConfig, {"moffat_beta_range": [2.0, 3.0]}, "input.synthetic")
    assert cfg.moffat_beta_range == (2.0, 3.0)
    for bad in ([3.0, 2.0], [1.05, 3.0], [1.1, 3.0], [2.0, 12.0], [2.5]):
        with pytest.raises(ConfigError, match="input.synthetic.moffat_beta_range"):
            from_mapping(SynthConfig, {"moffat_beta_range": bad}, "input.synthetic").validate(
                "input.synthetic"
            )


def test_stamp_psf_is_the_galsim_moffat_of_the_drawn_beta() -> None:
    """A star at the centre renders as GalSim's pixel-integrated Moffat(psfsize_b, psf_beta_b)."""
    p = draw_params(2, 0, CFG)
    p = dataclasses.replace(p, psf_beta=(2.5, 3.5, 4.5), features=())
    star = SynthComponent("star", 0.0, 0.0, (1.0, 1.0, 1.0))
    img = render_stamp(dataclasses.replace(p, components=(star,)), CFG)
    offset = (CENTER_PIX[0] - (STAMP_SIZE_PIX - 1) / 2, CENTER_PIX[1] - (STAMP_SIZE_PIX - 1) / 2)
    for b in range(len(BANDS)):
        ref = galsim.Moffat(beta=p.psf_beta[b], fwhm=p.psfsize_arcsec[b]).drawImage(
            nx=STAMP_SIZE_PIX, ny=STAMP_SIZE_PIX, scale=PIXEL_SCALE_ARCSEC, offset=offset
        )
        np.testing.assert_allclose(img[b], ref.array, rtol=0, atol=2e-3 * ref.array.max())


def test_sky_noise_keeps_psfdepth_with_wings() -> None:
    """Per-pixel sigma = 1 / sqrt(psfdepth NEA) with NEA of the *drawn* PSF; NEA from GalSim."""
    p = draw_params(4, 1, CFG)
    for betas in ((2.5, 2.5, 2.5), (4.5, 4.5, 4.5)):
        q = dataclasses.replace(p, psf_beta=betas)
        sigmas = sky_sigma_pix(q)
        stds = np.zeros(3)
        for k in range(6):  # source-free stamps
            img = render_stamp(q, CFG, noise_rng=np.random.default_rng(k), kinds=())
            stds += np.var(img, axis=(1, 2)) / 6
        stds = np.sqrt(stds)
        for b in range(len(BANDS)):
            psf = _galsim_psf_image(q.psfsize_arcsec[b], betas[b], 48)
            nea = 1.0 / float(np.sum(psf * psf))
            assert sigmas[b] == pytest.approx(sigma_pix_from_psfdepth(q.psfdepth[b], nea), 1e-3)
            # point-source inverse variance of the stamp = psfdepth (per-pixel sigma, PSF wings)
            ivar = float(np.sum(psf * psf)) / stds[b] ** 2
            assert ivar == pytest.approx(q.psfdepth[b], rel=0.06)
    # the wings matter: beta 2.5 spreads a point source, so at fixed depth the sky is quieter
    nea_25, nea_45 = (moffat_nea_pix(1.3, beta) for beta in (2.5, 4.5))
    assert nea_25 > 1.1 * nea_45


def test_injection_uses_the_parents_per_band_beta() -> None:
    rec = make_parent(3, 2, CFG)
    cfg = InjectionConfig()
    res = inject_arc(
        rec.stamp_nmgy, rec.catalog, np.random.default_rng(1), cfg, moffat_beta=rec.psf_beta
    )
    assert res.params["psf_model"] == "moffat"
    assert tuple(res.params[f"psf_beta_{b}"] for b in BANDS) == rec.psf_beta
    fwhms = [rec.catalog[f"psfsize_{b}"] for b in BANDS]
    spectra = band_kernel_ffts(fwhms, rec.psf_beta, cfg.psf_kernel_radius_fwhm)
    for b in range(3):
        want = kernel_fft(moffat_kernel(quantize_fwhm(fwhms[b]), rec.psf_beta[b]))
        np.testing.assert_array_equal(spectra[b], want)
    # the noise level of the arc's S/N uses the same NEA as the sky's render
    nea = psf_nea_pix(fwhms, rec.psf_beta)
    sky = [
        sigma_pix_from_psfdepth(rec.catalog[f"psfdepth_{b}"], n)
        for b, n in zip(BANDS, nea, strict=True)
    ]
    np.testing.assert_allclose([res.params[f"noise_sigma_nmgy_{b}"] for b in BANDS], sky)
    with pytest.raises(ValueError, match="per-band"):
        band_kernel_ffts(fwhms, (3.0, 3.0), 4.0)


def test_synthetic_build_gives_each_arc_its_hosts_psf(tmp_path) -> None:
    over = {
        "input": {"synthetic": {"n_parents": 16, "row_group_size": 8}},
        "output": {"samples_per_shard": 16, "with_arcs": True},
        "seed": 3,
    }
    cfg = load_build_config(None, over)
    out = tmp_path / "out"
    make_shards(cfg, out, BuildOptions(workers=1, progress=False, executor="serial"))
    positives = [
        s
        for tar in sorted(out.rglob("*.tar"))
        for s in iter_tar_samples(str(tar))
        if s["label"] == 1
    ]
    assert positives
    for s in positives:
        meta = s["meta"]
        _, seed, index = meta["galaxy_id"].split("-")
        want = draw_psf_beta(
            int(seed), int(index), cfg.input.section("synthetic").moffat_beta_range
        )
        assert tuple(meta["injection"][f"psf_beta_{b}"] for b in BANDS) == pytest.approx(want)
        assert meta["injection"]["psf_model"] == "moffat"
