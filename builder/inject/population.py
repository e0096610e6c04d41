"""Lens population tied to the host: velocity dispersion, redshifts and the SIE Einstein radius.

A draw for one host (:func:`draw_lens`) goes

1. **host redshift** ``z_lens``: a catalogue value (``z``, else ``z_phot``) when the host has one;
   otherwise the redshift at which an LRG of absolute magnitude ``M_r ~ N(lrg_abs_mag_r,
   lrg_abs_mag_r_sigma)`` has the host's apparent r magnitude, ``m_r = M_r + DM(z) + K_E(z)``
   (distance modulus of the cosmology, K-correction of the CWW elliptical template through the
   DECam r curve, the same template and filter as :mod:`builder.photometry`);
2. **absolute magnitude** ``M_r = m_r - DM(z_lens) - K_E(z_lens)``;
3. **velocity dispersion** ``sigma_v``: a catalogue ``sigma_v`` (km/s) when present, otherwise the
   Faber-Jackson relation ``sigma_v = fj_sigma_ref_kms * 10^(-0.4 (M_r - fj_abs_mag_ref) / fj_slope)``
   (``L ~ sigma^fj_slope``; Faber & Jackson 1976, slope ~4 as in Bernardi et al. 2003) with a
   lognormal scatter of ``fj_scatter_dex`` (Bernardi et al. 2003 measure ~0.07-0.08 dex);
4. **source redshift** ``z_source`` from ``n(z) ~ z^a exp(-(z/z0)^b)`` (Smail et al. 1994 form)
   on ``source_z_range``, conditioned on ``z_source > z_lens + source_min_dz`` (sources behind the
   lens only);
5. **Einstein radius** of the SIE, ``theta_E = 4 pi (sigma_v/c)^2 D_ls / D_s`` (angular-diameter
   distances of the named cosmology; Kormann, Schneider & Bartelmann 1994). With ``sigma_v`` the
   velocity dispersion this is the SIS-equivalent radius, used as lenstronomy's product-average
   ``theta_E`` (:mod:`builder.inject.lensing`).

Every draw makes the same sequence of generator calls (two normals, then one uniform) whatever
the catalogue holds, so a seed reproduces it. Distances come from a comoving-distance table of the
cosmology (:mod:`builder.inject.cosmology`); ``tests/test_population.py`` checks them against
``astropy.cosmology`` directly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import galsim
import numpy as np
import speclite.filters

from builder.inject.cosmology import (
    COSMOLOGIES,
    DEFAULT_COSMOLOGY,
    Z_TABLE_MAX,
    distance_table,
    sie_theta_e_arcsec,
)
from builder.photometry import SED_FILES
from common.configio import check, check_between, check_range

#: Catalogue keys read by :func:`host_values_from_catalog`, in order of preference.
REDSHIFT_KEYS: tuple[str, ...] = ("z", "z_phot")
SIGMA_V_KEY = "sigma_v"


@dataclass(frozen=True)
class PopulationConfig:
    """Priors of the lens population (see the module docstring for the chain of draws).

    Attributes
    ----------
    cosmology : str
        Name in :data:`COSMOLOGIES` (astropy realizations ``Planck18``, ``WMAP9``, ... or
        ``FlatLambdaCDM_H70_Om0.3``). Default ``Planck18``.
    fj_sigma_ref_kms : float
        Faber-Jackson velocity dispersion at ``fj_abs_mag_ref``, km/s. Default 200.
    fj_abs_mag_ref : float
        Reference rest-frame DECam r absolute magnitude (AB). Default -21.5, so an ``M_r = -22.5``
        LRG has ~250 km/s, as SLACS lenses (Bolton et al. 2008; Auger et al. 2010).
    fj_slope : float
        Exponent of ``L ~ sigma^fj_slope``. Default 4.
    fj_scatter_dex : float
        Lognormal scatter of ``sigma_v`` at fixed luminosity, dex. Default 0.07.
    lrg_abs_mag_r, lrg_abs_mag_r_sigma : float
        Gaussian absolute-magnitude distribution assumed when a host's redshift is drawn from its
        magnitude. Defaults -22.0 and 0.4 (DR10/BOSS-like LRGs span about -21 to -23).
    lens_z_range : tuple[float, float]
        Host redshifts are clipped into this range (catalogue values included). Default
        ``(0.05, 1.5)``.
    source_z_range : tuple[float, float]
        Support of the source-redshift distribution. Default ``(0.5, 4.0)``.
    source_z_alpha, source_z_beta, source_z0 : float
        ``n(z) ~ z^alpha exp(-(z/z0)^beta)``; defaults 2, 1.5, 1.2 (median ~1.7, as lensed
        sources in SL2S/BELLS-like samples and LensPop's mock sky, Collett 2015).
    source_min_dz : float
        Sources are drawn at ``z > z_lens + source_min_dz``. Default 0.1.
    """

    cosmology: str = DEFAULT_COSMOLOGY
    fj_sigma_ref_kms: float = 200.0
    fj_abs_mag_ref: float = -21.5
    fj_slope: float = 4.0
    fj_scatter_dex: float = 0.07
    lrg_abs_mag_r: float = -22.0
    lrg_abs_mag_r_sigma: float = 0.4
    lens_z_range: tuple[float, float] = (0.05, 1.5)
    source_z_range: tuple[float, float] = (0.5, 4.0)
    source_z_alpha: float = 2.0
    source_z_beta: float = 1.5
    source_z0: float = 1.2
    source_min_dz: float = 0.1

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the dotted key of a bad value."""
        p = f"{prefix}." if prefix else ""
        check(
            self.cosmology in COSMOLOGIES,
            f"{p}cosmology",
            f"unknown cosmology {self.cosmology!r} (known: {', '.join(sorted(COSMOLOGIES))})",
        )
        check_between(self.fj_sigma_ref_kms, f"{p}fj_sigma_ref_kms", 50.0, 500.0)
        check_between(self.fj_abs_mag_ref, f"{p}fj_abs_mag_ref", -26.0, -16.0)
        check_between(self.fj_slope, f"{p}fj_slope", 1.0, 10.0)
        check_between(self.fj_scatter_dex, f"{p}fj_scatter_dex", 0.0, 0.5)
        check_between(self.lrg_abs_mag_r, f"{p}lrg_abs_mag_r", -26.0, -16.0)
        check_between(self.lrg_abs_mag_r_sigma, f"{p}lrg_abs_mag_r_sigma", 0.0, 2.0)
        check_range(self.lens_z_range, f"{p}lens_z_range", lo=1e-3, hi=3.0)
        check_range(self.source_z_range, f"{p}source_z_range", lo=1e-3, hi=Z_TABLE_MAX)
        check_between(self.source_z_alpha, f"{p}source_z_alpha", 0.0, 10.0)
        check_between(self.source_z_beta, f"{p}source_z_beta", 0.1, 10.0)
        check_between(self.source_z0, f"{p}source_z0", 0.05, 10.0)
        check_between(self.source_min_dz, f"{p}source_min_dz", 0.0, 2.0)
        check(
            self.lens_z_range[1] + self.source_min_dz < self.source_z_range[1],
            f"{p}source_z_range",
            f"high ({self.source_z_range[1]}) must exceed lens_z_range high + source_min_dz "
            f"({self.lens_z_range[1] + self.source_min_dz}) so every lens has sources behind it",
        )


@dataclass(frozen=True)
class LensDraw:
    """The drawn lens-population quantities of one host (recorded in the sample metadata).

    Attributes
    ----------
    sigma_v_kms : float
        SIE velocity dispersion, km/s.
    z_lens, z_source : float
        Lens (host) and source redshifts, ``z_source > z_lens``.
    theta_e_arcsec : float
        SIE Einstein radius, arcsec.
    abs_mag_r : float
        Host rest-frame r absolute magnitude (AB) used by the Faber-Jackson relation.
    z_lens_from, sigma_v_from : str
        Provenance: ``"z"``/``"z_phot"``/``"magnitude"``, ``"catalog"``/``"faber_jackson"``.
    """

    sigma_v_kms: float
    z_lens: float
    z_source: float
    theta_e_arcsec: float
    abs_mag_r: float
    z_lens_from: str
    sigma_v_from: str

    def as_params(self) -> dict[str, Any]:
        """Flat JSON-serialisable dict for a sample's metadata."""
        return {
            "sigma_v_kms": self.sigma_v_kms,
            "z_lens": self.z_lens,
            "z_source": self.z_source,
            "theta_e_arcsec": self.theta_e_arcsec,
            "host_abs_mag_r": self.abs_mag_r,
            "z_lens_from": self.z_lens_from,
            "sigma_v_from": self.sigma_v_from,
        }


# --------------------------------------------------------------------------- host luminosity


@functools.cache
def _k_correction_table() -> tuple[np.ndarray, np.ndarray]:
    """K-correction (mag) of the CWW E template in DECam r on a redshift grid 0..3."""
    sed = np.loadtxt(Path(galsim.meta_data.share_dir) / "SEDs" / SED_FILES["E"], comments="#")
    rest_wl_aa, rest_flam = sed[:, 0], sed[:, 1]
    wl = np.arange(3300.0, 11002.0, 2.0)
    z = np.round(np.arange(0.0, 3.0 + 5e-4, 0.01), 10)
    opz = 1.0 + z[:, None]
    # observed F_lambda of the source at z (up to 1/(4 pi D_L^2)), and the rest-frame spectrum
    obs = np.interp(wl[None, :] / opz, rest_wl_aa, rest_flam) / opz
    rest = np.interp(wl, rest_wl_aa, rest_flam)[None, :]
    band = speclite.filters.load_filters("decam2014-r")
    m_obs = np.asarray(band.get_ab_magnitudes(obs, wl)["decam2014-r"], dtype=np.float64)
    m_rest = float(np.asarray(band.get_ab_magnitudes(rest, wl)["decam2014-r"])[0])
    return z, m_obs - m_rest


def k_correction_e_r_mag(z: Any) -> np.ndarray:
    """K-correction of an elliptical (CWW E template) in DECam r, ``m - M - DM``, mag.

    ``K(z) = m_AB[f_obs] - m_AB[f_rest]`` with ``f_obs(lambda) = f_rest(lambda/(1+z))/(1+z)``
    (Hogg et al. 2002, same-band K-correction); ``K(0) = 0``. Valid for ``0 <= z <= 3``.
    """
    zg, k = _k_correction_table()
    z = np.asarray(z, dtype=np.float64)
    if np.any((z < 0) | (z > zg[-1])):
        raise ValueError(f"K-correction table covers 0 <= z <= {zg[-1]:g}")
    return np.interp(z, zg, k)


def absolute_mag_r(mag_r: Any, z_lens: Any, cosmology: str = DEFAULT_COSMOLOGY) -> np.ndarray:
    """Rest-frame r absolute magnitude of an elliptical, ``M = m - DM(z) - K_E(z)``."""
    table = distance_table(cosmology)
    return np.asarray(mag_r, dtype=np.float64) - (
        table.distance_modulus_mag(z_lens) + k_correction_e_r_mag(z_lens)
    )


def redshift_for_magnitude(
    mag_r: float, abs_mag_r: float, z_range: tuple[float, float], cosmology: str
) -> float:
    """Redshift where an elliptical of absolute magnitude ``abs_mag_r`` appears at ``mag_r``.

    ``DM(z) + K_E(z)`` increases monotonically over ``z_range``; the root is found on a 0.001
    grid by linear interpolation and clipped to ``z_range``. The grid and the curve are computed
    once per ``(z_range, cosmology)`` (:func:`_magnitude_curve`).
    """
    z, curve = _magnitude_curve(float(z_range[0]), float(z_range[1]), cosmology)
    target = float(mag_r) - float(abs_mag_r)
    return float(np.interp(target, curve, z))  # np.interp clips outside the curve's range


@functools.lru_cache(maxsize=8)
def _magnitude_curve(z_lo: float, z_hi: float, cosmology: str) -> tuple[np.ndarray, np.ndarray]:
    """``(z, DM(z) + K_E(z))`` on the 0.001 grid of :func:`redshift_for_magnitude` (read-only)."""
    z = np.arange(z_lo, z_hi + 5e-4, 1e-3)
    curve = distance_table(cosmology).distance_modulus_mag(z) + k_correction_e_r_mag(z)
    z.setflags(write=False)
    curve.setflags(write=False)
    return z, curve


def faber_jackson_sigma_kms(abs_mag_r: Any, cfg: PopulationConfig) -> np.ndarray:
    """Mean Faber-Jackson velocity dispersion for an r absolute magnitude, km/s."""
    dm = np.asarray(abs_mag_r, dtype=np.float64) - cfg.fj_abs_mag_ref
    return cfg.fj_sigma_ref_kms * 10.0 ** (-0.4 * dm / cfg.fj_slope)


# --------------------------------------------------------------------------- source redshifts


@functools.lru_cache(maxsize=8)
def _source_z_cdf(
    z_range: tuple[float, float], alpha: float, beta: float, z0: float
) -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(z_range[0], z_range[1], 4001)
    pdf = z**alpha * np.exp(-((z / z0) ** beta))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(z))])
    return z, cdf / cdf[-1]


def source_redshift_from_uniform(u01: float, z_min: float, cfg: PopulationConfig) -> float:
    """Inverse-CDF draw of the source-redshift distribution restricted to ``z > z_min``.

    Parameters
    ----------
    u01 : float
        A uniform variate in [0, 1).
    z_min : float
        Lower bound (the lens redshift plus ``cfg.source_min_dz``).
    cfg : PopulationConfig
        Distribution parameters.
    """
    z, cdf = _source_z_cdf(
        tuple(cfg.source_z_range), cfg.source_z_alpha, cfg.source_z_beta, cfg.source_z0
    )
    c_lo = float(np.interp(max(z_min, z[0]), z, cdf))
    if c_lo >= 1.0:
        raise ValueError(f"no source redshift above {z_min} in {cfg.source_z_range}")
    return float(np.interp(c_lo + float(u01) * (1.0 - c_lo), cdf, z))


# --------------------------------------------------------------------------- one draw


def host_values_from_catalog(catalog: Mapping[str, Any]) -> dict[str, Any]:
    """Catalogue redshift and velocity dispersion of a host, when present and usable.

    Returns
    -------
    dict
        ``{"z_lens": float | None, "z_lens_from": str | None, "sigma_v_kms": float | None}``;
        a key is used only when its value is a finite positive number.
    """

    def usable(key: str) -> float | None:
        v = catalog.get(key)
        try:
            f = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) and f > 0 else None

    out: dict[str, Any] = {"z_lens": None, "z_lens_from": None, "sigma_v_kms": usable(SIGMA_V_KEY)}
    for key in REDSHIFT_KEYS:
        z = usable(key)
        if z is not None:
            out["z_lens"], out["z_lens_from"] = z, key
            break
    return out


def draw_lens(
    host_mag_r: float,
    rng: np.random.Generator,
    cfg: PopulationConfig,
    catalog: Mapping[str, Any] | None = None,
) -> LensDraw:
    """Draw the lens population quantities of one host.

    Parameters
    ----------
    host_mag_r : float
        The host's apparent DECam r magnitude (AB, total).
    rng : np.random.Generator
        Source of all randomness (two normals then one uniform, always).
    cfg : PopulationConfig
        The priors.
    catalog : Mapping or None
        The host's catalogue row; ``z``/``z_phot`` and ``sigma_v`` (km/s) are used when present.

    Returns
    -------
    LensDraw
        ``sigma_v_kms``, ``z_lens``, ``z_source``, ``theta_e_arcsec`` and their provenance.
    """
    m = float(host_mag_r)
    if not math.isfinite(m):
        raise ValueError(f"host_mag_r must be finite, got {host_mag_r!r}")
    n_abs, n_fj = rng.standard_normal(2)
    u_src = float(rng.uniform())
    known = host_values_from_catalog(catalog or {})
    lo, hi = cfg.lens_z_range
    if known["z_lens"] is not None:
        z_lens, z_from = min(max(known["z_lens"], lo), hi), known["z_lens_from"]
    else:
        abs_guess = cfg.lrg_abs_mag_r + cfg.lrg_abs_mag_r_sigma * float(n_abs)
        z_lens = redshift_for_magnitude(m, abs_guess, (lo, hi), cfg.cosmology)
        z_from = "magnitude"
    abs_mag = float(absolute_mag_r(m, z_lens, cfg.cosmology))
    if known["sigma_v_kms"] is not None:
        sigma, sigma_from = float(known["sigma_v_kms"]), "catalog"
    else:
        mean = float(faber_jackson_sigma_kms(abs_mag, cfg))
        sigma, sigma_from = mean * 10.0 ** (cfg.fj_scatter_dex * float(n_fj)), "faber_jackson"
    z_source = source_redshift_from_uniform(u_src, z_lens + cfg.source_min_dz, cfg)
    theta_e = float(sie_theta_e_arcsec(sigma, z_lens, z_source, cfg.cosmology))
    return LensDraw(
        sigma_v_kms=sigma,
        z_lens=float(z_lens),
        z_source=z_source,
        theta_e_arcsec=theta_e,
        abs_mag_r=abs_mag,
        z_lens_from=z_from,
        sigma_v_from=sigma_from,
    )
