"""Parameter draws, acceptance cuts and redraws of one arc injection (:func:`inject_arc`).

Each draw takes *all* lens and source parameters from the configured distributions with a fixed
sequence of generator calls (so a seed reproduces everything, and nothing depends on the host's
brightness), then applies the cuts from cheapest to most expensive:

0. ``theta_e_range`` - with the host-tied lens population (``cfg.lens_prior``), the drawn
   Einstein radius lies in ``cfg.theta_e_arcsec``;
1. ``multiple_images`` - the source centre has >= 2 images (the lens equation solved by
   :func:`~builder.inject.lensing.find_images`; only if ``cfg.require_multiple_images``);
2. ``magnification`` - lensed flux in the stamp / unlensed flux >= ``cfg.min_magnification``
   (supersampled render, before the PSF);
3. ``visibility`` - LensPop-style visibility (:mod:`builder.inject.visibility`: stacked g+r S/N
   over the pixels above 1 sigma >= ``cfg.visibility.min_snr``, resolved, stretched); for a
   *hard* positive (a fraction ``cfg.visibility.hard_fraction`` of hosts, decided by one uniform
   before the first draw) only the S/N floor ``cfg.visibility.hard_min_snr`` applies. The
   criteria that need no image (resolved, stretched) are checked first, before the PSF
   convolution (:func:`~builder.inject.visibility.can_be_visible`; same outcome and counts);
4. ``arc_snr`` - matched-filter S/N of the PSF-convolved arc, g, r, z in quadrature,
   >= ``cfg.min_arc_snr`` (off by default).

A failed draw is counted under its reason and fully redrawn, up to ``cfg.max_draws`` times.
Every accepted positive records its visibility quantities and ``visible`` flag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special

from builder.inject.config import InjectionConfig
from builder.inject.host_shape import HostShape, measure_host_mag_r, measure_host_shape
from builder.inject.lensing import LensParams, find_images
from builder.inject.noise import (
    arc_poisson_noise,
    background_sigma_nmgy,
    optimal_snr,
    psf_nea_pix,
)
from builder.inject.population import LensDraw, draw_lens
from builder.inject.psf import band_betas, band_kernel_ffts, convolve
from builder.inject.render import PixelGrid, render_components, trace_corners
from builder.inject.source_light import SOURCE_LIGHTS, Photometry, SourceLight
from builder.inject.source_light.base import uniform
from builder.inject.visibility import can_be_visible, measure_visibility
from builder.photometry import nmgy_to_mag
from builder.psfmodel import DEFAULT_MOFFAT_BETA
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SHAPE, STAMP_SIZE_PIX

#: Rejection reasons, in the order the cuts are applied.
REJECTION_REASONS: tuple[str, ...] = (
    "theta_e_range",
    "multiple_images",
    "magnification",
    "visibility",
    "arc_snr",
)


@dataclass
class InjectionResult:
    """Outcome of :func:`inject_arc`.

    Attributes
    ----------
    accepted : bool
        False if all ``cfg.max_draws`` draws failed the acceptance cuts.
    image_nmgy : np.ndarray or None
        float32 ``(3, 64, 64)`` host + arc + arc photon noise, nmgy (None if rejected).
    arc_nmgy : np.ndarray or None
        float32 ``(3, 64, 64)`` noiseless PSF-convolved arc, nmgy (None if rejected).
    params : dict
        JSON-serialisable lens, source, PSF, noise and acceptance values (see
        ``docs/injection.md``); for a rejected injection only the host/PSF/noise entries and
        ``n_draws``.
    rejections : dict[str, int]
        Failed draws by reason (keys: :data:`REJECTION_REASONS`).
    n_draws : int
        Draws made, including the accepted one.
    """

    accepted: bool
    image_nmgy: np.ndarray | None
    arc_nmgy: np.ndarray | None
    params: dict[str, Any]
    rejections: dict[str, int] = field(default_factory=dict)
    n_draws: int = 0


@dataclass(frozen=True)
class Draw:
    """One draw of all random injection parameters.

    Attributes
    ----------
    lens : LensParams
        SIE + shear lens.
    source : SourceLight
        The lensed galaxy's light, of the model ``cfg.source.model`` (position relative to the
        lens centre); its ``photometry`` gives ``mag_r``, ``sed`` and ``redshift``.
    population : LensDraw or None
        The host-tied lens-population draw (``cfg.lens_prior == "population"``), else None.
    """

    lens: LensParams
    source: SourceLight
    population: LensDraw | None = None

    @property
    def photometry(self) -> Photometry | None:
        """Magnitude, SED and redshift of the source (None if the model has none)."""
        return getattr(self.source, "photometry", None)

    @property
    def mag_r(self) -> float | None:
        """Unlensed r-band AB magnitude of the source."""
        return None if self.photometry is None else self.photometry.mag_r

    @property
    def sed(self) -> str | None:
        """SED template name."""
        return None if self.photometry is None else self.photometry.sed

    @property
    def redshift(self) -> float | None:
        """Source redshift."""
        return None if self.photometry is None else self.photometry.redshift


def _truncated_normal(
    rng: np.random.Generator, mean: float, sigma: float, lo: float, hi: float
) -> float:
    """One draw of N(mean, sigma) truncated to [lo, hi], by inverse-CDF (one uniform)."""
    u = float(rng.uniform())
    if sigma <= 0.0:
        return min(max(mean, lo), hi)
    c_lo = special.ndtr((lo - mean) / sigma)
    c_hi = special.ndtr((hi - mean) / sigma)
    if c_hi - c_lo < 1e-12:  # the window is far in a tail: take the nearer bound
        return lo if mean < lo else hi
    x = mean + sigma * float(special.ndtri(c_lo + u * (c_hi - c_lo)))
    return min(max(x, lo), hi)


def draw_parameters(
    rng: np.random.Generator,
    cfg: InjectionConfig,
    host: HostShape,
    host_mag_r: float | None = None,
    catalog: Mapping[str, Any] | None = None,
) -> Draw:
    """Draw one set of lens and source parameters.

    The generator is called the same number of times whatever the values, so draws are
    reproducible and aligned between hosts. Only the mass shape depends on the host, through
    its light shape; the source (magnitude included) never does. The lens and the source centre
    are drawn here; the rest of the source by its model's ``draw`` (``cfg.source.model``).

    Parameters
    ----------
    rng : np.random.Generator
        Random generator.
    cfg : InjectionConfig
        Distributions.
    host : HostShape
        Host light shape that the mass axis ratio and angle scatter around.

    Returns
    -------
    Draw
        The parameters.
    """
    population = None
    z_source = None
    if cfg.lens_prior == "population":
        if host_mag_r is None:
            raise ValueError("lens_prior 'population' needs the host's r magnitude (host_mag_r)")
        population = draw_lens(host_mag_r, rng, cfg.population, catalog)
        theta_e, z_source = population.theta_e_arcsec, population.z_source
    else:
        theta_e = uniform(rng, cfg.theta_e_arcsec)
    lo, hi = cfg.lens_q_range
    lens_q = _truncated_normal(rng, host.q, cfg.lens_q_sigma, lo, hi)
    lens_phi = (host.phi_deg + cfg.lens_phi_sigma_deg * float(rng.standard_normal())) % 180.0
    gamma1, gamma2 = (float(g) for g in cfg.shear_sigma * rng.standard_normal(2))
    # source centre uniform in area within a disk of radius f * theta_E
    radius = cfg.source.offset_max_theta_e * theta_e * math.sqrt(float(rng.uniform()))
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    x_arcsec, y_arcsec = radius * math.cos(angle), radius * math.sin(angle)
    draw_source = SOURCE_LIGHTS[cfg.source.model].draw
    source = draw_source(rng, cfg.source, x_arcsec, y_arcsec, redshift=z_source)
    lens = LensParams(theta_e, lens_q, lens_phi, gamma1, gamma2)
    return Draw(lens=lens, source=source, population=population)


def _draw_params(draw: Draw, band_flux_nmgy: np.ndarray) -> dict[str, Any]:
    lens, src = draw.lens, draw.source
    x_arcsec, y_arcsec = src.center_arcsec()
    out: dict[str, Any] = {
        "theta_e_arcsec": lens.theta_e_arcsec,
        "lens_q": lens.q,
        "lens_phi_deg": lens.phi_deg,
        "gamma1": lens.gamma1,
        "gamma2": lens.gamma2,
        "source_x_arcsec": x_arcsec,
        "source_y_arcsec": y_arcsec,
        **src.metadata(),
    }
    if draw.population is not None:
        pop = draw.population.as_params()
        for key in ("theta_e_arcsec", "z_source"):  # recorded as theta_e_arcsec and source_z
            pop.pop(key)
        out.update(pop)
    if draw.photometry is not None:
        out["source_z"] = draw.redshift
        out["source_sed"] = draw.sed
    mags = nmgy_to_mag(band_flux_nmgy)
    for b, band in enumerate(BANDS):
        out[f"source_mag_{band}"] = float(mags[b])
    return out


def _magnification(components: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Lensed / unlensed r-band flux in the stamp, before the PSF.

    One component: its unit image's sum (exactly, with no round trip through the flux). Several
    (colours differ): the r-flux-weighted mean of the components' magnifications.
    """
    mus = [float(unit.sum(dtype=np.float64)) for unit, _ in components]
    if len(mus) == 1:
        return mus[0]
    r = BANDS.index("r")
    weights = [float(flux[r]) for _, flux in components]
    return float(np.dot(mus, weights) / np.sum(weights))


def inject_arc(
    stamp_nmgy: np.ndarray,
    catalog: Mapping[str, float],
    rng: np.random.Generator,
    cfg: InjectionConfig,
    psf_images: np.ndarray | None = None,
    moffat_beta: float | Sequence[float] = DEFAULT_MOFFAT_BETA,
) -> InjectionResult:
    """Inject a strongly lensed arc (source-light model ``cfg.source.model``) into a cutout.

    Parameters
    ----------
    stamp_nmgy : np.ndarray
        float32 ``(3, 64, 64)`` g, r, z host cutout centred on the lens, nmgy per pixel.
    catalog : Mapping[str, float]
        ``psfsize_g/r/z`` (PSF FWHM, arcsec) and ``psfdepth_g/r/z`` (1/nmgy^2).
    rng : np.random.Generator
        Source of all randomness (draws and arc photon noise).
    cfg : InjectionConfig
        Distributions and cuts.
    psf_images : np.ndarray or None
        Optional ``(3, K, K)`` PSF images (K odd) used instead of Moffat(psfsize, moffat_beta).
    moffat_beta : float or Sequence[float]
        Moffat index of the model PSF: the build's ``psf.moffat_beta``, or the parent's own
        per-band indices (``ParentRecord.psf_beta``, e.g. the synthetic sky's draws, so that
        the arc gets its host's PSF). Recorded as ``psf_beta_g/r/z`` when no image is given.

    Returns
    -------
    InjectionResult
        The injected image, noiseless arc, parameters and rejection counts.
    """
    stamp = np.asarray(stamp_nmgy, dtype=np.float32)
    if stamp.shape != STAMP_SHAPE:
        raise ValueError(f"stamp must have shape {STAMP_SHAPE}, got {stamp.shape}")
    fwhms = [float(catalog[f"psfsize_{b}"]) for b in BANDS]
    gains = [float(g) for g in cfg.gain_e_per_nmgy]
    spectra = band_kernel_ffts(fwhms, moffat_beta, cfg.psf_kernel_radius_fwhm, psf_images)
    nea = psf_nea_pix(fwhms, moffat_beta, psf_images)
    sigma = background_sigma_nmgy(stamp, catalog, nea, cfg.noise_sigma_method)
    host = measure_host_shape(stamp[BANDS.index("r")])
    host_mag_r = measure_host_mag_r(stamp[BANDS.index("r")])
    grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, cfg.supersample)

    common: dict[str, Any] = {"host_q": host.q, "host_phi_deg": host.phi_deg}
    common["host_shape_measured"] = host.measured
    common["host_mag_r"] = host_mag_r
    common["lens_prior"] = cfg.lens_prior
    for b, band in enumerate(BANDS):
        common[f"psf_fwhm_{band}"] = fwhms[b]
        common[f"gain_e_per_nmgy_{band}"] = gains[b]
        common[f"noise_sigma_nmgy_{band}"] = float(sigma[b])
    common["psf_model"] = "supplied" if psf_images is not None else "moffat"
    if psf_images is None:
        for band, beta in zip(BANDS, band_betas(moffat_beta, len(BANDS)), strict=True):
            common[f"psf_beta_{band}"] = beta

    vis_cfg = cfg.visibility
    hard = float(rng.uniform()) < vis_cfg.hard_fraction
    common["hard_positive"] = hard
    rejections = dict.fromkeys(REJECTION_REASONS, 0)
    for n_draw in range(1, cfg.max_draws + 1):
        draw = draw_parameters(rng, cfg, host, host_mag_r, catalog)
        theta_e = draw.lens.theta_e_arcsec
        lo, hi = cfg.theta_e_arcsec
        if not lo <= theta_e <= hi:
            rejections["theta_e_range"] += 1
            continue
        images = find_images(draw.lens, *draw.source.center_arcsec()).count
        if cfg.require_multiple_images and images < 2:
            rejections["multiple_images"] += 1
            continue
        # one unit-flux image per colour component: its sum is that component's magnification
        corners = trace_corners(draw.lens, grid)
        components = render_components(
            draw.lens, draw.source, grid, cfg.adaptive_supersample, corners
        )
        magnification = _magnification(components)
        if magnification < cfg.min_magnification:
            rejections["magnification"] += 1
            continue
        re_arcsec = draw.source.half_light_radius_arcsec()
        if not hard and not can_be_visible(
            fwhms, theta_e, re_arcsec, magnification, vis_cfg, cfg.min_magnification
        ):  # not resolved / stretched: invisible whatever the S/N, so skip the convolution
            rejections["visibility"] += 1
            continue
        flux = draw.source.total_flux_nmgy()
        # one FFT per component image, one kernel per band, then the component's band fluxes
        arc = None
        for unit, comp_flux in components:
            term = convolve(unit, spectra) * comp_flux.astype(np.float32)[:, None, None]
            arc = term if arc is None else arc + term
        vis = measure_visibility(
            arc,
            sigma,
            gains,
            fwhms,
            theta_e,
            re_arcsec,
            magnification,
            vis_cfg,
            cfg.min_magnification,
        )
        if not (vis.snr >= vis_cfg.hard_min_snr if hard else vis.visible):
            rejections["visibility"] += 1
            continue
        snr = optimal_snr(arc, sigma, gains)
        snr_total = float(np.sqrt(np.sum(snr * snr)))
        if snr_total < cfg.min_arc_snr:
            rejections["arc_snr"] += 1
            continue
        noise = arc_poisson_noise(arc, gains, rng)
        image = stamp + arc + noise
        params = _draw_params(draw, flux)
        params["n_images"] = images
        params["magnification"] = magnification
        params["arc_snr"] = snr_total
        params.update(vis.as_params())
        for b, band in enumerate(BANDS):
            params[f"arc_snr_{band}"] = float(snr[b])
            params[f"arc_flux_nmgy_{band}"] = float(arc[b].sum(dtype=np.float64))
        params.update(common)
        params["n_draws"] = n_draw
        return InjectionResult(
            accepted=True,
            image_nmgy=image.astype(np.float32, copy=False),
            arc_nmgy=arc.astype(np.float32, copy=False),
            params=params,
            rejections=rejections,
            n_draws=n_draw,
        )
    params = dict(common)
    params["n_draws"] = cfg.max_draws
    return InjectionResult(
        accepted=False,
        image_nmgy=None,
        arc_nmgy=None,
        params=params,
        rejections=rejections,
        n_draws=cfg.max_draws,
    )
