"""Parameters of the synthetic sky's parents: what is drawn for each galaxy (no rendering).

A parent is a host (Sersic LRG), Poisson neighbours and stars, a hard-negative family
(:mod:`builder.parents.families`) and its observing conditions: per-band PSF FWHM, per-band
Moffat index ``psf_beta`` (drawn per object and band from ``input.synthetic.moffat_beta_range``,
so PSF wings vary as in a real survey) and per-band depth. Rendering is
:mod:`builder.parents.synthetic`.

Galaxy ``i`` of seed ``s`` depends only on ``np.random.SeedSequence([s, i])``: spawn keys 0 and 1
are the parameters and the noise, :data:`~builder.parents.families.registry.FAMILY_STREAM` (2)
the family, :data:`PSF_STREAM` (3) the Moffat indices, so adding a stream never shifts the
others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from builder.parents.config import SynthConfig
from builder.parents.families import FEATURE_KINDS, Feature, HostContext, draw_family
from builder.photometry import band_fluxes_nmgy, mag_to_nmgy
from builder.psfmodel import DEFAULT_MOFFAT_BETA
from shards.schema import BANDS, CATALOG_FIELDS, PIXEL_SCALE_ARCSEC

CENTER_PIX: tuple[float, float] = (31.5, 31.5)
"""0-based (x, y) pixel of the stamp centre on which hosts are placed."""
COMPONENT_KINDS: tuple[str, ...] = ("host", "neighbour", "star", *FEATURE_KINDS)
PSF_STREAM = 3
"""Spawn key of the Moffat-index draw under ``SeedSequence([seed, index])``."""
_NEIGHBOUR_SERSIC_N = {"E": 4.0, "Scd": 1.0}
_STAR_RZ_SLOPE, _STAR_RZ_ZERO = 0.75, -0.05  # r - z = 0.75 (g - r) - 0.05 (stellar locus)


@dataclass(frozen=True)
class SynthComponent:
    """One light source in a synthetic stamp.

    Attributes
    ----------
    kind : str
        ``"host"``, ``"neighbour"`` or ``"star"``.
    dx_arcsec, dy_arcsec : float
        Offset of its centre from :data:`CENTER_PIX` (+x = columns, +y = rows), arcsec.
    flux_nmgy : tuple of float
        Total g, r, z flux, nanomaggies.
    hlr_arcsec : float
        Half-light radius, arcsec (0 for a star).
    sersic_n : float
        Sersic index (ignored for stars).
    axis_ratio : float
        Minor/major axis ratio.
    position_angle_rad : float
        Major-axis angle, radians (GalSim convention, from +x towards +y).
    """

    kind: str
    dx_arcsec: float
    dy_arcsec: float
    flux_nmgy: tuple[float, float, float]
    hlr_arcsec: float = 0.0
    sersic_n: float = 4.0
    axis_ratio: float = 1.0
    position_angle_rad: float = 0.0


@dataclass(frozen=True)
class SynthParams:
    """Everything drawn for one synthetic parent (the truth behind its stamp).

    Attributes
    ----------
    galaxy_id : str
        ``synth-{seed}-{index:08d}``.
    seed, index : int
        Origin of the draw.
    ra, dec : float
        Position, degrees.
    redshift : float
        Host redshift.
    mag_r : float
        Host total DECam r AB magnitude.
    psfsize_arcsec : tuple of float
        g, r, z Moffat FWHM, arcsec.
    psfdepth : tuple of float
        g, r, z point-source inverse variance, 1/nmgy^2.
    components : tuple of SynthComponent
        The host first, then neighbours, then stars.
    family : str
        Hard-negative family of the parent (:mod:`builder.parents.families`).
    features : tuple of Feature
        The family's extra light sources (companions, rings, arms, tails ...).
    psf_beta : tuple of float
        g, r, z Moffat index of the PSF (host, neighbours, stars and any injected arc share it).
    """

    galaxy_id: str
    seed: int
    index: int
    ra: float
    dec: float
    redshift: float
    mag_r: float
    psfsize_arcsec: tuple[float, float, float]
    psfdepth: tuple[float, float, float]
    components: tuple[SynthComponent, ...]
    family: str = "lrg"
    features: tuple[Feature, ...] = ()
    psf_beta: tuple[float, float, float] = (DEFAULT_MOFFAT_BETA,) * 3

    def catalog(self) -> dict[str, float]:
        """The parent's catalog values (``shards.schema.CATALOG_FIELDS``)."""
        values = {"ra": self.ra, "dec": self.dec}
        for i, b in enumerate(BANDS):
            values[f"psfsize_{b}"] = self.psfsize_arcsec[i]
            values[f"psfdepth_{b}"] = self.psfdepth[i]
        return {name: float(values[name]) for name in CATALOG_FIELDS}


def _seed_sequences(seed: int, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0 (got {seed}, {index})")
    params_ss, noise_ss = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return params_ss, noise_ss


def _uniform(rng: np.random.Generator, pair: Sequence[float]) -> float:
    return float(rng.uniform(pair[0], pair[1]))


def _log_uniform(rng: np.random.Generator, pair: Sequence[float]) -> float:
    return float(math.exp(rng.uniform(math.log(pair[0]), math.log(pair[1]))))


def _offset_in_annulus(rng: np.random.Generator, pair: Sequence[float]) -> tuple[float, float]:
    """Uniform-in-area position between radii ``pair`` (arcsec) around the centre."""
    r = math.sqrt(rng.uniform(pair[0] ** 2, pair[1] ** 2))
    theta = rng.uniform(0.0, 2.0 * math.pi)
    return r * math.cos(theta), r * math.sin(theta)


def _flux_tuple(fluxes: np.ndarray) -> tuple[float, float, float]:
    return (float(fluxes[0]), float(fluxes[1]), float(fluxes[2]))


def draw_params(seed: int, index: int, cfg: SynthConfig) -> SynthParams:
    """Draw the parameters of synthetic parent ``index`` of ``seed`` (no rendering).

    Parameters
    ----------
    seed, index : int
        Non-negative; the draw depends only on ``SeedSequence([seed, index])``.
    cfg : SynthConfig
        Distributions of every quantity.
    """
    params_ss, _ = _seed_sequences(seed, index)
    rng = np.random.default_rng(params_ss)

    mag_r = _uniform(rng, cfg.mag_r_range)
    z = _uniform(rng, cfg.redshift_range)
    jx, jy = rng.uniform(-cfg.center_jitter_pix, cfg.center_jitter_pix, size=2)
    host = SynthComponent(
        kind="host",
        dx_arcsec=float(jx) * PIXEL_SCALE_ARCSEC,
        dy_arcsec=float(jy) * PIXEL_SCALE_ARCSEC,
        flux_nmgy=_flux_tuple(band_fluxes_nmgy("E", z, mag_r)),
        hlr_arcsec=_log_uniform(rng, cfg.hlr_arcsec_range),
        sersic_n=cfg.sersic_n,
        axis_ratio=_uniform(rng, cfg.axis_ratio_range),
        position_angle_rad=float(rng.uniform(0.0, math.pi)),
    )

    fwhm_r = _uniform(rng, cfg.psfsize_r_range)
    ratio_g, ratio_z = np.exp(rng.normal(0.0, cfg.psfsize_ratio_scatter, size=2))
    psfsize = (
        fwhm_r * cfg.psfsize_ratio_g * float(ratio_g),
        fwhm_r,
        fwhm_r * cfg.psfsize_ratio_z * float(ratio_z),
    )
    depth5 = [_uniform(rng, getattr(cfg, f"depth5_{b}_mag")) for b in BANDS]
    psfdepth = tuple(float((5.0 / mag_to_nmgy(m)) ** 2) for m in depth5)

    neighbours = []
    for _ in range(int(rng.poisson(cfg.neighbour_mean))):
        sed = "E" if rng.uniform() < cfg.neighbour_red_fraction else "Scd"
        m = _uniform(rng, cfg.neighbour_mag_r_range)
        zn = _uniform(rng, cfg.neighbour_redshift_range)
        dx, dy = _offset_in_annulus(rng, cfg.neighbour_sep_arcsec_range)
        neighbours.append(
            SynthComponent(
                kind="neighbour",
                dx_arcsec=dx,
                dy_arcsec=dy,
                flux_nmgy=_flux_tuple(band_fluxes_nmgy(sed, zn, m)),
                hlr_arcsec=_log_uniform(rng, cfg.neighbour_hlr_arcsec_range),
                sersic_n=_NEIGHBOUR_SERSIC_N[sed],
                axis_ratio=_uniform(rng, (0.3, 1.0)),
                position_angle_rad=float(rng.uniform(0.0, math.pi)),
            )
        )
    stars = []
    for _ in range(int(rng.poisson(cfg.star_mean))):
        m = _uniform(rng, cfg.star_mag_r_range)
        gr = _uniform(rng, cfg.star_g_minus_r_range)
        rz = _STAR_RZ_SLOPE * gr + _STAR_RZ_ZERO
        dx, dy = _offset_in_annulus(rng, cfg.star_sep_arcsec_range)
        flux = mag_to_nmgy(np.array([m + gr, m, m - rz]))
        stars.append(
            SynthComponent(kind="star", dx_arcsec=dx, dy_arcsec=dy, flux_nmgy=_flux_tuple(flux))
        )

    ra_lo, ra_hi, dec_lo, dec_hi = cfg.footprint_deg()  # ra/dec ranges, or a dense footprint
    ra = _uniform(rng, (ra_lo, ra_hi)) % 360.0
    sin_lo, sin_hi = (math.sin(math.radians(d)) for d in (dec_lo, dec_hi))
    dec = math.degrees(math.asin(rng.uniform(sin_lo, sin_hi)))
    return SynthParams(
        galaxy_id=f"synth-{seed}-{index:08d}",
        seed=int(seed),
        index=int(index),
        ra=ra,
        dec=dec,
        redshift=z,
        mag_r=mag_r,
        psfsize_arcsec=psfsize,  # type: ignore[arg-type]
        psfdepth=psfdepth,  # type: ignore[arg-type]
        components=(host, *neighbours, *stars),
        psf_beta=draw_psf_beta(seed, index, cfg.moffat_beta_range),
        **_family_fields(seed, index, host, z, mag_r, cfg),
    )


def draw_psf_beta(seed: int, index: int, beta_range: Sequence[float]) -> tuple[float, float, float]:
    """g, r, z Moffat indices of parent ``index`` of ``seed``: uniform in ``beta_range``.

    Drawn independently per band from the parent's own stream (:data:`PSF_STREAM`), so the
    other draws of the parent do not depend on the range.
    """
    ss = np.random.SeedSequence([int(seed), int(index)], spawn_key=(PSF_STREAM,))
    lo, hi = float(beta_range[0]), float(beta_range[1])
    betas = np.random.default_rng(ss).uniform(lo, hi, size=len(BANDS))
    return (float(betas[0]), float(betas[1]), float(betas[2]))


def _family_fields(
    seed: int, index: int, host: SynthComponent, z: float, mag_r: float, cfg: SynthConfig
) -> dict:
    """The parent's family and features (own random stream: other draws are unaffected)."""
    ctx = HostContext(
        host.dx_arcsec,
        host.dy_arcsec,
        host.hlr_arcsec,
        host.axis_ratio,
        host.position_angle_rad,
        z,
        mag_r,
        host.flux_nmgy,
    )
    family, features = draw_family(seed, index, ctx, cfg.families)
    return {"family": family, "features": features}
