"""Families of separate galaxies near the centre: plain LRG, blue companions, chance alignments.

* ``lrg``: the host alone (plus the sky's ordinary neighbours and stars).
* ``blue_companion``: 1-3 star-forming galaxies 0.5-4" from the host (SLSim's ``FalsePositive``
  is exactly this: an elliptical with blue galaxies around it), CWW Scd/Im colours at
  z = 0.2-1.5, 1-4 mag fainter than the host, compact (hlr 0.1-0.5") and often elongated
  (q 0.25-1, random orientation, so some look like arclets); 30 % are clumpy (3-6 knots).
* ``chance_alignment``: one more galaxy of any type 0.3-3" from the host, at another redshift
  (70 % behind it), 0-2.5 mag fainter: two overlapping galaxies on the line of sight.
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
    sed_flux,
    uniform,
)
from builder.parents.families.registry import register_family

COMPANION_SEP_ARCSEC = (0.5, 4.0)
COMPANION_DMAG = (1.0, 4.0)
COMPANION_HLR_ARCSEC = (0.1, 0.5)
COMPANION_CLUMPY_FRACTION = 0.3
ALIGNMENT_SEP_ARCSEC = (0.3, 3.0)
ALIGNMENT_DMAG = (0.0, 2.5)


@register_family("lrg", "a plain luminous red galaxy (no extra feature)")
def _lrg(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    return ()


def _companion(rng: np.random.Generator, host: HostContext) -> Feature:
    dx, dy = annulus_offset(rng, *COMPANION_SEP_ARCSEC)
    sed = "Im" if rng.uniform() < 0.5 else "Scd"
    z = uniform(rng, 0.2, 1.5)
    mag = min(host.mag_r + uniform(rng, *COMPANION_DMAG), 25.0)
    flux = sed_flux(sed, z, mag)
    hlr = log_uniform(rng, *COMPANION_HLR_ARCSEC)
    q = uniform(rng, 0.25, 1.0)
    pa = uniform(rng, 0.0, math.pi)
    if rng.uniform() < COMPANION_CLUMPY_FRACTION:
        n = int(rng.integers(3, 7))
        pts = rng.normal(0.0, hlr, size=(n, 2))
        return Feature(
            "companion",
            host.dx_arcsec + dx,
            host.dy_arcsec + dy,
            flux,
            profile="knots",
            knots=knot_tuple(pts, clumpy_weights(rng, n, 0.3)),
            knot_sigma_arcsec=max(0.05, 0.5 * hlr),
        )
    return Feature(
        "companion",
        host.dx_arcsec + dx,
        host.dy_arcsec + dy,
        flux,
        hlr_arcsec=hlr,
        sersic_n=1.0,
        axis_ratio=q,
        position_angle_rad=pa,
    )


@register_family("blue_companion", "1-3 blue star-forming galaxies 0.5-4 arcsec from the host")
def _blue_companions(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    n = 1 + min(2, int(rng.poisson(0.5)))
    return tuple(_companion(rng, host) for _ in range(n))


@register_family("chance_alignment", "a second galaxy of any type 0.3-3 arcsec from the host")
def _chance_alignment(rng: np.random.Generator, host: HostContext) -> tuple[Feature, ...]:
    dx, dy = annulus_offset(rng, *ALIGNMENT_SEP_ARCSEC)
    sed = str(rng.choice(["E", "Scd", "Im"], p=[0.4, 0.4, 0.2]))
    behind = rng.uniform() < 0.7
    z = host.redshift + uniform(rng, 0.1, 0.8) if behind else uniform(rng, 0.05, host.redshift)
    mag = host.mag_r + uniform(rng, *ALIGNMENT_DMAG)
    return (
        Feature(
            "galaxy",
            host.dx_arcsec + dx,
            host.dy_arcsec + dy,
            sed_flux(sed, z, mag),
            hlr_arcsec=log_uniform(rng, 0.3, 1.2),
            sersic_n=4.0 if sed == "E" else 1.0,
            axis_ratio=uniform(rng, 0.3, 1.0),
            position_angle_rad=uniform(rng, 0.0, math.pi),
        ),
    )
