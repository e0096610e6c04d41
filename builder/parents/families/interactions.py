"""Families of interacting galaxies: mergers with tidal tails, and shell galaxies.

* ``merger``: a second nucleus 0.6-3" from the host (E or Scd, 0.2-1 x the host flux) and one or
  two (60 %) curved tidal tails, each 3-8" long, bending by 0.5-1.5 rad, widening from 0.2" to
  0.5" and fading outwards, launched from opposite sides with the same rotation sense
  (Toomre & Toomre 1972), colours between E and Scd, 5-25 % of the host flux each.
* ``shell``: 1-4 thin concentric arcs (sigma 0.12-0.25", 60-160 deg wide) at radii growing by
  x1.5 from 1.2-2.5", alternating sides along the host major axis (type-I shells, Prieur 1990),
  the host's own colours, 2-8 % of the host flux each (Malin & Carter 1983).

Shells and tails are tangential-looking features near red galaxies: exactly what must not be
called an arc.
"""

from __future__ import annotations

import math

import numpy as np

from builder.parents.families.base import (
    Feature,
    HostContext,
    annulus_offset,
    clumpy_weights,
    knot_tuple,
    log_uniform,
    mixed_flux,
    n_along,
    scaled,
    sed_flux,
    uniform,
)
from builder.parents.families.registry import register_family

TAIL_LENGTH_ARCSEC = (3.0, 8.0)
SHELL_FIRST_RADIUS_ARCSEC = (1.2, 2.5)


def _tail(rng: np.random.Generator, host: HostContext, phi0: float, sense: float) -> Feature:
    length = uniform(rng, *TAIL_LENGTH_ARCSEC)
    bend = uniform(rng, 0.5, 1.5) * sense
    r0 = max(0.5, host.hlr_arcsec)
    n = n_along(length, 0.25, cap=60)
    t = np.linspace(0.0, 1.0, n)
    r = r0 + length * t
    phi = phi0 + bend * t
    pts = np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
    weights = np.exp(-2.0 * t) * clumpy_weights(rng, n, 0.2)
    flux = scaled(
        mixed_flux(host.redshift, host.mag_r, uniform(rng, 0.2, 0.7)), uniform(rng, 0.05, 0.25)
    )
    return Feature(
        "tail",
        host.dx_arcsec,
        host.dy_arcsec,
        flux,
        profile="knots",
        knots=knot_tuple(pts, weights),
        knot_sigma_arcsec=uniform(rng, 0.2, 0.5),
    )


@register_family("merger", "a second nucleus and 1-2 curved tidal tails")
def _merger(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    dx, dy = annulus_offset(rng, 0.6, 3.0)
    sed = "E" if rng.uniform() < 0.5 else "Scd"
    nucleus = Feature(
        "nucleus",
        host.dx_arcsec + dx,
        host.dy_arcsec + dy,
        scaled(sed_flux(sed, host.redshift, host.mag_r), uniform(rng, 0.2, 1.0)),
        hlr_arcsec=log_uniform(rng, 0.3, 1.0),
        sersic_n=4.0 if sed == "E" else 1.0,
        axis_ratio=uniform(rng, 0.4, 1.0),
        position_angle_rad=uniform(rng, 0.0, math.pi),
    )
    phi0 = uniform(rng, 0.0, 2.0 * math.pi)
    sense = 1.0 if rng.uniform() < 0.5 else -1.0
    tails = [_tail(rng, host, phi0, sense)]
    if rng.uniform() < 0.6:
        tails.append(_tail(rng, host, phi0 + math.pi, sense))
    return (nucleus, *tails)


@register_family("shell", "1-4 thin concentric shells along the host major axis")
def _shell(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    n_shell = int(rng.integers(1, 5))
    radius = uniform(rng, *SHELL_FIRST_RADIUS_ARCSEC)
    side = 0.0 if rng.uniform() < 0.5 else math.pi
    colour = sed_flux("E", host.redshift, host.mag_r)
    shells = []
    for _ in range(n_shell):
        width = math.radians(uniform(rng, 60.0, 160.0))
        sigma = uniform(rng, 0.12, 0.25)
        centre = host.position_angle_rad + side
        n = n_along(width * radius, sigma)
        phi = centre + np.linspace(-width / 2, width / 2, n)
        pts = np.stack([radius * np.cos(phi), radius * np.sin(phi)], axis=1)
        shells.append(
            Feature(
                "shell",
                host.dx_arcsec,
                host.dy_arcsec,
                scaled(colour, uniform(rng, 0.02, 0.08)),
                profile="knots",
                knots=knot_tuple(pts, clumpy_weights(rng, n, 0.05)),
                knot_sigma_arcsec=sigma,
            )
        )
        radius *= 1.5
        side += math.pi
    return tuple(shells)
