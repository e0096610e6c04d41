"""Families whose central galaxy has disc structure: rings, face-on spirals, edge-on discs.

The host Sersic stays the red bulge (it is what an LRG-like selection picked); the family adds
the disc structure around it, rendered as GalSim knot chains and Sersic discs.

* ``ring``: 70 % resonance rings (centred on the nucleus, smooth, colours between E and Scd,
  10-40 % of the host flux; Buta & Combes 1996) and 30 % collisional rings (offset from the
  nucleus by up to 0.3 radii, blue Im colours, very knotty, 30-100 % of the host flux, like the
  Cartwheel). Radius 1-4.5", width sigma 0.12-0.35", inclined (q 0.5-1).
* ``spiral``: a face-on exponential disc (Scd colours, 0.3-0.8 x the host flux, hlr 1.5-3 x the
  host's, <= 4") and 2 (70 %) or 3 logarithmic arms (pitch 12-30 deg, from max(0.8", host hlr) out
  to 2.5-6") of blue Im-coloured knots with 0.6 dex clumpiness, together 30-80 % of the host flux.
* ``edge_on``: a thin exponential disc seen edge-on (q 0.08-0.2, hlr 1-3", Scd colours,
  0.5-2 x the host flux) through the host centre.
"""

from __future__ import annotations

import math

import numpy as np

from builder.parents.families.base import (
    Feature,
    HostContext,
    clumpy_weights,
    knot_tuple,
    mixed_flux,
    n_along,
    project,
    scaled,
    sed_flux,
    uniform,
)
from builder.parents.families.registry import register_family

RING_RADIUS_ARCSEC = (1.0, 4.5)
RING_SIGMA_ARCSEC = (0.12, 0.35)
COLLISIONAL_FRACTION = 0.3
ARM_PITCH_DEG = (12.0, 30.0)
ARM_OUTER_RADIUS_ARCSEC = (2.5, 6.0)


def _ring_points(radius: float, n: int) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


@register_family("ring", "a resonance or collisional ring 1-4.5 arcsec around the host")
def _ring(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    radius = uniform(rng, *RING_RADIUS_ARCSEC)
    sigma = uniform(rng, *RING_SIGMA_ARCSEC)
    q, pa = uniform(rng, 0.5, 1.0), uniform(rng, 0.0, math.pi)
    n = n_along(2.0 * math.pi * radius, sigma)
    collisional = rng.uniform() < COLLISIONAL_FRACTION
    pts = project(_ring_points(radius, n), q, pa)
    if collisional:
        off = uniform(rng, 0.0, 0.3) * radius
        t = uniform(rng, 0.0, 2.0 * math.pi)
        pts = pts + np.array([off * math.cos(t), off * math.sin(t)])
        weights = clumpy_weights(rng, n, 0.5)
        flux = scaled(sed_flux("Im", host.redshift, host.mag_r), uniform(rng, 0.3, 1.0))
    else:
        weights = clumpy_weights(rng, n, 0.15)
        blue = uniform(rng, 0.2, 0.6)
        flux = scaled(mixed_flux(host.redshift, host.mag_r, blue), uniform(rng, 0.1, 0.4))
    return (
        Feature(
            "ring",
            host.dx_arcsec,
            host.dy_arcsec,
            flux,
            profile="knots",
            knots=knot_tuple(pts, weights),
            knot_sigma_arcsec=sigma,
        ),
    )


def _arm_points(r0: float, r1: float, pitch_rad: float, phase: float, sigma: float) -> np.ndarray:
    """A logarithmic spiral r = r0 exp(phi tan(pitch)) from r0 to r1, sampled every ~1.2 sigma."""
    phi_max = math.log(r1 / r0) / math.tan(pitch_rad)
    length = (r1 - r0) / math.sin(pitch_rad)
    phi = np.linspace(0.0, phi_max, n_along(length, sigma))
    r = r0 * np.exp(phi * math.tan(pitch_rad))
    return np.stack([r * np.cos(phi + phase), r * np.sin(phi + phase)], axis=1)


@register_family("spiral", "a face-on disc with 2-3 clumpy blue spiral arms around the bulge")
def _spiral(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    q, pa = uniform(rng, 0.7, 1.0), uniform(rng, 0.0, math.pi)
    disc_hlr = min(4.0, host.hlr_arcsec * uniform(rng, 1.5, 3.0))
    disc = Feature(
        "disk",
        host.dx_arcsec,
        host.dy_arcsec,
        scaled(sed_flux("Scd", host.redshift, host.mag_r), uniform(rng, 0.3, 0.8)),
        hlr_arcsec=disc_hlr,
        sersic_n=1.0,
        axis_ratio=q,
        position_angle_rad=pa,
    )
    m = 2 if rng.uniform() < 0.7 else 3
    pitch = math.radians(uniform(rng, *ARM_PITCH_DEG))
    sigma = uniform(rng, 0.12, 0.3)
    r0 = max(0.8, host.hlr_arcsec)
    r1 = max(r0 + 1.5, uniform(rng, *ARM_OUTER_RADIUS_ARCSEC))
    phase0 = uniform(rng, 0.0, 2.0 * math.pi)
    arm_flux = scaled(sed_flux("Im", host.redshift, host.mag_r), uniform(rng, 0.3, 0.8) / m)
    sense = 1.0 if rng.uniform() < 0.5 else -1.0
    arms = []
    for k in range(m):
        pts = _arm_points(r0, r1, pitch, phase0 + 2.0 * math.pi * k / m, sigma)
        pts[:, 1] *= sense  # winding sense
        pts = project(pts, q, pa)
        arms.append(
            Feature(
                "arm",
                host.dx_arcsec,
                host.dy_arcsec,
                arm_flux,
                profile="knots",
                knots=knot_tuple(pts, clumpy_weights(rng, len(pts), 0.6)),
                knot_sigma_arcsec=sigma,
            )
        )
    return (disc, *arms)


@register_family("edge_on", "a thin edge-on disc through the host centre")
def _edge_on(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    return (
        Feature(
            "disk",
            host.dx_arcsec,
            host.dy_arcsec,
            scaled(sed_flux("Scd", host.redshift, host.mag_r), uniform(rng, 0.5, 2.0)),
            hlr_arcsec=uniform(rng, 1.0, 3.0),
            sersic_n=1.0,
            axis_ratio=uniform(rng, 0.08, 0.2),
            position_angle_rad=uniform(rng, 0.0, math.pi),
        ),
    )
