"""Correlated sky noise of resampled coadds, for the synthetic sky.

A DR10 coadd is a weighted mean of exposures, each resampled onto the brick's pixel grid
(Lanczos-3 in legacypipe) at its own sub-pixel offset. White noise in an exposure becomes, after
resampling at offset (sx, sy), white noise correlated with the separable kernel
``w_y (x) w_x``, ``w_x[j] = L3(j - sx)`` for taps ``j = -2 ... 3``. For exposures ``k`` with
equal weights the coadd covariance at lag ``(dy, dx)`` is ``sum_k Cy_k(dy) Cx_k(dx)``, with
``C(d) = sum_j w[j] w[j + d]`` the kernel autocorrelation, so the correlation coefficient is
``rho(dy, dx) = sum_k Cy_k(dy) Cx_k(dx) / sum_k Cy_k(0) Cx_k(0)``. The field is rescaled so that
its per-pixel variance is exactly ``sigma^2``: legacypipe's ``psfdepth`` is computed from the
per-pixel inverse variance (ignoring the correlation), so ``sigma_pix_from_psfdepth`` still
gives the per-pixel sigma of such a field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from builder.inject.noise import DR10_N_PASSES


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


def synthetic_sky_noise(
    model_nmgy: np.ndarray,
    sigma_nmgy: Sequence[float],
    gain_e_per_nmgy: float,
    rng: np.random.Generator,
    kernel: str = DEFAULT_RESAMPLING_KERNEL,
    n_exposures: int = DR10_N_PASSES,
) -> np.ndarray:
    """Noise of a synthetic coadd: correlated sky (per-pixel ``sigma_nmgy``) plus source shot noise.

    Parameters
    ----------
    model_nmgy : np.ndarray
        ``(B, ny, nx)`` noiseless scene, nmgy.
    sigma_nmgy : Sequence[float]
        Per-pixel sky sigma of each band, nmgy (e.g. from ``psfdepth``).
    gain_e_per_nmgy : float
        Effective gain for the sources' Poisson noise (variance ``model / gain``, white).
    rng : np.random.Generator
        Random generator: :func:`correlated_sky_noise`, then the shot noise.
    kernel, n_exposures
        See :func:`correlated_sky_noise`.

    Returns
    -------
    np.ndarray
        float64 ``(B, ny, nx)`` noise to add to the scene.
    """
    model = np.asarray(model_nmgy, dtype=np.float64)
    sky, _ = correlated_sky_noise(model.shape[1:], sigma_nmgy, rng, kernel, n_exposures)
    shot = rng.standard_normal(model.shape) * np.sqrt(np.clip(model, 0.0, None) / gain_e_per_nmgy)
    return sky + shot
