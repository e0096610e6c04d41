"""Decoys: flux- and colour-matched non-lensing features injected into controls (``decoys.*``).

A model that learned "extra blue flux 0.5-4 arcsec from a red galaxy" instead of "a tangential
arc with a counter-image" flags every blue companion. Decoys make that shortcut cost: a fraction
``decoys.fraction`` of the controls (label 0) gets one feature that has the flux and colour of an
arc but not its geometry:

* ``clump`` - a compact star-forming blob: a fresh draw of the configured lensed-source model
  (``injection.source.model``: a Sersic body with GalSim knots by default), *unlensed*, centred
  at a random radius;
* ``streak`` - a short straight streak: an elongated Gaussian (Sersic n = 0.5, axis ratio
  ``decoys.streak_q``) of FWHM ``decoys.streak_length_arcsec`` along its major axis, whose
  orientation relative to the radius vector is uniform in [0, 180) degrees (a lensed arc is
  tangential, at 90 degrees, and curved).

Neither has a counter-image. Flux and colour come from the arc this very galaxy would have
received: the injection sampler (:func:`builder.inject.inject_arc`, same config, same host-tied
lens population, same visibility cut) is run on the control's stamp with the decoy's own random
stream, and its noiseless arc's total g, r, z fluxes become the decoy's fluxes. Hence the
decoys' flux and colour distributions are those of the arcs, and "extra blue light" no longer
separates the classes. The decoy is rendered on a supersampled grid (each unit-flux component
normalised to unit sum on the stamp, which removes the sampling error of sub-pixel knots; the
feature lies >= 3 arcsec inside the stamp edge), convolved with the same per-band PSF kernels as
the arcs (:func:`builder.inject.psf.band_kernel_ffts`) and given the same photon noise
(:func:`builder.inject.noise.arc_poisson_noise`).

Everything is drawn from ``SeedSequence(galaxy_seed(galaxy_id, seed), spawn_key=(DECOY_STREAM,))``,
so decoys are deterministic from ``(seed, galaxy id)``, independent of workers and order, and a
paired control's decoy is not its host's arc. Off by default (``decoys.fraction: 0``); a build
with decoys: ``configs/build-decoys.yaml``. Kinds are rows of :data:`DECOY_KINDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from builder.inject.config import InjectionConfig
from builder.inject.noise import arc_poisson_noise
from builder.inject.psf import band_kernel_ffts, convolve
from builder.inject.render import PixelGrid, bin_to_pixels, subpixel_coordinates
from builder.inject.sampler import inject_arc
from builder.inject.source_light import SOURCE_LIGHTS, UnitProfile
from builder.inject.source_light.base import uniform
from builder.inject.source_light.sersic import SersicLight
from builder.photometry import nmgy_to_mag
from builder.psfmodel import DEFAULT_MOFFAT_BETA
from builder.splits import galaxy_seed
from common.configio import check, check_between, check_range
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, STAMP_SHAPE, STAMP_SIZE_PIX

if TYPE_CHECKING:  # pragma: no cover
    from builder.config import BuildConfig

#: Spawn key of the decoy stream under the galaxy seed (the injection uses the bare seed).
DECOY_STREAM = 7
#: Recorded as the control's ``family``.
DECOY_FAMILY = "decoy"

#: ``draw(rng, x_arcsec, y_arcsec, angle_deg, flux_nmgy, decoys, injection)`` ->
#: (components: ``(unit profile, band flux nmgy)`` pairs, kind parameters for the metadata).
DrawFn = Callable[..., tuple[list[tuple[UnitProfile, np.ndarray]], dict[str, Any]]]


@dataclass(frozen=True)
class DecoyKind:
    """One row of :data:`DECOY_KINDS`.

    Attributes
    ----------
    name : str
        Key of ``decoys.kinds`` and the recorded ``decoy.kind``.
    draw : callable
        See :data:`DrawFn`; all random numbers from ``rng``, the band fluxes summing to
        ``flux_nmgy``.
    description : str
        One line for docs.
    """

    name: str
    draw: DrawFn
    description: str


DECOY_KINDS: dict[str, DecoyKind] = {}
"""Decoy kind name -> :class:`DecoyKind`, in registration order."""


def register_decoy_kind(name: str, description: str) -> Callable[[DrawFn], DrawFn]:
    """Decorator registering ``draw`` as decoy kind ``name``."""

    def deco(fn: DrawFn) -> DrawFn:
        if name in DECOY_KINDS:
            raise ValueError(f"decoy kind {name!r} is already registered")
        DECOY_KINDS[name] = DecoyKind(name, fn, description)
        return fn

    return deco


def _default_kinds() -> dict[str, float]:
    return {"clump": 0.5, "streak": 0.5}


@dataclass
class DecoyConfig:
    """Decoy controls (``decoys``): flux- and colour-matched non-lensing features.

    Attributes
    ----------
    fraction : float
        Fraction of the controls that get a decoy (0 = off, the default).
    kinds : dict
        Decoy kind (:data:`DECOY_KINDS`: ``clump``, ``streak``) -> relative weight.
    radius_arcsec : tuple[float, float]
        Distance of the decoy centre from the stamp centre, arcsec, uniform. Default (0.5, 4.0).
    streak_length_arcsec : tuple[float, float]
        FWHM of a streak along its major axis, arcsec, uniform. Default (1.0, 3.0).
    streak_q : tuple[float, float]
        Axis ratio (minor/major) of a streak, uniform. Default (0.05, 0.2).
    supersample : int
        Sub-pixels per pixel side of the decoy render. Default 8.
    """

    fraction: float = 0.0
    kinds: dict[str, float] = field(default_factory=_default_kinds)
    radius_arcsec: tuple[float, float] = (0.5, 4.0)
    streak_length_arcsec: tuple[float, float] = (1.0, 3.0)
    streak_q: tuple[float, float] = (0.05, 0.2)
    supersample: int = 8

    def validate(self, prefix: str = "decoys") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        check_between(float(self.fraction), f"{prefix}.fraction", 0.0, 1.0)
        check(bool(self.kinds), f"{prefix}.kinds", "needs at least one kind")
        for name, w in self.kinds.items():
            key = f"{prefix}.kinds.{name}"
            check(name in DECOY_KINDS, key, f"unknown decoy kind (registered: {list(DECOY_KINDS)})")
            ok = isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w)
            check(ok and w >= 0, key, f"weight must be a number >= 0 (got {w!r})")
        check(sum(self.kinds.values()) > 0, f"{prefix}.kinds", "weights must not all be 0")
        check_range(self.radius_arcsec, f"{prefix}.radius_arcsec", lo=0.0, hi=5.0)
        check_range(self.streak_length_arcsec, f"{prefix}.streak_length_arcsec", lo=0.1, hi=4.0)
        check_range(self.streak_q, f"{prefix}.streak_q", lo=0.01, hi=1.0)
        check(1 <= self.supersample <= 16, f"{prefix}.supersample", "must be in [1, 16]")


@dataclass
class DecoyResult:
    """Outcome of :func:`draw_decoy`.

    Attributes
    ----------
    image_nmgy : np.ndarray or None
        float32 ``(3, 64, 64)`` stamp + decoy + decoy photon noise (None if no arc was accepted).
    decoy_nmgy : np.ndarray or None
        float32 ``(3, 64, 64)`` noiseless PSF-convolved decoy.
    params : dict
        ``kind``, ``radius_arcsec``, ``position_angle_deg``, ``flux_nmgy_{g,r,z}`` (the drawn
        fluxes), ``mag_{g,r,z}``, ``g_minus_r``, ``r_minus_z``, kind parameters; or ``skipped``.
    """

    image_nmgy: np.ndarray | None
    decoy_nmgy: np.ndarray | None
    params: dict[str, Any]


@register_decoy_kind("clump", "unlensed blob of the lensed-source model (Sersic body + knots)")
def _draw_clump(
    rng: np.random.Generator,
    x_arcsec: float,
    y_arcsec: float,
    angle_deg: float,
    flux_nmgy: np.ndarray,
    decoys: DecoyConfig,
    injection: InjectionConfig,
) -> tuple[list[tuple[UnitProfile, np.ndarray]], dict[str, Any]]:
    model = injection.source.model
    light = SOURCE_LIGHTS[model].draw(rng, injection.source, x_arcsec, y_arcsec)
    comps = [(p, np.asarray(f, dtype=np.float64)) for p, f in light.components()]
    total = np.sum([f for _, f in comps], axis=0)
    scale = np.asarray(flux_nmgy, dtype=np.float64) / np.maximum(total, 1e-30)
    scaled = [(p, f * scale) for p, f in comps]
    return scaled, {"model": model, "re_arcsec": float(light.half_light_radius_arcsec())}


@register_decoy_kind("streak", "short straight elongated Gaussian, random orientation")
def _draw_streak(
    rng: np.random.Generator,
    x_arcsec: float,
    y_arcsec: float,
    angle_deg: float,
    flux_nmgy: np.ndarray,
    decoys: DecoyConfig,
    injection: InjectionConfig,
) -> tuple[list[tuple[UnitProfile, np.ndarray]], dict[str, Any]]:
    length = uniform(rng, decoys.streak_length_arcsec)
    q = uniform(rng, decoys.streak_q)
    relative = float(rng.uniform(0.0, 180.0))  # major axis vs the radius vector
    phi_deg = (angle_deg + relative) % 180.0
    # Gaussian: major-axis FWHM = 2 x major half-light semi-axis = 2 re / sqrt(q)
    re_arcsec = 0.5 * length * math.sqrt(q)
    flux = np.asarray(flux_nmgy, dtype=np.float64)
    light = SersicLight(x_arcsec, y_arcsec, re_arcsec, 0.5, q, phi_deg, tuple(flux))
    params = {
        "length_arcsec": length,
        "q": q,
        "phi_deg": phi_deg,
        "orientation_to_radius_deg": relative,
    }
    return [(light, flux)], params


def render_decoy(
    components: list[tuple[UnitProfile, np.ndarray]], spectra: np.ndarray, supersample: int
) -> np.ndarray:
    """Noiseless PSF-convolved decoy: each unit component on a supersampled grid, unit sum.

    Parameters
    ----------
    components : list
        ``(unit profile, band flux nmgy)`` pairs (positions arcsec from the stamp centre).
    spectra : np.ndarray
        Band kernel spectra (:func:`builder.inject.psf.band_kernel_ffts`).
    supersample : int
        Sub-pixels per pixel side.

    Returns
    -------
    np.ndarray
        float32 ``(3, 64, 64)`` nmgy; its band sums equal the band fluxes (up to PSF wings
        leaving the stamp).
    """
    grid = PixelGrid(STAMP_SIZE_PIX, PIXEL_SCALE_ARCSEC, int(supersample))
    x, y = subpixel_coordinates(grid)
    out = np.zeros(STAMP_SHAPE, dtype=np.float64)
    for profile, flux in components:
        unit = bin_to_pixels(np.asarray(profile.unit_surface_brightness(x, y)), grid)
        unit = (unit / unit.sum(dtype=np.float64)).astype(np.float32)
        out += convolve(unit, spectra) * np.asarray(flux, dtype=np.float64)[:, None, None]
    return out.astype(np.float32)


def decoy_rng(seed: int, galaxy_id: str) -> np.random.Generator:
    """The decoy's random stream of galaxy ``galaxy_id`` in a build of master seed ``seed``."""
    ss = np.random.SeedSequence(galaxy_seed(galaxy_id, seed), spawn_key=(DECOY_STREAM,))
    return np.random.default_rng(ss)


def draw_decoy(
    stamp_nmgy: np.ndarray,
    catalog: Mapping[str, float],
    rng: np.random.Generator,
    decoys: DecoyConfig,
    injection: InjectionConfig,
    psf_images: np.ndarray | None = None,
    moffat_beta: float = DEFAULT_MOFFAT_BETA,
) -> DecoyResult:
    """Draw one decoy for a control stamp and add it, with its photon noise.

    Parameters
    ----------
    stamp_nmgy : np.ndarray
        float32 ``(3, 64, 64)`` control cutout, nmgy.
    catalog : Mapping[str, float]
        ``psfsize_*`` and ``psfdepth_*`` of the cutout (as for :func:`inject_arc`).
    rng : np.random.Generator
        The decoy stream (:func:`decoy_rng`).
    decoys, injection : DecoyConfig, InjectionConfig
        The build's ``decoys`` and ``injection`` sections.
    psf_images : np.ndarray or None
        Supplied PSF images, as for the arcs.
    moffat_beta : float
        Moffat index of the model PSF.

    Returns
    -------
    DecoyResult
        ``params["skipped"]`` says why there is no decoy when no matching arc was accepted.
    """
    stamp = np.asarray(stamp_nmgy, dtype=np.float32)
    arc = inject_arc(stamp, catalog, rng, injection, psf_images=psf_images, moffat_beta=moffat_beta)
    if not arc.accepted:
        reasons = {k: v for k, v in sorted(arc.rejections.items()) if v}
        return DecoyResult(None, None, {"skipped": f"no arc accepted to match: {reasons}"})
    flux = arc.arc_nmgy.sum(axis=(1, 2), dtype=np.float64)
    names = [n for n, w in decoys.kinds.items() if w > 0]
    weights = np.array([float(decoys.kinds[n]) for n in names])
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    radius = uniform(rng, decoys.radius_arcsec)
    angle_deg = float(rng.uniform(0.0, 360.0))
    x = radius * math.cos(math.radians(angle_deg))
    y = radius * math.sin(math.radians(angle_deg))
    comps, kind_params = DECOY_KINDS[kind].draw(rng, x, y, angle_deg, flux, decoys, injection)
    fwhms = [float(catalog[f"psfsize_{b}"]) for b in BANDS]
    spectra = band_kernel_ffts(fwhms, moffat_beta, injection.psf_kernel_radius_fwhm, psf_images)
    model = render_decoy(comps, spectra, decoys.supersample)
    noise = arc_poisson_noise(model, injection.gain_e_per_nmgy, rng)
    mags = nmgy_to_mag(flux)
    params: dict[str, Any] = {
        "kind": kind,
        "radius_arcsec": radius,
        "position_angle_deg": angle_deg,
        "x_arcsec": x,
        "y_arcsec": y,
    }
    for b, band in enumerate(BANDS):
        params[f"flux_nmgy_{band}"] = float(flux[b])
        params[f"mag_{band}"] = float(mags[b])
    params["g_minus_r"] = float(mags[0] - mags[1])
    params["r_minus_z"] = float(mags[1] - mags[2])
    params["matched_theta_e_arcsec"] = float(arc.params["theta_e_arcsec"])
    params.update({f"{kind}_{k}": v for k, v in kind_params.items()})
    image = (stamp + model + noise).astype(np.float32)
    return DecoyResult(image, model, params)


def add_decoy(
    fields: dict[str, Any],
    galaxy_id: str,
    catalog: Mapping[str, float],
    rec: Any,
    cfg: BuildConfig,
) -> dict[str, Any]:
    """The control path's hook: maybe replace a control's fields by a decoy control.

    A fraction ``cfg.decoys.fraction`` of controls (decided by the first draw of the decoy
    stream) gets a decoy: the image gains it, ``meta.family`` becomes ``"decoy"`` (the parent's
    family is kept as ``decoy.parent_family``), ``meta.decoy`` records its parameters and the
    seed, and with ``output.with_arcs`` the noiseless decoy is stored as the ``arc`` member (the
    injected feature, so that ``builder audit``'s host-only stamps are the parent's). The label
    stays 0. The PSF is the arcs': the record's ``psf_images`` when it has them, else the Moffat
    of ``psf.moffat_beta`` (or of the record's own ``psf_beta``). Returns ``fields`` unchanged
    when decoys are off or this control drew none.
    """
    dcfg: DecoyConfig = cfg.decoys
    if dcfg.fraction <= 0.0:
        return fields
    rng = decoy_rng(cfg.seed, galaxy_id)
    if float(rng.uniform()) >= dcfg.fraction:
        return fields
    beta = getattr(rec, "psf_beta", None)
    beta = cfg.psf.moffat_beta if beta is None else beta
    psf_images = getattr(rec, "psf_images", None)
    res = draw_decoy(fields["image"], catalog, rng, dcfg, cfg.injection, psf_images, beta)
    meta = dict(fields["meta"])
    params = {**res.params, "decoy_seed": galaxy_seed(galaxy_id, cfg.seed)}
    if res.image_nmgy is None:  # recorded, not silent: the control stays as it is
        meta["decoy"] = params
        return {**fields, "meta": meta}
    params["parent_family"] = meta.get("family")
    meta["family"] = DECOY_FAMILY
    meta["decoy"] = params
    out = {**fields, "image": res.image_nmgy, "meta": meta}
    if cfg.output.with_arcs:
        out["arc"] = res.decoy_nmgy
    return out
