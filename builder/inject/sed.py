"""Source SEDs: star-forming templates, redshift, Calzetti dust, Madau IGM, DECam AB colours.

A drawn source has a rest-frame template (GalSim's Coleman, Wu & Weedman 1980 SEDs, extended
by Bolzonella et al. 2000), a redshift, and a stellar-continuum colour excess ``E(B-V)``. Its
observed spectrum is

``F_obs(lam) = F_rest(lam / (1+z)) / (1+z) * 10^(-0.4 E(B-V) k(lam / (1+z))) * T_IGM(lam, z)``

integrated through speclite's ``decam2014-g/r/z`` curves (the machinery of
:mod:`builder.photometry`) as AB magnitudes. Nothing is downloaded: the templates ship with
GalSim, the filter curves with speclite.

Dust: Calzetti et al. (2000, ApJ 533, 682), eq. 4, ``R_V = 4.05``::

    k = 2.659 (-2.156 + 1.509/l - 0.198/l^2 + 0.011/l^3) + R_V    0.12 <= l <= 0.63 um
    k = 2.659 (-1.857 + 1.040/l) + R_V                             0.63 <  l <= 2.20 um

Blueward of 0.12 um the UV polynomial is extrapolated, redward of 2.2 um the linear branch;
``k`` is clipped at 0. ``E(B-V)`` is the stellar one (``E_s = 0.44 E_gas``). Its default
distribution is a normal of mean 0.15 and sigma 0.12 truncated to [0, 0.6] mag, close to the
values reported for UV-selected star-forming galaxies at z ~ 2-3 (Shapley et al. 2001, ApJ
562, 95; Reddy et al. 2008, ApJS 175, 48: mean ~0.15, dispersion ~0.1), with a tail of dustier
sources.

IGM: Madau (1995, ApJ 441, 18). Lyman-series line blanketing, for each line ``j`` (Lya, Lyb,
Lyg, Lyd at 1216, 1026, 973, 950 A) with ``A_j = 3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4``::

    tau_lines = sum_j A_j (lam / lam_j)^3.46        for lam < lam_j (1+z)

and photoelectric absorption by intervening Lyman-limit systems blueward of the redshifted
Lyman limit, his approximation (footnote 3) with ``x_c = lam / 912 A`` and ``x_em = 1+z``::

    tau_c = 0.25 x_c^3 (x_em^0.46 - x_c^0.46) + 9.4 x_c^1.5 (x_em^0.18 - x_c^0.18)
            - 0.7 x_c^3 (x_c^-1.32 - x_em^-1.32) - 0.023 (x_em^1.68 - x_c^1.68)
                                                     for lam < 912 A (1+z)

``T_IGM = exp(-(tau_lines + tau_c))``.

Colours of (template, z, E(B-V)) are tabulated once per template (lazily, cached; about a
second) on a grid of :data:`Z_STEP` in z and :data:`EBV_STEP` in E(B-V) and interpolated
bilinearly (error < 0.01 mag against the direct integration, pinned in the tests).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import galsim
import numpy as np
from scipy.interpolate import RegularGridInterpolator

from builder.photometry import DECAM_FILTERS, _decam_filters
from shards.schema import BANDS

# --------------------------------------------------------------------------- templates

#: Star-forming template name -> file in GalSim's ``share/SEDs`` (Angstrom, F_lambda). One entry
#: per template: adding a template is one line here (any two-column rest-frame F_lambda file).
SF_TEMPLATE_FILES: dict[str, str] = {
    "Sbc": "CWW_Sbc_ext.sed",
    "Scd": "CWW_Scd_ext.sed",
    "Im": "CWW_Im_ext.sed",
}

#: Calzetti et al. (2000) total-to-selective attenuation ``R_V``.
CALZETTI_RV = 4.05
#: Lyman-series wavelengths (Lya, Lyb, Lyg, Lyd), Angstrom, and Madau (1995) coefficients.
LYMAN_SERIES_AA: tuple[float, ...] = (1215.67, 1025.72, 972.537, 949.743)
MADAU_LINE_COEFFS: tuple[float, ...] = (3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4)
#: Lyman limit, Angstrom.
LYMAN_LIMIT_AA = 911.75
#: Optical depth cap (transmission floor exp(-60)) so that colours stay finite.
_TAU_MAX = 60.0

#: Redshift grid of the colour tables: 0 ... Z_MAX in steps of Z_STEP.
Z_MAX = 5.0
Z_STEP = 0.02
#: E(B-V) grid of the colour tables, mag: 0 ... EBV_MAX in steps of EBV_STEP.
EBV_MAX = 1.0
EBV_STEP = 0.05
#: Observed-frame wavelength grid for the integrals, Angstrom (covers the DECam g, r, z curves).
_OBS_WL_AA = np.arange(3300.0, 11005.0, 5.0)

G, R, Z = BANDS.index("g"), BANDS.index("r"), BANDS.index("z")


def template_path(name: str) -> Path:
    """Path of a star-forming template in GalSim's ``share/SEDs`` folder.

    Raises
    ------
    ValueError
        If ``name`` is not in :data:`SF_TEMPLATE_FILES`.
    """
    if name not in SF_TEMPLATE_FILES:
        raise ValueError(
            f"unknown SED template {name!r}; choose one of {sorted(SF_TEMPLATE_FILES)}"
        )
    return Path(galsim.meta_data.share_dir) / "SEDs" / SF_TEMPLATE_FILES[name]


@functools.cache
def load_template(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame ``(wavelength_aa, f_lambda)`` of a template (read-only arrays, cached)."""
    data = np.loadtxt(template_path(name), comments="#")
    wl, flam = data[:, 0].copy(), data[:, 1].copy()
    wl.setflags(write=False)
    flam.setflags(write=False)
    return wl, flam


# --------------------------------------------------------------------------- dust and IGM


def calzetti_k(wavelength_um: np.ndarray | float, r_v: float = CALZETTI_RV) -> np.ndarray:
    """Calzetti et al. (2000) attenuation curve ``k(lambda) = A(lambda) / E_s(B-V)``.

    Parameters
    ----------
    wavelength_um : array_like
        Rest-frame wavelength(s), micrometres (> 0).
    r_v : float
        Total-to-selective ratio; 4.05 in Calzetti et al. (2000).

    Returns
    -------
    np.ndarray
        float64 ``k`` (eq. 4 of the paper; extrapolated outside 0.12-2.2 um, clipped at 0).
    """
    lam = np.asarray(wavelength_um, dtype=np.float64)
    if not np.all(lam > 0):
        raise ValueError("wavelength_um must be > 0")
    inv = 1.0 / lam
    uv = 2.659 * (-2.156 + 1.509 * inv - 0.198 * inv**2 + 0.011 * inv**3) + r_v
    ir = 2.659 * (-1.857 + 1.040 * inv) + r_v
    return np.maximum(np.where(lam <= 0.63, uv, ir), 0.0)


def madau_igm_transmission(obs_wavelength_aa: np.ndarray | float, redshift: float) -> np.ndarray:
    """Madau (1995) mean intergalactic transmission toward a source at ``redshift``.

    Parameters
    ----------
    obs_wavelength_aa : array_like
        Observed-frame wavelength(s), Angstrom.
    redshift : float
        Source redshift (>= 0).

    Returns
    -------
    np.ndarray
        float64 ``exp(-tau)`` in (0, 1]: exactly 1 redward of the redshifted Lyman alpha;
        Lyman-series blanketing plus Lyman-continuum absorption blueward (module docstring).
    """
    lam = np.asarray(obs_wavelength_aa, dtype=np.float64)
    z = float(redshift)
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"redshift must be finite and >= 0, got {redshift!r}")
    x_em = 1.0 + z
    tau = np.zeros_like(lam)
    for lam_j, a_j in zip(LYMAN_SERIES_AA, MADAU_LINE_COEFFS, strict=True):
        tau += np.where(lam < lam_j * x_em, a_j * (lam / lam_j) ** 3.46, 0.0)
    x_c = lam / LYMAN_LIMIT_AA
    below = x_c < x_em
    xc = np.where(below, x_c, 1.0)  # placeholder where the formula does not apply
    tau_c = (
        0.25 * xc**3 * (x_em**0.46 - xc**0.46)
        + 9.4 * xc**1.5 * (x_em**0.18 - xc**0.18)
        - 0.7 * xc**3 * (xc ** (-1.32) - x_em ** (-1.32))
        - 0.023 * (x_em**1.68 - xc**1.68)
    )
    tau += np.where(below, np.maximum(tau_c, 0.0), 0.0)
    return np.exp(-np.minimum(tau, _TAU_MAX))


#: IGM models: name -> transmission(obs_wavelength_aa, redshift). One entry per model.
IGM_MODELS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "madau1995": madau_igm_transmission,
    "none": lambda lam, z: np.ones_like(np.asarray(lam, dtype=np.float64)),
}


# --------------------------------------------------------------------------- integration


def observed_flambda(
    rest_wavelength_aa: np.ndarray,
    rest_flambda: np.ndarray,
    redshift: float,
    ebv_mag: float,
    igm: str = "madau1995",
    obs_wavelength_aa: np.ndarray = _OBS_WL_AA,
) -> np.ndarray:
    """Observed F_lambda of a redshifted, dust-attenuated, IGM-absorbed rest-frame spectrum.

    Parameters
    ----------
    rest_wavelength_aa, rest_flambda : np.ndarray
        Rest-frame spectrum (increasing wavelength, Angstrom; any F_lambda unit).
    redshift : float
        Source redshift (>= 0).
    ebv_mag : float
        Stellar colour excess E_s(B-V), mag (>= 0), Calzetti (2000) curve.
    igm : str
        Key of :data:`IGM_MODELS`.
    obs_wavelength_aa : np.ndarray
        Observed wavelength grid, Angstrom.

    Returns
    -------
    np.ndarray
        F_lambda on ``obs_wavelength_aa`` (overall normalisation arbitrary).
    """
    if igm not in IGM_MODELS:
        raise ValueError(f"unknown IGM model {igm!r}; choose one of {sorted(IGM_MODELS)}")
    if not (math.isfinite(ebv_mag) and ebv_mag >= 0):
        raise ValueError(f"ebv_mag must be finite and >= 0, got {ebv_mag!r}")
    one_plus_z = 1.0 + float(redshift)
    rest_lam = obs_wavelength_aa / one_plus_z
    flam = np.interp(rest_lam, rest_wavelength_aa, rest_flambda) / one_plus_z
    dust = 10.0 ** (-0.4 * ebv_mag * calzetti_k(rest_lam * 1e-4))
    return flam * dust * IGM_MODELS[igm](obs_wavelength_aa, redshift)


def ab_mags(obs_flambda: np.ndarray, obs_wavelength_aa: np.ndarray = _OBS_WL_AA) -> np.ndarray:
    """DECam g, r, z AB magnitudes (speclite ``decam2014``) of observed F_lambda spectra.

    Parameters
    ----------
    obs_flambda : np.ndarray
        ``(..., L)`` F_lambda in erg/s/cm^2/A on ``obs_wavelength_aa`` (only colours matter
        for the callers; the absolute level sets the magnitudes).
    obs_wavelength_aa : np.ndarray
        ``(L,)`` wavelength grid, Angstrom.

    Returns
    -------
    np.ndarray
        float64 ``(..., 3)`` magnitudes in :data:`shards.schema.BANDS` order.
    """
    maggies = _decam_filters().get_ab_maggies(obs_flambda, obs_wavelength_aa)
    out = np.stack([np.asarray(maggies[name], dtype=np.float64) for name in DECAM_FILTERS], -1)
    out = out.reshape(np.shape(obs_flambda)[:-1] + (3,))
    return -2.5 * np.log10(np.maximum(out, 1e-300))


@functools.cache
def _colour_grid(
    template: str, igm: str
) -> tuple[RegularGridInterpolator, RegularGridInterpolator]:
    wl, flam = load_template(template)
    z_grid = np.round(np.arange(0.0, Z_MAX + Z_STEP / 2, Z_STEP), 10)
    ebv_grid = np.round(np.arange(0.0, EBV_MAX + EBV_STEP / 2, EBV_STEP), 10)
    mags = np.empty((z_grid.size, ebv_grid.size, 3))
    for i, z in enumerate(z_grid):
        # the dust factor is the only E(B-V) dependence: one IGM-absorbed spectrum per z
        base = observed_flambda(wl, flam, z, 0.0, igm)
        k = calzetti_k(_OBS_WL_AA / (1.0 + z) * 1e-4)
        mags[i] = ab_mags(base[None, :] * 10.0 ** (-0.4 * ebv_grid[:, None] * k[None, :]))
    g_r = mags[..., G] - mags[..., R]
    r_z = mags[..., R] - mags[..., Z]
    return (
        RegularGridInterpolator((z_grid, ebv_grid), g_r),
        RegularGridInterpolator((z_grid, ebv_grid), r_z),
    )


def template_colours(
    template: str, redshift: float | np.ndarray, ebv_mag: float | np.ndarray, igm: str = "madau1995"
) -> tuple[np.ndarray, np.ndarray]:
    """DECam ``g-r`` and ``r-z`` AB colours of a template (tabulated, bilinear interpolation).

    Parameters
    ----------
    template : str
        Key of :data:`SF_TEMPLATE_FILES`.
    redshift : float or array_like
        Source redshift(s), within ``[0, Z_MAX]``.
    ebv_mag : float or array_like
        Stellar E(B-V), mag, within ``[0, EBV_MAX]`` (broadcast against ``redshift``).
    igm : str
        Key of :data:`IGM_MODELS`.

    Returns
    -------
    g_minus_r, r_minus_z : np.ndarray
        float64 colours, mag, with the broadcast shape of the inputs.
    """
    if template not in SF_TEMPLATE_FILES:
        template_path(template)  # raises, naming the known templates
    if igm not in IGM_MODELS:
        raise ValueError(f"unknown IGM model {igm!r}; choose one of {sorted(IGM_MODELS)}")
    z, e = np.broadcast_arrays(
        np.asarray(redshift, dtype=np.float64), np.asarray(ebv_mag, dtype=np.float64)
    )
    if not np.all((z >= 0) & (z <= Z_MAX)):
        raise ValueError(f"redshift outside the colour table [0, {Z_MAX}]: {redshift!r}")
    if not np.all((e >= 0) & (e <= EBV_MAX)):
        raise ValueError(f"ebv_mag outside the colour table [0, {EBV_MAX}]: {ebv_mag!r}")
    gr_table, rz_table = _colour_grid(template, igm)
    points = np.stack([z.ravel(), e.ravel()], axis=-1)
    return _bilinear(gr_table, points).reshape(z.shape), _bilinear(rz_table, points).reshape(
        z.shape
    )


def _bilinear(table: RegularGridInterpolator, points: np.ndarray) -> np.ndarray:
    """``table(points)`` for in-range ``(n, 2)`` points, without the per-call checks.

    scipy's own 2-d linear kernel (the one ``RegularGridInterpolator.__call__`` runs for
    float64 tables), called directly: the call's input preparation costs ~30 us, several times
    the interpolation, and the points are already checked against the grid here. Falls back
    to the public call where scipy lacks the kernel; the values are the same either way
    (``tests/test_sed.py``).
    """
    if _RGI_KERNELS is None:
        return table(points)
    find_indices, evaluate_linear_2d = _RGI_KERNELS
    indices, distances = find_indices(table._grid, points.T)
    return evaluate_linear_2d(table._values, indices, distances, table._grid, np.empty(len(points)))


try:  # scipy >= 1.10: the kernels behind RegularGridInterpolator's linear 2-d fast path
    from scipy.interpolate._rgi_cython import evaluate_linear_2d as _eval2d
    from scipy.interpolate._rgi_cython import find_indices as _find_indices

    _RGI_KERNELS: tuple[Callable, Callable] | None = (_find_indices, _eval2d)
except ImportError:  # pragma: no cover - other scipy layouts use the public call
    _RGI_KERNELS = None
