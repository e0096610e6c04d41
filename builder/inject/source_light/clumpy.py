"""The clumpy star-forming source (``injection.source.model: clumpy``, the default).

A lensed star-forming galaxy at z ~ 1-3 is not a smooth Sersic: much of its UV/blue light is in
compact star-forming clumps (e.g. Elmegreen et al. 2007; Guo et al. 2015, ApJ 800, 39: clumps
carry ~5-50% of the rest-UV light of z ~ 1-3 star-forming galaxies). The model is

* a **body**: an elliptical Sersic (:mod:`~.sersic`), with the template, redshift and
  Calzetti dust of :func:`builder.inject.source_colours.draw_source_colours` (Madau IGM);
* **knots**: ``n_knots`` clumps at positions drawn by GalSim's ``RandomKnots`` (a random
  walk-like set of points following a Gaussian of the body's half-light radius, Zhang et al.
  2018), stretched by the body's axis ratio and rotated to its position angle; each knot is a
  circular Gaussian of sigma ``knot_sigma_arcsec`` (a few hundred pc), carrying a fraction
  ``knot_flux_fraction`` of the source's r flux between them, with the younger, less dusty
  *knot colours* of ``draw_source_colours`` (never redder in g-r than the body).

So the source has a colour gradient (bluer where the knots are) and the arc substructure the
origin team's probe found missing from smooth injections. Two colour components (body, knots)
are rendered as two unit-flux images.

Generator calls per draw: shape (5 uniforms: re, n, q, angle, knot fraction; 1 integer: the
knot count; 1 uniform: knot size), photometry (magnitude, and the colour draw of
``draw_source_colours``: template, redshift, E(B-V)), then one integer seeding GalSim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import galsim
import numpy as np

from builder.inject.source_colours import SourceColourPrior, SourceColours, draw_source_colours
from builder.inject.source_light.base import (
    Photometry,
    SourceLight,
    register_source_light,
    uniform,
)
from builder.inject.source_light.sersic import SersicLight
from common.configio import check, check_range

if TYPE_CHECKING:  # pragma: no cover
    from builder.inject.config import SourceConfig

#: Knots are always supersampled within this many knot sigmas of a knot centre.
KNOT_CORE_SIGMAS = 4.0


@dataclass(frozen=True)
class ClumpyConfig:
    """Shape, knots and colours of the clumpy source (``injection.source.clumpy``).

    Attributes
    ----------
    re_arcsec, n, q : tuple[float, float]
        Body Sersic half-light radius (arcsec), index and axis ratio, uniform. Defaults
        ``(0.1, 0.5)``, ``(0.5, 2.0)``, ``(0.3, 1.0)``.
    n_knots : tuple[int, int]
        Number of knots, uniform integer in ``[low, high]``. Default ``(3, 25)``.
    knot_flux_fraction : tuple[float, float]
        Fraction of the source's r flux in the knots, uniform. Default ``(0.1, 0.5)``.
    knot_sigma_arcsec : tuple[float, float]
        Gaussian sigma of a knot, arcsec, uniform. Default ``(0.015, 0.05)`` (~100-400 pc).
    colours : SourceColourPrior
        Templates, redshift range (used only with the uniform lens prior), E(B-V) and IGM.
    """

    re_arcsec: tuple[float, float] = (0.1, 0.5)
    n: tuple[float, float] = (0.5, 2.0)
    q: tuple[float, float] = (0.3, 1.0)
    n_knots: tuple[int, int] = (3, 25)
    knot_flux_fraction: tuple[float, float] = (0.1, 0.5)
    knot_sigma_arcsec: tuple[float, float] = (0.015, 0.05)
    colours: SourceColourPrior = field(default_factory=SourceColourPrior)

    def validate(self, prefix: str = "injection.source.clumpy") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        check_range(self.re_arcsec, f"{prefix}.re_arcsec", lo=0.01, hi=5.0)
        check_range(self.n, f"{prefix}.n", lo=0.3, hi=6.0)
        check_range(self.q, f"{prefix}.q", lo=0.05, hi=1.0)
        lo, hi = self.n_knots
        check(
            isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 200,
            f"{prefix}.n_knots",
            f"need integers 1 <= low <= high <= 200, got {self.n_knots!r}",
        )
        check_range(self.knot_flux_fraction, f"{prefix}.knot_flux_fraction", lo=0.0, hi=1.0)
        check_range(self.knot_sigma_arcsec, f"{prefix}.knot_sigma_arcsec", lo=1e-3, hi=1.0)
        self.colours.validate(f"{prefix}.colours")


#: ``exp(-x)`` is exactly 0.0 in float64 for ``x >= EXP_ZERO_ARG`` (it underflows below
#: ``exp(-745.2)``): knot terms that far out are skipped by ``KnotsProfile``.
EXP_ZERO_ARG = 800.0


@dataclass(frozen=True)
class KnotsProfile:
    """Unit-flux sum of equal circular Gaussian knots (a :class:`~.base.UnitProfile`).

    Attributes
    ----------
    x_arcsec, y_arcsec : np.ndarray
        Knot centres (source plane, arcsec from the lens centre).
    sigma_arcsec : float
        Gaussian sigma of every knot.
    center : tuple[float, float]
        Centre of the source the knots belong to.
    """

    x_arcsec: np.ndarray = field(repr=False)
    y_arcsec: np.ndarray = field(repr=False)
    sigma_arcsec: float
    center: tuple[float, float]

    def unit_surface_brightness(
        self, beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray
    ) -> np.ndarray:
        """Surface brightness, arcsec^-2, integrating to 1 (float32 in, float32 out).

        The sum over knots of ``exp(-((x - x_k)^2 + (y - y_k)^2) / (2 sigma^2))`` in float64,
        knot by knot. Points farther than ``sqrt(2 * EXP_ZERO_ARG) sigma`` from the knots'
        bounding box are skipped: each of their terms is ``exp(-x)`` with ``x >= EXP_ZERO_ARG``,
        exactly 0.0 in float64, so the result is bit for bit that of summing every term
        (``tests/test_source_light.py``).
        """
        bx = np.asarray(beta_x_arcsec)
        by = np.asarray(beta_y_arcsec)
        dtype = np.float32 if bx.dtype == np.float32 else np.float64
        inv2s2 = 0.5 / self.sigma_arcsec**2
        norm = 1.0 / (2.0 * math.pi * self.sigma_arcsec**2 * self.x_arcsec.size)
        x64 = bx.astype(np.float64).ravel()  # exact, as the float32 - float64 operations do
        y64 = by.astype(np.float64).ravel()
        reach = math.sqrt(EXP_ZERO_ARG / inv2s2) * 1.001
        gap_x = np.maximum(
            np.maximum(float(self.x_arcsec.min()) - x64, x64 - float(self.x_arcsec.max())), 0.0
        )
        gap_y = np.maximum(
            np.maximum(float(self.y_arcsec.min()) - y64, y64 - float(self.y_arcsec.max())), 0.0
        )
        idx = np.flatnonzero(~(gap_x * gap_x + gap_y * gap_y > reach * reach))  # NaN kept
        out = np.zeros(x64.shape, dtype=np.float64)
        if idx.size:
            xs, ys = x64[idx], y64[idx]
            acc = np.zeros(idx.size)
            dx, dy = np.empty(idx.size), np.empty(idx.size)
            for xk, yk in zip(self.x_arcsec.tolist(), self.y_arcsec.tolist(), strict=True):
                np.subtract(xs, xk, out=dx)
                np.multiply(dx, dx, out=dx)
                np.subtract(ys, yk, out=dy)
                np.multiply(dy, dy, out=dy)
                np.add(dx, dy, out=dx)
                np.multiply(dx, -inv2s2, out=dx)
                np.exp(dx, out=dx)
                acc += dx
            out[idx] = acc
        return (out.reshape(bx.shape) * norm).astype(dtype, copy=False)

    def peak_unit_sb_arcsec2(self) -> float:
        """Peak of one knot (a lower bound of the peak, so the adaptive cut is conservative)."""
        return 1.0 / (2.0 * math.pi * self.sigma_arcsec**2 * self.x_arcsec.size)

    def center_arcsec(self) -> tuple[float, float]:
        """The source centre."""
        return self.center

    def core_radius_arcsec(self) -> float:
        """Farthest knot from the centre plus :data:`KNOT_CORE_SIGMAS` knot sigmas."""
        d = np.hypot(self.x_arcsec - self.center[0], self.y_arcsec - self.center[1])
        return float(d.max()) + KNOT_CORE_SIGMAS * self.sigma_arcsec


def knot_positions(
    n_knots: int, re_arcsec: float, q: float, phi_deg: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Knot offsets from the source centre: GalSim ``RandomKnots`` points, sheared and rotated.

    ``RandomKnots(n_knots, half_light_radius=re_arcsec)`` draws the points (seeded by
    ``seed``); ``(x, y) -> (x / sqrt(q), y sqrt(q))`` (area preserving, the body's axis ratio)
    then a rotation by ``phi_deg`` puts them on the body's ellipse.
    """
    knots = galsim.RandomKnots(
        int(n_knots), half_light_radius=float(re_arcsec), flux=1.0, rng=galsim.BaseDeviate(seed)
    )
    pts = np.asarray(knots.points, dtype=np.float64)
    xs, ys = pts[:, 0] / math.sqrt(q), pts[:, 1] * math.sqrt(q)
    c, s = math.cos(math.radians(phi_deg)), math.sin(math.radians(phi_deg))
    return c * xs - s * ys, s * xs + c * ys


@register_source_light("clumpy", ClumpyConfig)
@dataclass(frozen=True)
class ClumpyLight(SourceLight):
    """A Sersic body plus bluer Gaussian knots (two colour components).

    Attributes
    ----------
    body : SersicLight
        The body, with its own (redder) unlensed band fluxes.
    knots : KnotsProfile
        The knots' unit profile.
    knot_flux_nmgy : tuple of float
        Unlensed g, r, z flux of all knots together, nmgy.
    colours : SourceColours
        Template, dust and colours of body and knots.
    photometry : Photometry
        Total r magnitude, body template and redshift.
    knot_flux_fraction : float
        Fraction of the r flux in the knots.
    """

    body: SersicLight
    knots: KnotsProfile
    knot_flux_nmgy: tuple[float, ...]
    colours: SourceColours
    photometry: Photometry
    knot_flux_fraction: float

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        cfg: SourceConfig,
        x_arcsec: float,
        y_arcsec: float,
        redshift: float | None = None,
    ) -> ClumpyLight:
        """Draw shape, knots and colours (see the module docstring for the call order).

        Parameters
        ----------
        rng : np.random.Generator
            Random generator.
        cfg : SourceConfig
            ``injection.source`` (this model reads ``cfg.section("clumpy")`` and ``cfg.mag_r``).
        x_arcsec, y_arcsec : float
            Source centre, arcsec from the lens centre.
        redshift : float or None
            Source redshift when already drawn (lens population); else uniform in
            ``colours.redshift``.

        Returns
        -------
        ClumpyLight
        """
        c: ClumpyConfig = cfg.section("clumpy")
        re_arcsec, n_sersic, q = uniform(rng, c.re_arcsec), uniform(rng, c.n), uniform(rng, c.q)
        phi_deg = float(rng.uniform(0.0, 180.0))
        fraction = uniform(rng, c.knot_flux_fraction)
        n_knots = int(rng.integers(c.n_knots[0], c.n_knots[1] + 1))
        sigma = uniform(rng, c.knot_sigma_arcsec)
        mag_r = uniform(rng, cfg.mag_r)
        colours = draw_source_colours(rng, c.colours, redshift)
        seed = int(rng.integers(1, 2**31 - 1))
        total_r = 10.0 ** (-0.4 * (mag_r - 22.5))
        knot_r = fraction * total_r
        body_flux = colours.flux_ratios(knot=False) * (total_r - knot_r)
        knot_flux = colours.flux_ratios(knot=True) * knot_r
        body = SersicLight(
            x_arcsec, y_arcsec, re_arcsec, n_sersic, q, phi_deg, tuple(float(f) for f in body_flux)
        )
        dx, dy = knot_positions(n_knots, re_arcsec, q, phi_deg, seed)
        knots = KnotsProfile(x_arcsec + dx, y_arcsec + dy, sigma, (x_arcsec, y_arcsec))
        phot = Photometry(mag_r=mag_r, sed=colours.template, redshift=colours.redshift)
        return cls(body, knots, tuple(float(f) for f in knot_flux), colours, phot, fraction)

    @property
    def x_arcsec(self) -> float:  # type: ignore[override]
        """Source centre x, arcsec."""
        return self.body.x_arcsec

    @property
    def y_arcsec(self) -> float:  # type: ignore[override]
        """Source centre y, arcsec."""
        return self.body.y_arcsec

    def components(self) -> tuple[tuple[Any, np.ndarray], ...]:
        """Body (Sersic, its flux) and knots (their unit profile, their flux)."""
        return (
            (self.body, np.asarray(self.body.flux_nmgy, dtype=np.float64)),
            (self.knots, np.asarray(self.knot_flux_nmgy, dtype=np.float64)),
        )

    def half_light_radius_arcsec(self) -> float:
        """The body's half-light radius (the knots follow a Gaussian of the same radius)."""
        return self.body.re_arcsec

    def metadata(self) -> dict[str, Any]:
        """Body shape, knot parameters, dust and template of body and knots."""
        return {
            **self.body.metadata(),
            "source_n_knots": int(self.knots.x_arcsec.size),
            "source_knot_flux_fraction": self.knot_flux_fraction,
            "source_knot_sigma_arcsec": self.knots.sigma_arcsec,
            "source_ebv_mag": self.colours.ebv_mag,
            "source_knot_ebv_mag": self.colours.knot_ebv_mag,
            "source_knot_template": self.colours.knot_template,
            "source_body_g_minus_r": self.colours.g_minus_r,
            "source_knot_g_minus_r": self.colours.knot_g_minus_r,
        }
