"""Renderers of family features: profile name -> unit-flux GalSim profile (before the PSF).

``sersic`` is a (sheared, truncated) :class:`galsim.Sersic`; ``knots`` is a sum of circular
Gaussians (a ring, a spiral arm, a tidal tail or a shell sampled along its curve, or the clumps
of a star-forming galaxy). Both are analytic in Fourier space, so GalSim convolves them with the
Moffat PSF exactly as it does the hosts. Register a new one with :func:`register_profile`.
"""

from __future__ import annotations

from collections.abc import Callable

import galsim

from builder.parents.families.base import Feature

ProfileFn = Callable[[Feature, galsim.GSParams, float], galsim.GSObject]
PROFILES: dict[str, ProfileFn] = {}
"""Profile name -> ``fn(feature, gsparams, trunc_hlr) -> GSObject`` with unit flux, unshifted."""


def register_profile(name: str) -> Callable[[ProfileFn], ProfileFn]:
    """Decorator registering a feature renderer under ``name``."""

    def deco(fn: ProfileFn) -> ProfileFn:
        if name in PROFILES:
            raise ValueError(f"feature profile {name!r} is already registered")
        PROFILES[name] = fn
        return fn

    return deco


@register_profile("sersic")
def _sersic(f: Feature, gsparams: galsim.GSParams, trunc_hlr: float) -> galsim.GSObject:
    trunc = trunc_hlr * f.hlr_arcsec
    obj = galsim.Sersic(
        n=f.sersic_n, half_light_radius=f.hlr_arcsec, trunc=trunc, flux=1.0, gsparams=gsparams
    )
    if f.axis_ratio < 1.0:
        obj = obj.shear(q=f.axis_ratio, beta=f.position_angle_rad * galsim.radians)
    return obj


@register_profile("knots")
def _knots(f: Feature, gsparams: galsim.GSParams, trunc_hlr: float) -> galsim.GSObject:
    if not f.knots:
        raise ValueError(f"feature {f.kind!r} has profile 'knots' but no knots")
    total = sum(w for _, _, w in f.knots)
    if not total > 0:
        raise ValueError(f"feature {f.kind!r}: knot weights must sum to > 0")
    parts = [
        galsim.Gaussian(sigma=f.knot_sigma_arcsec, flux=w / total, gsparams=gsparams).shift(x, y)
        for x, y, w in f.knots
    ]
    return parts[0] if len(parts) == 1 else galsim.Add(parts, gsparams=gsparams)


def feature_profile(f: Feature, gsparams: galsim.GSParams, trunc_hlr: float) -> galsim.GSObject:
    """Unit-flux profile of ``f`` placed at its offset from the stamp centre (arcsec)."""
    try:
        fn = PROFILES[f.profile]
    except KeyError:
        raise ValueError(
            f"unknown feature profile {f.profile!r} (registered: {', '.join(PROFILES)})"
        ) from None
    return fn(f, gsparams, trunc_hlr).shift(f.dx_arcsec, f.dy_arcsec)
