"""Photometry: magnitudes, template colours in DECam g, r, z, and noise/depth relations.

Conventions
-----------
* Fluxes are in nanomaggies (nmgy); AB magnitude ``m = 22.5 - 2.5 log10(flux_nmgy)``.
* ``psfdepth`` is the inverse variance of a point-source flux (1/nmgy^2), as in the Legacy
  Survey catalogs. For a PSF ``P`` normalised to unit sum over pixels and white sky noise of
  ``sigma_pix`` nmgy per pixel, the optimal (PSF-weighted) point-source flux has variance
  ``sigma_pix^2 * NEA`` with the noise-equivalent area ``NEA = 1 / sum(P^2)`` (pixels), so
  ``psfdepth = 1 / (sigma_pix^2 * NEA)``.
* Template colours come from GalSim's Coleman, Wu & Weedman (1980) SEDs (extended by
  Bolzonella et al. 2000), redshifted and integrated through speclite's ``decam2014-g/r/z``
  filter curves as AB magnitudes. No evolution, no IGM absorption.

The colour tables are computed once per SED (lazily, cached), so :func:`band_fluxes_nmgy` is a
couple of scalar interpolations (a few microseconds).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import galsim
import numpy as np
import speclite.filters

from shards.schema import BANDS, PIXEL_SCALE_ARCSEC

AB_ZEROPOINT_MAG = 22.5
"""AB magnitude of 1 nanomaggy."""

SED_FILES: dict[str, str] = {
    "E": "CWW_E_ext.sed",
    "Im": "CWW_Im_ext.sed",
    "Scd": "CWW_Scd_ext.sed",
}
"""Template name -> file in GalSim's ``share/SEDs`` folder (wavelength in Angstrom, F_lambda)."""

DECAM_FILTERS: tuple[str, ...] = tuple(f"decam2014-{b}" for b in BANDS)

Z_GRID_MAX = 6.0
"""Largest redshift of the colour tables."""
Z_GRID_STEP = 0.01
"""Redshift step of the colour tables (linear interpolation error < 1e-3 mag)."""
_OBS_WAVELENGTH_AA = np.arange(3300.0, 11002.0, 2.0)  # covers all three DECam curves
_R = BANDS.index("r")
_G = BANDS.index("g")
_Z = BANDS.index("z")

# Moffat noise-equivalent-area table (per beta): FWHM grid in arcsec.
_NEA_FWHM_GRID_ARCSEC = np.arange(0.4, 4.5 + 1e-9, 0.02)


# --------------------------------------------------------------------------- magnitudes


def mag_to_nmgy(mag: float | np.ndarray) -> float | np.ndarray:
    """Convert AB magnitude to flux in nanomaggies.

    Parameters
    ----------
    mag : float or ndarray
        AB magnitude(s).

    Returns
    -------
    float or ndarray
        Flux in nanomaggies, ``10 ** (-0.4 * (mag - 22.5))``.
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - AB_ZEROPOINT_MAG))


def nmgy_to_mag(flux_nmgy: float | np.ndarray) -> float | np.ndarray:
    """Convert a flux in nanomaggies to AB magnitude.

    Parameters
    ----------
    flux_nmgy : float or ndarray
        Strictly positive flux(es) in nanomaggies.

    Returns
    -------
    float or ndarray
        AB magnitude(s), ``22.5 - 2.5 log10(flux)``.

    Raises
    ------
    ValueError
        If any flux is not a positive finite number (a magnitude would be undefined).
    """
    f = np.asarray(flux_nmgy, dtype=np.float64)
    if not np.all(np.isfinite(f) & (f > 0)):
        raise ValueError(f"flux must be positive and finite to have a magnitude, got {flux_nmgy!r}")
    return AB_ZEROPOINT_MAG - 2.5 * np.log10(f)


# --------------------------------------------------------------------------- template colours


def _sed_path(sed: str) -> Path:
    if sed not in SED_FILES:
        raise ValueError(f"unknown SED {sed!r}; choose one of {sorted(SED_FILES)}")
    return Path(galsim.meta_data.share_dir) / "SEDs" / SED_FILES[sed]


@functools.cache
def _decam_filters() -> speclite.filters.FilterSequence:
    return speclite.filters.load_filters(*DECAM_FILTERS)


@functools.cache
def _colour_table(sed: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rest = np.loadtxt(_sed_path(sed), comments="#")
    rest_wl_aa, rest_flam = rest[:, 0], rest[:, 1]
    z = np.round(np.arange(0.0, Z_GRID_MAX + Z_GRID_STEP / 2, Z_GRID_STEP), 10)
    one_plus_z = 1.0 + z[:, None]
    # Observed F_lambda of the redshifted template (overall normalisation cancels in colours).
    obs_flam = (
        np.interp(_OBS_WAVELENGTH_AA[None, :] / one_plus_z, rest_wl_aa, rest_flam) / one_plus_z
    )
    mags = _decam_filters().get_ab_magnitudes(obs_flam, _OBS_WAVELENGTH_AA)
    m = [np.asarray(mags[name], dtype=np.float64) for name in DECAM_FILTERS]
    g_minus_r = m[_G] - m[_R]
    r_minus_z = m[_R] - m[_Z]
    for arr in (z, g_minus_r, r_minus_z):
        arr.setflags(write=False)
    return z, g_minus_r, r_minus_z


def colour_table(sed: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Template DECam colours on the redshift grid (computed once, cached, read-only).

    Parameters
    ----------
    sed : str
        Template name: ``"E"``, ``"Im"`` or ``"Scd"`` (see :data:`SED_FILES`).

    Returns
    -------
    z_grid : ndarray
        Redshifts 0 ... :data:`Z_GRID_MAX` in steps of :data:`Z_GRID_STEP`.
    g_minus_r : ndarray
        DECam ``g - r`` AB colour (mag) of the redshifted template.
    r_minus_z : ndarray
        DECam ``r - z`` AB colour (mag).
    """
    return _colour_table(sed)


def band_fluxes_nmgy(sed: str, redshift: float, mag_r: float) -> np.ndarray:
    """g, r, z fluxes of a template galaxy with DECam r-band AB magnitude ``mag_r``.

    Parameters
    ----------
    sed : str
        Template name: ``"E"``, ``"Im"`` or ``"Scd"``.
    redshift : float
        Redshift, within ``[0, Z_GRID_MAX]``.
    mag_r : float
        DECam r-band AB magnitude (total).

    Returns
    -------
    ndarray
        float64 array of shape (3,): g, r, z fluxes in nanomaggies. The r flux is exactly
        ``mag_to_nmgy(mag_r)``; g and r-z follow the template colours at ``redshift``
        (linearly interpolated in the cached table).

    Raises
    ------
    ValueError
        Unknown SED, redshift outside the table, or non-finite magnitude.
    """
    z_grid, g_minus_r, r_minus_z = _colour_table(sed)
    z = float(redshift)
    if not 0.0 <= z <= Z_GRID_MAX:
        raise ValueError(f"redshift {redshift!r} outside the colour table [0, {Z_GRID_MAX}]")
    m_r = float(mag_r)
    if not math.isfinite(m_r):
        raise ValueError(f"mag_r must be finite, got {mag_r!r}")
    gr = float(np.interp(z, z_grid, g_minus_r))
    rz = float(np.interp(z, z_grid, r_minus_z))
    out = np.empty(3, dtype=np.float64)
    out[_G] = 10.0 ** (-0.4 * (m_r + gr - AB_ZEROPOINT_MAG))
    out[_R] = 10.0 ** (-0.4 * (m_r - AB_ZEROPOINT_MAG))
    out[_Z] = 10.0 ** (-0.4 * (m_r - rz - AB_ZEROPOINT_MAG))
    return out


# --------------------------------------------------------------------------- noise and depth


def sigma_pix_from_psfdepth(psfdepth: float | np.ndarray, nea_pix: float | np.ndarray):
    """Per-pixel sky noise implied by a point-source depth.

    Parameters
    ----------
    psfdepth : float or ndarray
        Point-source flux inverse variance, 1/nmgy^2 (> 0).
    nea_pix : float or ndarray
        Noise-equivalent area of the PSF, pixels (> 0); see :func:`moffat_nea_pix`.

    Returns
    -------
    float or ndarray
        Gaussian per-pixel noise sigma in nmgy, ``1 / sqrt(psfdepth * nea_pix)``.
    """
    d = np.asarray(psfdepth, dtype=np.float64)
    a = np.asarray(nea_pix, dtype=np.float64)
    if not (np.all(d > 0) and np.all(a > 0)):
        raise ValueError(f"psfdepth and nea_pix must be > 0, got {psfdepth!r}, {nea_pix!r}")
    return 1.0 / np.sqrt(d * a)


def psfdepth_from_sigma_pix(sigma_pix: float | np.ndarray, nea_pix: float | np.ndarray):
    """Point-source depth implied by a per-pixel noise level (inverse of the above).

    Parameters
    ----------
    sigma_pix : float or ndarray
        Per-pixel Gaussian noise sigma, nmgy (> 0).
    nea_pix : float or ndarray
        Noise-equivalent area of the PSF, pixels (> 0).

    Returns
    -------
    float or ndarray
        ``psfdepth = 1 / (sigma_pix^2 * nea_pix)`` in 1/nmgy^2.
    """
    s = np.asarray(sigma_pix, dtype=np.float64)
    a = np.asarray(nea_pix, dtype=np.float64)
    if not (np.all(s > 0) and np.all(a > 0)):
        raise ValueError(f"sigma_pix and nea_pix must be > 0, got {sigma_pix!r}, {nea_pix!r}")
    return 1.0 / (s * s * a)


def moffat_nea_direct(fwhm_arcsec: float, beta: float) -> float:
    """Noise-equivalent area (pixels) of a pixel-convolved GalSim Moffat, drawn exactly.

    Parameters
    ----------
    fwhm_arcsec : float
        Moffat FWHM, arcsec.
    beta : float
        Moffat index (> 1.1; GalSim needs truncation below that).

    Returns
    -------
    float
        ``1 / sum(P^2)`` with ``P`` the PSF drawn at 0.262 arcsec/pixel (GalSim ``auto``
        method, i.e. integrated over pixels) on a stamp wide enough for the wings (at least
        65 x 65, and +-8 FWHM) and normalised to unit sum.
    """
    fwhm = float(fwhm_arcsec)
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm_arcsec must be > 0, got {fwhm_arcsec!r}")
    if not (math.isfinite(beta) and beta > 1.1):
        raise ValueError(f"Moffat beta must be > 1.1, got {beta!r}")
    half = max(32, math.ceil(8.0 * fwhm / PIXEL_SCALE_ARCSEC))
    img = galsim.Moffat(beta=float(beta), fwhm=fwhm).drawImage(
        nx=2 * half + 1, ny=2 * half + 1, scale=PIXEL_SCALE_ARCSEC
    )
    p = img.array.astype(np.float64)
    p /= p.sum()
    return float(1.0 / np.sum(p * p))


@functools.lru_cache(maxsize=16)
def _nea_table(beta: float) -> np.ndarray:
    log_nea = np.log([moffat_nea_direct(f, beta) for f in _NEA_FWHM_GRID_ARCSEC])
    log_nea.setflags(write=False)
    return log_nea


@functools.lru_cache(maxsize=1024)
def _nea_off_grid(fwhm_arcsec: float, beta: float) -> float:
    return moffat_nea_direct(fwhm_arcsec, beta)


def moffat_nea_pix(fwhm_arcsec: float, beta: float = 3.5) -> float:
    """Noise-equivalent area (pixels) of a Moffat PSF at 0.262 arcsec/pixel.

    Inside 0.4-4.5 arcsec FWHM the value is interpolated (log-log, error < 1e-4 relative) in a
    table of :func:`moffat_nea_direct` computed once per ``beta``; outside it is drawn directly
    (cached per value).

    Parameters
    ----------
    fwhm_arcsec : float
        PSF FWHM, arcsec.
    beta : float
        Moffat index.

    Returns
    -------
    float
        ``NEA = 1 / sum(P^2)`` in pixels.
    """
    fwhm = float(fwhm_arcsec)
    beta = float(beta)
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm_arcsec must be > 0, got {fwhm_arcsec!r}")
    grid = _NEA_FWHM_GRID_ARCSEC
    if grid[0] <= fwhm <= grid[-1]:
        if not (math.isfinite(beta) and beta > 1.1):
            raise ValueError(f"Moffat beta must be > 1.1, got {beta!r}")
        return float(np.exp(np.interp(math.log(fwhm), np.log(grid), _nea_table(beta))))
    return _nea_off_grid(fwhm, beta)


def annulus_mask(shape: tuple[int, int], inner_radius_pix: float) -> np.ndarray:
    """Boolean mask of pixels farther than ``inner_radius_pix`` from the stamp centre.

    The centre is the geometric centre ``((ny - 1) / 2, (nx - 1) / 2)``.
    """
    ny, nx = shape
    y, x = np.ogrid[:ny, :nx]
    r2 = (y - (ny - 1) / 2.0) ** 2 + (x - (nx - 1) / 2.0) ** 2
    return r2 > float(inner_radius_pix) ** 2


def robust_sigma_pix(image: np.ndarray, inner_radius_pix: float = 24.0) -> float:
    """Robust per-pixel noise of a stamp: 1.4826 * MAD of the outer annulus.

    Parameters
    ----------
    image : ndarray
        2-D image (nmgy per pixel).
    inner_radius_pix : float
        Only pixels farther than this from the centre are used (the central galaxy is excluded).

    Returns
    -------
    float
        Noise sigma in nmgy (0 if the annulus is constant; NaN if it has no pixels).
    """
    img = np.asarray(image, dtype=np.float64)
    pix = img[annulus_mask(img.shape, inner_radius_pix)]
    if pix.size == 0:
        return float("nan")
    med = np.median(pix)
    return float(1.4826 * np.median(np.abs(pix - med)))


def estimate_psfdepth(
    image: np.ndarray, psfsize_arcsec: float, beta: float = 3.5, inner_radius_pix: float = 24.0
) -> float:
    """Estimate a band's ``psfdepth`` (1/nmgy^2) from the noise of a stamp.

    ``sigma_pix`` is :func:`robust_sigma_pix` of the outer annulus; the NEA is that of a Moffat
    with FWHM ``psfsize_arcsec`` (:func:`moffat_nea_pix`). Neighbours in the annulus bias the
    MAD only slightly; the result is a sky-noise-only depth.

    Returns
    -------
    float
        ``psfdepth_from_sigma_pix(sigma_pix, nea)``, or NaN when the annulus has no usable
        noise (constant or empty): the caller must reject such a stamp.
    """
    sigma = robust_sigma_pix(image, inner_radius_pix)
    if not (math.isfinite(sigma) and sigma > 0):
        return float("nan")
    return float(psfdepth_from_sigma_pix(sigma, moffat_nea_pix(psfsize_arcsec, beta)))
