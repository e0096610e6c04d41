"""Noise model of the injection: coadd gain, arc shot noise, background level and arc S/N.

The host cutout already carries the survey noise (sky, host shot noise, read noise), so only the
arc's own photon noise is added: ``Poisson(arc * gain) / gain - arc`` per pixel, with the
effective coadd gain ``gain`` in photo-electrons per nanomaggy.

Effective gain
--------------
A source of 1 nmgy (AB 22.5) gives ``10^(0.4 (zp0 - 22.5))`` e-/s in one DECam exposure, where
``zp0`` is the nominal DECam zero point for 1 e-/s (g 26.610, r 26.818, z 26.484; legacypipe's
``legacyzpts`` ``DecamMeasurer.zp0``). A DR10 coadd of ``n`` passes of ``t`` seconds collects
``n t`` times that, i.e. for 3 passes of 87 / 67 / 100 s in g / r / z about 1.15e4, 1.07e4 and
1.18e4 e- per nmgy (airmass and extinction ignored: real values are ~10-30% lower).

Background noise and S/N
------------------------
The per-pixel background sigma is either derived from the catalog depth,
``sigma_pix = 1 / sqrt(psfdepth * NEA)`` with the PSF noise-equivalent area (default), or the
robust MAD of the stamp's outer annulus. The arc S/N in band ``b`` is the optimal
(matched-filter) S/N of the noiseless PSF-convolved arc ``a_i``,
``SNR_b^2 = sum_i a_i^2 / (sigma_b^2 + a_i / gain_b)``; the total S/N adds bands in quadrature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from builder.inject.psf import band_betas
from builder.photometry import (
    moffat_nea_direct,
    moffat_nea_pix,
    robust_sigma_pix,
    sigma_pix_from_psfdepth,
)
from shards.schema import BANDS

#: Nominal DECam zero points (AB mag of a source giving 1 e-/s) in g, r, z (legacyzpts).
DECAM_ZP0_MAG: tuple[float, float, float] = (26.610, 26.818, 26.484)
#: DECaLS/DR10 exposure time per pass in g, r, z, seconds.
DR10_EXPTIME_S: tuple[float, float, float] = (87.0, 67.0, 100.0)
#: Nominal number of passes of the DR10 DECaLS footprint.
DR10_N_PASSES = 3
#: Inner radius (pixels) of the annulus used by the ``annulus_mad`` background estimate.
ANNULUS_INNER_RADIUS_PIX = 24.0


def coadd_gain_e_per_nmgy(zp0_mag: float, exptime_s: float, n_passes: int) -> float:
    """Photo-electrons collected per nanomaggy in a coadd.

    Parameters
    ----------
    zp0_mag : float
        AB magnitude of a source producing 1 e-/s in one exposure.
    exptime_s : float
        Exposure time per pass, seconds.
    n_passes : int
        Number of exposures coadded.

    Returns
    -------
    float
        ``n_passes * exptime_s * 10^(0.4 (zp0_mag - 22.5))`` e-/nmgy.
    """
    return float(n_passes * exptime_s * 10.0 ** (0.4 * (zp0_mag - 22.5)))


#: Default effective coadd gain in g, r, z, e-/nmgy (about 1.1e4; see the module docstring).
DEFAULT_GAIN_E_PER_NMGY: tuple[float, float, float] = tuple(
    round(coadd_gain_e_per_nmgy(zp, t, DR10_N_PASSES), 1)
    for zp, t in zip(DECAM_ZP0_MAG, DR10_EXPTIME_S, strict=True)
)


def arc_poisson_noise(
    arc_nmgy: np.ndarray, gain_e_per_nmgy: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Zero-mean photon noise of the arc, to be added to the host cutout.

    Electron counts are exact Poisson draws for every pixel (no Gaussian approximation: it
    would save little, as the cost is per pixel, and be wrong in the faint wings).

    Parameters
    ----------
    arc_nmgy : np.ndarray
        ``(B, n, n)`` noiseless arc, nmgy per pixel (negative FFT ringing is treated as 0).
    gain_e_per_nmgy : Sequence[float]
        Effective gain per band, e-/nmgy.
    rng : np.random.Generator
        Random generator.

    Returns
    -------
    np.ndarray
        float32 ``(B, n, n)`` noise ``Poisson(arc * gain) / gain - arc`` in nmgy: its variance
        is ``arc / gain`` per pixel.
    """
    gain = np.asarray(gain_e_per_nmgy, dtype=np.float64)[:, None, None]
    arc = np.maximum(arc_nmgy.astype(np.float64), 0.0)
    electrons = rng.poisson(arc * gain)
    return (electrons / gain - arc).astype(np.float32)


def background_sigma_nmgy(
    stamp_nmgy: np.ndarray,
    catalog: Mapping[str, float],
    nea_pix: Sequence[float],
    method: str = "psfdepth",
) -> np.ndarray:
    """Per-pixel background noise sigma of each band of the cutout.

    Parameters
    ----------
    stamp_nmgy : np.ndarray
        ``(B, n, n)`` host cutout, nmgy.
    catalog : Mapping[str, float]
        Catalog values; ``psfdepth_<band>`` (1/nmgy^2) is used by the ``psfdepth`` method.
    nea_pix : Sequence[float]
        PSF noise-equivalent area per band, pixels (see :func:`psf_nea_pix`).
    method : str
        ``"psfdepth"``: ``1 / sqrt(psfdepth * NEA)``. ``"annulus_mad"``: 1.4826 x MAD of the
        pixels beyond :data:`ANNULUS_INNER_RADIUS_PIX` from the centre (the ``psfdepth`` value
        for a band whose annulus is constant).

    Returns
    -------
    np.ndarray
        float64 ``(B,)`` sigma per pixel, nmgy.
    """
    if method not in ("psfdepth", "annulus_mad"):
        raise ValueError(f"unknown noise sigma method {method!r}")
    depth = np.array([float(catalog[f"psfdepth_{b}"]) for b in BANDS])
    from_depth = np.asarray(sigma_pix_from_psfdepth(depth, np.asarray(nea_pix, dtype=np.float64)))
    if method == "psfdepth":
        return from_depth
    mad = np.array([robust_sigma_pix(band, ANNULUS_INNER_RADIUS_PIX) for band in stamp_nmgy])
    # a constant (or empty) annulus has no usable noise: fall back to the catalog depth
    return np.where(np.isfinite(mad) & (mad > 0), mad, from_depth)


def psf_nea_pix(
    fwhms_arcsec: Sequence[float],
    beta: float | Sequence[float],
    psf_images: np.ndarray | None = None,
) -> np.ndarray:
    """Noise-equivalent area ``1 / sum(P^2)`` (pixels) of each band's PSF.

    Parameters
    ----------
    fwhms_arcsec : Sequence[float]
        Moffat FWHM per band, arcsec (used when ``psf_images`` is None).
    beta : float or Sequence[float]
        Moffat index: one for every band (tabulated NEA, :func:`moffat_nea_pix`), or one per band
        (drawn exactly, :func:`moffat_nea_direct`, as the synthetic sky does for its noise).
    psf_images : np.ndarray or None
        Optional ``(B, K, K)`` PSF images; their own NEA is used.

    Returns
    -------
    np.ndarray
        float64 ``(B,)``.
    """
    if psf_images is not None:
        psf = np.asarray(psf_images, dtype=np.float64)
        psf = psf / psf.sum(axis=(1, 2), keepdims=True)
        return 1.0 / np.sum(psf * psf, axis=(1, 2))
    if isinstance(beta, int | float | np.floating | np.integer):
        return np.array([moffat_nea_pix(float(f), float(beta)) for f in fwhms_arcsec])
    betas = band_betas(beta, len(fwhms_arcsec))
    return np.array(
        [moffat_nea_direct(float(f), b) for f, b in zip(fwhms_arcsec, betas, strict=True)]
    )


def optimal_snr(
    arc_nmgy: np.ndarray, sigma_nmgy: Sequence[float], gain_e_per_nmgy: Sequence[float]
) -> np.ndarray:
    """Matched-filter S/N of a noiseless arc in each band.

    Parameters
    ----------
    arc_nmgy : np.ndarray
        ``(B, n, n)`` PSF-convolved arc model, nmgy per pixel.
    sigma_nmgy : Sequence[float]
        Background sigma per pixel and band, nmgy.
    gain_e_per_nmgy : Sequence[float]
        Effective gain per band (adds the arc's own shot noise to the variance).

    Returns
    -------
    np.ndarray
        float64 ``(B,)``: ``sqrt(sum_i a_i^2 / (sigma^2 + a_i / gain))``.
    """
    arc = np.maximum(arc_nmgy.astype(np.float64), 0.0)
    sigma2 = np.square(np.asarray(sigma_nmgy, dtype=np.float64))[:, None, None]
    gain = np.asarray(gain_e_per_nmgy, dtype=np.float64)[:, None, None]
    variance = sigma2 + arc / gain
    # pixels with no arc and no noise (sigma = 0) carry no signal: their term is 0, not 0/0
    terms = np.divide(arc * arc, variance, out=np.zeros_like(arc), where=variance > 0)
    return np.sqrt(np.sum(terms, axis=(1, 2)))
