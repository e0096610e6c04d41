"""PSF kernels (Moffat, or images supplied with the cutout) and correctly centred FFT convolution.

A kernel is an odd ``K x K`` array whose centre pixel ``K // 2`` is the PSF centre. For the FFT
it is embedded in an ``N x N`` array (``N = FFT_SIZE``) with its centre moved to element
``[0, 0]`` (wrap-around); the image is zero-padded to ``N x N``. The circular convolution then
equals the linear convolution on the stamp, with no shift: an impulse at ``(32, 32)`` stays at
``(32, 32)``. ``N >= n_pix + 2 * MAX_KERNEL_RADIUS_PIX`` guarantees no wrap-around of the
padded image into the stamp.

Moffat kernels (Moffat 1969) are drawn with GalSim (Rowe et al. 2015) by sampling the profile at
pixel centres (``method="no_pixel"``): the catalog ``psfsize`` is the FWHM of the *effective*
(pixel-convolved) PSF, so the kernel's FWHM equals the requested value. The arc image is
already integrated over pixels, which adds a one-pixel box in quadrature (< 1% on the FWHM of a
1.1 arcsec PSF at 0.262 arcsec pixels). Kernels and their FFTs are cached per (FWHM, beta);
bands with the same FWHM share a kernel. FWHMs are rounded to :data:`FWHM_QUANTUM_ARCSEC`
(an error of at most 0.001 arcsec, < 0.1%) so that the cache is reused across cutouts. The
index may differ per band (the synthetic sky draws one per object and band); such kernels are
cheap to draw (~0.1 ms) when the cache misses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import galsim
import numpy as np
import scipy.fft

from shards.schema import PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX

#: Largest kernel half-width, pixels (kernels are at most 63 x 63).
MAX_KERNEL_RADIUS_PIX = 31
#: FFT size: >= stamp size + 2 x the largest kernel half-width, and a power of two.
FFT_SIZE = 128
#: Resolution of the FWHM cache key, arcsec.
FWHM_QUANTUM_ARCSEC = 0.002

assert FFT_SIZE >= STAMP_SIZE_PIX + 2 * MAX_KERNEL_RADIUS_PIX


def quantize_fwhm(fwhm_arcsec: float) -> float:
    """Round a FWHM (arcsec) to the kernel cache resolution :data:`FWHM_QUANTUM_ARCSEC`."""
    return round(round(float(fwhm_arcsec) / FWHM_QUANTUM_ARCSEC) * FWHM_QUANTUM_ARCSEC, 6)


def kernel_radius_pix(
    fwhm_arcsec: float, radius_fwhm: float, pixscale_arcsec: float = PIXEL_SCALE_ARCSEC
) -> int:
    """Half-width (pixels) of a kernel reaching ``radius_fwhm`` FWHMs, capped at 31."""
    return int(min(math.ceil(radius_fwhm * fwhm_arcsec / pixscale_arcsec), MAX_KERNEL_RADIUS_PIX))


@lru_cache(maxsize=256)
def moffat_kernel(
    fwhm_arcsec: float,
    beta: float,
    radius_fwhm: float = 4.0,
    pixscale_arcsec: float = PIXEL_SCALE_ARCSEC,
) -> np.ndarray:
    """Unit-sum Moffat kernel sampled at pixel centres, centred on the middle pixel.

    Parameters
    ----------
    fwhm_arcsec : float
        Full width at half maximum, arcsec.
    beta : float
        Moffat index (> 1).
    radius_fwhm : float
        Kernel half-width in FWHMs (capped at :data:`MAX_KERNEL_RADIUS_PIX` pixels).
    pixscale_arcsec : float
        Pixel size, arcsec.

    Returns
    -------
    np.ndarray
        Read-only float64 ``(2R+1, 2R+1)`` array summing to 1.
    """
    radius = kernel_radius_pix(fwhm_arcsec, radius_fwhm, pixscale_arcsec)
    size = 2 * radius + 1
    profile = galsim.Moffat(beta=beta, fwhm=fwhm_arcsec)
    image = profile.drawImage(nx=size, ny=size, scale=pixscale_arcsec, method="no_pixel")
    kernel = image.array.astype(np.float64)
    kernel /= kernel.sum()
    kernel.setflags(write=False)
    return kernel


def prepare_kernel(psf_image: np.ndarray) -> np.ndarray:
    """Validate a supplied PSF image: odd square, cropped to 63 x 63 at most, unit sum.

    Parameters
    ----------
    psf_image : np.ndarray
        ``(K, K)`` PSF image centred on pixel ``(K // 2, K // 2)``, K odd.

    Returns
    -------
    np.ndarray
        float64 kernel normalised to unit sum.

    Raises
    ------
    ValueError
        If the image is not an odd square, is not finite or has a non-positive sum.
    """
    psf = np.asarray(psf_image, dtype=np.float64)
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise ValueError(f"PSF image must be an odd square (K, K), got shape {psf.shape}")
    half = psf.shape[0] // 2
    if half > MAX_KERNEL_RADIUS_PIX:
        c, r = half, MAX_KERNEL_RADIUS_PIX
        psf = psf[c - r : c + r + 1, c - r : c + r + 1]
    total = psf.sum()
    if not np.isfinite(psf).all() or total <= 0:
        raise ValueError("PSF image must be finite with a positive sum")
    return psf / total


def kernel_fft(kernel: np.ndarray, n_fft: int = FFT_SIZE) -> np.ndarray:
    """Real FFT of a centred odd kernel embedded with its centre at element ``[0, 0]``.

    Parameters
    ----------
    kernel : np.ndarray
        ``(K, K)`` kernel, K odd, centre at ``(K // 2, K // 2)``.
    n_fft : int
        FFT size.

    Returns
    -------
    np.ndarray
        complex64 ``(n_fft, n_fft // 2 + 1)``.
    """
    size = kernel.shape[0]
    half = size // 2
    padded = np.zeros((n_fft, n_fft), dtype=np.float32)
    padded[:size, :size] = kernel
    padded = np.roll(padded, (-half, -half), axis=(0, 1))
    return scipy.fft.rfft2(padded)


@lru_cache(maxsize=256)
def moffat_kernel_fft(
    fwhm_arcsec: float,
    beta: float,
    radius_fwhm: float = 4.0,
    pixscale_arcsec: float = PIXEL_SCALE_ARCSEC,
) -> np.ndarray:
    """Cached FFT of :func:`moffat_kernel` (read-only complex64, ``FFT_SIZE`` grid)."""
    spectrum = kernel_fft(moffat_kernel(fwhm_arcsec, beta, radius_fwhm, pixscale_arcsec))
    spectrum.setflags(write=False)
    return spectrum


def band_betas(beta: float | Sequence[float], n_bands: int) -> list[float]:
    """One Moffat index per band: a scalar repeated, or a per-band sequence checked for length."""
    if isinstance(beta, int | float | np.floating | np.integer):
        return [float(beta)] * n_bands
    betas = [float(b) for b in beta]
    if len(betas) != n_bands:
        raise ValueError(f"expected {n_bands} per-band Moffat indices, got {len(betas)}")
    return betas


def band_kernel_ffts(
    fwhms_arcsec: Sequence[float],
    beta: float | Sequence[float],
    radius_fwhm: float = 4.0,
    psf_images: np.ndarray | None = None,
) -> np.ndarray:
    """Kernel spectra for each band: supplied PSF images if given, else cached Moffats.

    Parameters
    ----------
    fwhms_arcsec : Sequence[float]
        Per-band PSF FWHM, arcsec (ignored when ``psf_images`` is given).
    beta : float or Sequence[float]
        Moffat index, one for all bands or one per band.
    radius_fwhm : float
        Moffat kernel half-width in FWHMs.
    psf_images : np.ndarray or None
        Optional ``(B, K, K)`` PSF images, K odd.

    Returns
    -------
    np.ndarray
        complex64 ``(B, FFT_SIZE, FFT_SIZE // 2 + 1)``.
    """
    if psf_images is not None:
        psf_images = np.asarray(psf_images)
        if psf_images.ndim != 3 or psf_images.shape[0] != len(fwhms_arcsec):
            raise ValueError(
                f"psf_images must have shape ({len(fwhms_arcsec)}, K, K), got {psf_images.shape}"
            )
        return np.stack([kernel_fft(prepare_kernel(p)) for p in psf_images])
    betas = band_betas(beta, len(fwhms_arcsec))
    return np.stack(
        [
            moffat_kernel_fft(quantize_fwhm(f), b, float(radius_fwhm))
            for f, b in zip(fwhms_arcsec, betas, strict=True)
        ]
    )


def convolve(images: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """Convolve band images with their kernel spectra (linear, centred convolution).

    Parameters
    ----------
    images : np.ndarray
        ``(B, n, n)`` images, or one ``(n, n)`` image convolved with every band's kernel (its
        FFT is then computed once); float32 for speed;
        ``n <= FFT_SIZE - 2 * MAX_KERNEL_RADIUS_PIX``.
    spectra : np.ndarray
        ``(B, FFT_SIZE, FFT_SIZE // 2 + 1)`` from :func:`band_kernel_ffts`.

    Returns
    -------
    np.ndarray
        ``(B, n, n)`` convolved images, same flux units as ``images``.
    """
    n_fft = spectra.shape[-2]
    ny, nx = images.shape[-2:]
    transformed = scipy.fft.rfft2(images, s=(n_fft, n_fft), axes=(-2, -1)) * spectra
    return scipy.fft.irfft2(transformed, s=(n_fft, n_fft), axes=(-2, -1))[..., :ny, :nx]
