"""The built-in synthetic DR10-like sky: GalSim-rendered LRG hosts with neighbours and stars.

Every parent is a 64 x 64 g, r, z stamp (0.262"/pixel, nanomaggies), drawn by
:func:`~builder.parents.synthetic_params.draw_params` and rendered here:

* host: Sersic (n = 4 by default) LRG, total r magnitude and redshift drawn from the config,
  colours from the CWW elliptical template (:func:`builder.photometry.band_fluxes_nmgy`),
  centred at (31.5, 31.5) (0-based x, y: the corner shared by the four central pixels, where
  the Legacy Survey cutout service puts the requested position of an even-sized cutout, and
  where the injected lens is centred) within a small jitter (catalog astrometry);
* neighbours (Poisson) and stars (Poisson) away from the centre;
* per-band Moffat PSF with FWHM = ``psfsize_<b>`` (g a bit broader, z a bit sharper, correlated)
  and index ``psf_beta_<b>`` drawn per object and band from ``input.synthetic.moffat_beta_range``
  (PSF wings that vary like a survey's); the parent carries the indices
  (:attr:`ParentRecord.psf_beta`, Parquet columns ``psf_beta_g/r/z``) so that an injected arc
  is convolved with the same PSF as its host;
* sky noise correlated as in a resampled coadd with per-pixel
  ``sigma_pix = sigma_pix_from_psfdepth(psfdepth_<b>, NEA)``, NEA that of the drawn PSF, so the
  point-source inverse variance of the stamp really is ``psfdepth_<b>``, plus the sources'
  Poisson noise at ``gain_e_per_nmgy``.

Galaxy ``i`` of seed ``s`` depends only on ``np.random.SeedSequence([s, i])`` (reproducible and
parallelisable); its id is ``synth-{s}-{i:08d}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import galsim
import numpy as np

from builder.executors import SubmitExecutor, submit_ordered
from builder.parents.base import ParentRecord
from builder.parents.config import SynthConfig
from builder.parents.families import Feature
from builder.parents.families import feature_profile as _feature_profile
from builder.parents.parquet_writer import write_parents_parquet
from builder.parents.synthetic_params import (
    CENTER_PIX,
    COMPONENT_KINDS,
    SynthComponent,
    SynthParams,
    _seed_sequences,
    draw_params,
    draw_psf_beta,
)
from builder.photometry import moffat_nea_direct, sigma_pix_from_psfdepth
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX

__all__ = [  # the parameter draws are re-exported: callers import them from here
    "CENTER_PIX",
    "COMPONENT_KINDS",
    "SynthComponent",
    "SynthParams",
    "draw_params",
    "draw_psf_beta",
    "iter_synthetic_parents",
    "make_parent",
    "render_stamp",
    "sky_sigma_pix",
    "write_synthetic_parquet",
]

# GalSim places a profile at the image's true centre (x, y) = (32.5, 32.5) 1-based, i.e.
# 31.5 0-based; this offset (pixels) moves it to CENTER_PIX.
_DRAW_OFFSET = (CENTER_PIX[0] - (STAMP_SIZE_PIX - 1) / 2, CENTER_PIX[1] - (STAMP_SIZE_PIX - 1) / 2)


def sky_sigma_pix(params: SynthParams) -> list[float]:
    """Per-band sky sigma (nmgy per pixel) that gives the stamp its ``psfdepth``.

    ``sigma_b = sigma_pix_from_psfdepth(psfdepth_b, NEA_b)`` with ``NEA_b = 1 / sum(P^2)`` of the
    band's pixel-integrated Moffat (FWHM ``psfsize_b``, index ``psf_beta_b``), drawn exactly by
    :func:`builder.photometry.moffat_nea_direct` (the index varies per object, so no table).
    """
    return [
        float(sigma_pix_from_psfdepth(depth, moffat_nea_direct(fwhm, beta)))
        for depth, fwhm, beta in zip(
            params.psfdepth, params.psfsize_arcsec, params.psf_beta, strict=True
        )
    ]


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
) -> np.ndarray:
    """Render a synthetic stamp.

    Parameters
    ----------
    params : SynthParams
        What to draw (:func:`draw_params`).
    cfg : SynthConfig
        Provides the truncation, gain and GalSim accuracy.
    noise_rng : numpy Generator, optional
        If given, add Gaussian sky noise of per-pixel sigma :func:`sky_sigma_pix` per band,
        correlated like a resampled coadd
        (:func:`builder.inject.skynoise.synthetic_sky_noise`), plus the sources' white Poisson
        noise (variance = model / gain); if None the stamp is noiseless.
    kinds : sequence of str
        Which components to draw (subset of :data:`COMPONENT_KINDS`).

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
        psf = galsim.Moffat(
            beta=params.psf_beta[b], fwhm=params.psfsize_arcsec[b], gsparams=gsparams
        )
        scene = galsim.Add([s * c.flux_nmgy[b] for s, c in zip(shapes, comps, strict=True)])
        image = galsim.ImageD(STAMP_SIZE_PIX, STAMP_SIZE_PIX, scale=PIXEL_SCALE_ARCSEC)
        galsim.Convolve(scene, psf).drawImage(image=image, offset=_DRAW_OFFSET)
        model[b] = image.array
    if noise_rng is not None:
        # sky noise correlated as in a coadd of 3 Lanczos-resampled exposures (per-pixel sigma
        # still from psfdepth), plus white source shot noise: builder.inject.skynoise
        from builder.inject.skynoise import synthetic_sky_noise

        model += synthetic_sky_noise(model, sky_sigma_pix(params), cfg.gain_e_per_nmgy, noise_rng)
    return model.astype(np.float32)


def make_parent(seed: int, index: int, cfg: SynthConfig) -> ParentRecord:
    """Synthetic parent ``index`` of ``seed``: drawn parameters, rendered with noise.

    Returns
    -------
    ParentRecord
        ``location`` is ``synthetic:seed={seed}:i={index}``; ``chunk`` 0 and ``row`` = index;
        ``psf_beta`` the drawn g, r, z Moffat indices.
    """
    params = draw_params(seed, index, cfg)
    _, noise_ss = _seed_sequences(seed, index)
    stamp = render_stamp(params, cfg, noise_rng=np.random.default_rng(noise_ss))
    return ParentRecord(
        galaxy_id=params.galaxy_id,
        stamp_nmgy=stamp,
        catalog=params.catalog(),
        location=f"synthetic:seed={seed}:i={index}",
        chunk=0,
        row=int(index),
        psf_beta=params.psf_beta,
        meta={"family": params.family},
    )


def iter_synthetic_parents(
    n: int,
    seed: int,
    cfg: SynthConfig | None = None,
    start: int = 0,
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
    """
    cfg = cfg if cfg is not None else SynthConfig()
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0 (got {n}, {start})")
    for i in range(start, start + n):
        yield make_parent(seed, i, cfg)


def _render_block(seed: int, cfg: SynthConfig, start: int, n: int) -> list[ParentRecord]:
    return list(iter_synthetic_parents(n, seed, cfg, start=start))


def _beta_column(b: int):
    return lambda rec: float(rec.psf_beta[b])


_META_COLUMNS = {
    "family": lambda rec: rec.meta.get("family"),
    **{f"psf_beta_{band}": _beta_column(b) for b, band in enumerate(BANDS)},
}
"""Parent metadata written as extra Parquet columns (read back into ``ParentRecord.meta`` and
``ParentRecord.psf_beta`` by :class:`~builder.parents.parquet.ParquetSource`)."""


def write_synthetic_parquet(
    path: str | Path,
    n: int,
    seed: int,
    cfg: SynthConfig | None = None,
    row_group_size: int = 1000,
    executor: SubmitExecutor | None = None,
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
        records = iter_synthetic_parents(n, seed, cfg)
    else:
        blocks = ((seed, cfg, a, min(row_group_size, n - a)) for a in range(0, n, row_group_size))
        results = submit_ordered(executor, _render_block, blocks, window=window)
        records = (r for block in results for r in block)
    bar = tqdm(records, total=n, desc="render", unit="galaxy", disable=not progress)
    return write_parents_parquet(path, bar, row_group_size, _META_COLUMNS)
