"""The built-in synthetic DR10-like sky: GalSim-rendered LRG hosts with neighbours and stars.

Every parent is a 64 x 64 g, r, z stamp (0.262"/pixel, nanomaggies):

* host: Sersic (n = 4 by default) LRG, total r magnitude and redshift drawn from the config,
  colours from the CWW elliptical template (:func:`builder.photometry.band_fluxes_nmgy`),
  centred at (31.5, 31.5) (0-based x, y: the corner shared by the four central pixels, where
  the Legacy Survey cutout service puts the requested position of an even-sized cutout, and
  where the injected lens is centred) within a small jitter (catalog astrometry);
* neighbours (Poisson) and stars (Poisson) away from the centre;
* per-band Moffat PSF (index ``psf.moffat_beta``) with FWHM = ``psfsize_<b>`` (g a bit broader, z a bit sharper, correlated);
* Gaussian sky noise with ``sigma_pix = sigma_pix_from_psfdepth(psfdepth_<b>, NEA)``, so the
  point-source inverse variance of the stamp really is ``psfdepth_<b>``, plus the sources'
  Poisson noise at ``gain_e_per_nmgy``.

Galaxy ``i`` of seed ``s`` depends only on ``np.random.SeedSequence([s, i])`` (reproducible and
parallelisable); its id is ``synth-{s}-{i:08d}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np

from builder.executors import SubmitExecutor, submit_ordered
from builder.parents.base import ParentRecord
from builder.parents.config import SynthConfig
from builder.parents.families import FEATURE_KINDS, Feature, HostContext, draw_family
from builder.parents.families import feature_profile as _feature_profile
from builder.parents.parquet_writer import write_parents_parquet
from builder.photometry import (
    band_fluxes_nmgy,
    mag_to_nmgy,
    moffat_nea_pix,
    sigma_pix_from_psfdepth,
)
from builder.psfmodel import DEFAULT_MOFFAT_BETA
from shards.schema import BANDS, CATALOG_FIELDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX

CENTER_PIX: tuple[float, float] = (31.5, 31.5)
"""0-based (x, y) pixel of the stamp centre on which hosts are placed."""
COMPONENT_KINDS: tuple[str, ...] = ("host", "neighbour", "star", *FEATURE_KINDS)
_NEIGHBOUR_SERSIC_N = {"E": 4.0, "Scd": 1.0}
_STAR_RZ_SLOPE, _STAR_RZ_ZERO = 0.75, -0.05  # r - z = 0.75 (g - r) - 0.05 (stellar locus)
# GalSim places a profile at the image's true centre (x, y) = (32.5, 32.5) 1-based, i.e.
# 31.5 0-based; this offset (pixels) moves it to CENTER_PIX.
_DRAW_OFFSET = (CENTER_PIX[0] - (STAMP_SIZE_PIX - 1) / 2, CENTER_PIX[1] - (STAMP_SIZE_PIX - 1) / 2)


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
        **_family_fields(seed, index, host, z, mag_r, cfg),
    )


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


def _unit_profile(
    c: SynthComponent, cfg: SynthConfig, gsparams: galsim.GSParams
) -> galsim.GSObject:
    """The component's light profile with unit flux, placed at its offset."""
    if isinstance(c, Feature):
        return _feature_profile(c, gsparams, cfg.sersic_trunc_hlr)
    if c.kind == "star":
        obj: galsim.GSObject = galsim.DeltaFunction(flux=1.0, gsparams=gsparams)
    else:
        trunc = cfg.sersic_trunc_hlr * c.hlr_arcsec
        obj = galsim.Sersic(
            n=c.sersic_n, half_light_radius=c.hlr_arcsec, trunc=trunc, flux=1.0, gsparams=gsparams
        )
        if c.axis_ratio < 1.0:
            obj = obj.shear(q=c.axis_ratio, beta=c.position_angle_rad * galsim.radians)
    return obj.shift(c.dx_arcsec, c.dy_arcsec)


def render_stamp(
    params: SynthParams,
    cfg: SynthConfig,
    *,
    noise_rng: np.random.Generator | None = None,
    kinds: Sequence[str] = COMPONENT_KINDS,
    moffat_beta: float = DEFAULT_MOFFAT_BETA,
) -> np.ndarray:
    """Render a synthetic stamp.

    Parameters
    ----------
    params : SynthParams
        What to draw (:func:`draw_params`).
    cfg : SynthConfig
        Provides the truncation, gain and GalSim accuracy.
    noise_rng : numpy Generator, optional
        If given, add Gaussian sky noise of per-pixel sigma ``sigma_pix_from_psfdepth(psfdepth_b,
        moffat_nea_pix(psfsize_b))`` per band, correlated like a resampled coadd
        (:func:`builder.inject.skynoise.synthetic_sky_noise`), plus the sources' white Poisson
        noise (variance = model / gain); if None the stamp is noiseless.
    kinds : sequence of str
        Which components to draw (subset of :data:`COMPONENT_KINDS`).
    moffat_beta : float
        Moffat index of every band's PSF (``psf.moffat_beta``).

    Returns
    -------
    ndarray
        float32 (3, 64, 64) g, r, z image, nanomaggies per pixel.
    """
    unknown = set(kinds) - set(COMPONENT_KINDS)
    if unknown:
        raise ValueError(f"unknown component kinds {sorted(unknown)}; valid: {COMPONENT_KINDS}")
    gsparams = galsim.GSParams(folding_threshold=cfg.folding_threshold)
    comps = [c for c in (*params.components, *params.features) if c.kind in kinds]
    shapes = [_unit_profile(c, cfg, gsparams) for c in comps]
    model = np.zeros((len(BANDS), STAMP_SIZE_PIX, STAMP_SIZE_PIX), dtype=np.float64)
    for b in range(len(BANDS)):
        if not comps:
            break
        psf = galsim.Moffat(beta=moffat_beta, fwhm=params.psfsize_arcsec[b], gsparams=gsparams)
        scene = galsim.Add([s * c.flux_nmgy[b] for s, c in zip(shapes, comps, strict=True)])
        image = galsim.ImageD(STAMP_SIZE_PIX, STAMP_SIZE_PIX, scale=PIXEL_SCALE_ARCSEC)
        galsim.Convolve(scene, psf).drawImage(image=image, offset=_DRAW_OFFSET)
        model[b] = image.array
    if noise_rng is not None:
        # sky noise correlated as in a coadd of 3 Lanczos-resampled exposures (per-pixel sigma
        # still from psfdepth), plus white source shot noise: builder.inject.skynoise
        from builder.inject.skynoise import synthetic_sky_noise

        sigmas = [
            float(sigma_pix_from_psfdepth(params.psfdepth[b], moffat_nea_pix(fwhm, moffat_beta)))
            for b, fwhm in enumerate(params.psfsize_arcsec)
        ]
        model += synthetic_sky_noise(model, sigmas, cfg.gain_e_per_nmgy, noise_rng)
    return model.astype(np.float32)


def make_parent(
    seed: int, index: int, cfg: SynthConfig, moffat_beta: float = DEFAULT_MOFFAT_BETA
) -> ParentRecord:
    """Synthetic parent ``index`` of ``seed``: drawn parameters, rendered with noise.

    Returns
    -------
    ParentRecord
        ``location`` is ``synthetic:seed={seed}:i={index}``; ``chunk`` 0 and ``row`` = index.
    """
    params = draw_params(seed, index, cfg)
    _, noise_ss = _seed_sequences(seed, index)
    stamp = render_stamp(
        params, cfg, noise_rng=np.random.default_rng(noise_ss), moffat_beta=moffat_beta
    )
    return ParentRecord(
        galaxy_id=params.galaxy_id,
        stamp_nmgy=stamp,
        catalog=params.catalog(),
        location=f"synthetic:seed={seed}:i={index}",
        chunk=0,
        row=int(index),
        meta={"family": params.family},
    )


def iter_synthetic_parents(
    n: int,
    seed: int,
    cfg: SynthConfig | None = None,
    start: int = 0,
    moffat_beta: float = DEFAULT_MOFFAT_BETA,
) -> Iterator[ParentRecord]:
    """Yield synthetic parents ``start`` ... ``start + n - 1`` of ``seed``.

    Parameters
    ----------
    n : int
        Number of parents (>= 0).
    seed : int
        Non-negative seed; parent ``i`` depends only on ``(seed, i)``.
    cfg : SynthConfig, optional
        Synthetic-sky knobs (validated once, when the config is loaded); default
        ``SynthConfig()``.
    start : int
        Index of the first parent (to split the work between processes).
    moffat_beta : float
        Moffat index of the PSF (``psf.moffat_beta``).
    """
    cfg = cfg if cfg is not None else SynthConfig()
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0 (got {n}, {start})")
    for i in range(start, start + n):
        yield make_parent(seed, i, cfg, moffat_beta)


def _render_block(
    seed: int, cfg: SynthConfig, start: int, n: int, moffat_beta: float
) -> list[ParentRecord]:
    return list(iter_synthetic_parents(n, seed, cfg, start=start, moffat_beta=moffat_beta))


_META_COLUMNS = {"family": lambda rec: rec.meta.get("family")}
"""Parent metadata written as extra Parquet columns (read back into ``ParentRecord.meta``)."""


def write_synthetic_parquet(
    path: str | Path,
    n: int,
    seed: int,
    cfg: SynthConfig | None = None,
    row_group_size: int = 1000,
    executor: SubmitExecutor | None = None,
    moffat_beta: float = DEFAULT_MOFFAT_BETA,
    window: int = 4,
    progress: bool = False,
) -> Path:
    """Render ``n`` synthetic parents into a Parquet file in the seed layout.

    ``progress`` shows a tqdm bar of rendered galaxies (on stderr).

    Written through :func:`builder.parents.parquet_writer.write_parents_parquet` (streaming,
    atomic); read it back with :class:`builder.parents.parquet.ParquetSource`. With an
    ``executor`` (:mod:`builder.executors`) row groups are rendered as separate calls and written
    in order, at most ``window`` row groups outstanding: the file is byte-identical to an
    in-process render (parent ``i`` depends only on ``(seed, i)``).

    Returns
    -------
    Path
        ``path``.
    """
    from tqdm import tqdm

    cfg = cfg if cfg is not None else SynthConfig()
    if executor is None:
        records = iter_synthetic_parents(n, seed, cfg, moffat_beta=moffat_beta)
    else:
        blocks = (
            (seed, cfg, a, min(row_group_size, n - a), moffat_beta)
            for a in range(0, n, row_group_size)
        )
        results = submit_ordered(executor, _render_block, blocks, window=window)
        records = (r for block in results for r in block)
    bar = tqdm(records, total=n, desc="render", unit="galaxy", disable=not progress)
    return write_parents_parquet(path, bar, row_group_size, _META_COLUMNS)
