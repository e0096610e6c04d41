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

from builder.photometry import moffat_nea_pix, robust_sigma_pix, sigma_pix_from_psfdepth
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
    fwhms_arcsec: Sequence[float], beta: float, psf_images: np.ndarray | None = None
) -> np.ndarray:
    """Noise-equivalent area ``1 / sum(P^2)`` (pixels) of each band's PSF.

    Parameters
    ----------
    fwhms_arcsec : Sequence[float]
        Moffat FWHM per band, arcsec (used when ``psf_images`` is None).
    beta : float
        Moffat index.
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
    return np.array([moffat_nea_pix(float(f), float(beta)) for f in fwhms_arcsec])


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


# --------------------------------------------------------------------------- correlated sky noise
#
# A DR10 coadd is a weighted mean of exposures, each resampled onto the brick's pixel grid
# (Lanczos-3 in legacypipe) at its own sub-pixel offset. White noise in an exposure becomes, after
# resampling at offset (sx, sy), white noise correlated with the separable kernel
# ``w_y (x) w_x``, ``w_x[j] = L3(j - sx)`` for taps ``j = -2 ... 3``. For exposures ``k`` with
# equal weights the coadd covariance at lag ``(dy, dx)`` is ``sum_k Cy_k(dy) Cx_k(dx)``, with
# ``C(d) = sum_j w[j] w[j + d]`` the kernel autocorrelation, so the correlation coefficient is
# ``rho(dy, dx) = sum_k Cy_k(dy) Cx_k(dx) / sum_k Cy_k(0) Cx_k(0)``. The field is rescaled so that
# its per-pixel variance is exactly ``sigma^2``: legacypipe's ``psfdepth`` is computed from the
# per-pixel inverse variance (ignoring the correlation), so ``sigma_pix_from_psfdepth`` still
# gives the per-pixel sigma of such a field.


def lanczos3_weights(shift_pix: float) -> np.ndarray:
    """Lanczos-3 interpolation weights for a sub-pixel shift, normalised to unit sum.

    Parameters
    ----------
    shift_pix : float
        Offset of the output pixel from input pixel 0, in ``[0, 1)`` pixels.

    Returns
    -------
    np.ndarray
        float64 ``(6,)`` weights of input pixels ``-2 ... 3``: ``L(j - s)`` with
        ``L(x) = sinc(x) sinc(x / 3)`` (numpy's normalised sinc).
    """
    x = np.arange(-2, 4, dtype=np.float64) - float(shift_pix)
    w = np.sinc(x) * np.sinc(x / 3.0)
    return w / w.sum()


def bilinear_weights(shift_pix: float) -> np.ndarray:
    """Linear-interpolation weights ``(1 - s, s)`` of input pixels 0 and 1 for shift ``s``."""
    s = float(shift_pix)
    return np.array([1.0 - s, s])


#: Resampling kernels: name -> weights(shift_pix) (1-D, separable). One entry per kernel.
RESAMPLING_KERNELS = {"lanczos3": lanczos3_weights, "bilinear": bilinear_weights}
#: Default resampling kernel and number of resampled exposures (DR10's nominal 3 passes).
DEFAULT_RESAMPLING_KERNEL = "lanczos3"


def _kernel_weights(kernel: str, shift_pix: float) -> np.ndarray:
    if kernel not in RESAMPLING_KERNELS:
        raise ValueError(
            f"unknown resampling kernel {kernel!r}; choose one of {sorted(RESAMPLING_KERNELS)}"
        )
    if not 0.0 <= float(shift_pix) < 1.0:
        raise ValueError(f"sub-pixel shift must be in [0, 1), got {shift_pix!r}")
    return RESAMPLING_KERNELS[kernel](shift_pix)


def _autocorr(w: np.ndarray, lag: int) -> float:
    lag = abs(int(lag))
    return float(np.dot(w[: w.size - lag], w[lag:])) if lag < w.size else 0.0


def draw_resampling_shifts(
    rng: np.random.Generator, n_exposures: int = DR10_N_PASSES
) -> np.ndarray:
    """Uniform sub-pixel offsets ``(sy, sx)`` in ``[0, 1)`` of ``n_exposures`` exposures.

    Returns
    -------
    np.ndarray
        float64 ``(n_exposures, 2)``.
    """
    if int(n_exposures) < 1:
        raise ValueError(f"n_exposures must be >= 1, got {n_exposures!r}")
    return rng.uniform(0.0, 1.0, size=(int(n_exposures), 2))


def expected_autocorrelation(
    shifts_pix: np.ndarray,
    lag_pix: tuple[int, int] = (0, 1),
    kernel: str = DEFAULT_RESAMPLING_KERNEL,
) -> float:
    """Correlation coefficient at ``lag_pix = (dy, dx)`` of :func:`resampled_noise`.

    Parameters
    ----------
    shifts_pix : np.ndarray
        ``(K, 2)`` sub-pixel offsets ``(sy, sx)`` of the resampled exposures.
    lag_pix : tuple[int, int]
        Lag ``(dy, dx)`` in pixels; ``(0, 1)`` is the lag-1 correlation along x.
    kernel : str
        Key of :data:`RESAMPLING_KERNELS`.

    Returns
    -------
    float
        ``sum_k Cy_k(dy) Cx_k(dx) / sum_k Cy_k(0) Cx_k(0)`` (see the comment above).
    """
    num = den = 0.0
    for sy, sx in np.asarray(shifts_pix, dtype=np.float64).reshape(-1, 2):
        wy, wx = _kernel_weights(kernel, sy), _kernel_weights(kernel, sx)
        num += _autocorr(wy, lag_pix[0]) * _autocorr(wx, lag_pix[1])
        den += _autocorr(wy, 0) * _autocorr(wx, 0)
    return num / den


def expected_lag1_autocorrelation(
    shifts_pix: np.ndarray, kernel: str = DEFAULT_RESAMPLING_KERNEL
) -> float:
    """Mean of the x and y lag-1 correlation coefficients of :func:`resampled_noise`."""
    return 0.5 * (
        expected_autocorrelation(shifts_pix, (0, 1), kernel)
        + expected_autocorrelation(shifts_pix, (1, 0), kernel)
    )


def resampled_noise(
    shape_pix: tuple[int, int],
    sigma_nmgy: float,
    shifts_pix: np.ndarray,
    rng: np.random.Generator,
    kernel: str = DEFAULT_RESAMPLING_KERNEL,
) -> np.ndarray:
    """Gaussian noise correlated like a coadd of resampled exposures, per-pixel sigma preserved.

    Each exposure's white noise is resampled (separable ``kernel`` at its offset in
    ``shifts_pix``); the exposures are summed with equal weights and the sum rescaled so that the
    expected per-pixel variance is ``sigma_nmgy^2`` exactly.

    Parameters
    ----------
    shape_pix : tuple[int, int]
        ``(ny, nx)`` of the field.
    sigma_nmgy : float
        Per-pixel noise sigma, nmgy (e.g. ``sigma_pix_from_psfdepth``), >= 0.
    shifts_pix : np.ndarray
        ``(K, 2)`` sub-pixel offsets ``(sy, sx)`` in ``[0, 1)``, see
        :func:`draw_resampling_shifts`.
    rng : np.random.Generator
        Random generator (one ``standard_normal`` draw per exposure, in order).
    kernel : str
        Key of :data:`RESAMPLING_KERNELS`.

    Returns
    -------
    np.ndarray
        float64 ``(ny, nx)`` zero-mean field; correlation given by
        :func:`expected_autocorrelation`.
    """
    ny, nx = (int(v) for v in shape_pix)
    sigma = float(sigma_nmgy)
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma_nmgy must be finite and >= 0, got {sigma_nmgy!r}")
    shifts = np.asarray(shifts_pix, dtype=np.float64).reshape(-1, 2)
    if shifts.shape[0] == 0:
        raise ValueError("need at least one exposure shift")
    total = np.zeros((ny, nx))
    variance = 0.0
    for sy, sx in shifts:
        wy, wx = _kernel_weights(kernel, sy), _kernel_weights(kernel, sx)
        white = rng.standard_normal((ny + wy.size - 1, nx + wx.size - 1))
        along_x = sum(w * white[:, j : j + nx] for j, w in enumerate(wx))
        total += sum(w * along_x[j : j + ny, :] for j, w in enumerate(wy))
        variance += _autocorr(wy, 0) * _autocorr(wx, 0)
    return total * (sigma / np.sqrt(variance))


def correlated_sky_noise(
    shape_pix: tuple[int, int],
    sigma_nmgy: Sequence[float],
    rng: np.random.Generator,
    kernel: str = DEFAULT_RESAMPLING_KERNEL,
    n_exposures: int = DR10_N_PASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Correlated sky noise for every band, each band with its own exposures' offsets.

    Parameters
    ----------
    shape_pix : tuple[int, int]
        ``(ny, nx)`` of a band image.
    sigma_nmgy : Sequence[float]
        Per-pixel sigma of each band, nmgy.
    rng : np.random.Generator
        Random generator; per band: offsets (:func:`draw_resampling_shifts`) then the field.
    kernel : str
        Key of :data:`RESAMPLING_KERNELS`.
    n_exposures : int
        Exposures per band (default: DR10's nominal 3 passes).

    Returns
    -------
    noise : np.ndarray
        float64 ``(B, ny, nx)``.
    shifts : np.ndarray
        ``(B, n_exposures, 2)`` offsets used; ``expected_lag1_autocorrelation(shifts[b])``
        is band ``b``'s expected lag-1 correlation.
    """
    noise, shifts = [], []
    for sigma in sigma_nmgy:
        s = draw_resampling_shifts(rng, n_exposures)
        noise.append(resampled_noise(shape_pix, float(sigma), s, rng, kernel))
        shifts.append(s)
    return np.stack(noise), np.stack(shifts)


def measured_lag1_autocorrelation(image: np.ndarray) -> float:
    """Mean of the x and y lag-1 correlation coefficients of an image (mean subtracted)."""
    d = np.asarray(image, dtype=np.float64)
    d = d - d.mean()
    var = np.mean(d * d)
    cx = np.mean(d[:, 1:] * d[:, :-1])
    cy = np.mean(d[1:, :] * d[:-1, :])
    return float(0.5 * (cx + cy) / var)
