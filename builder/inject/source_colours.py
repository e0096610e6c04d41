"""Drawing the colours of a lensed source: template, redshift, dust, and its bluer knots.

Priors (:class:`SourceColourPrior`) over the SED machinery of :mod:`builder.inject.sed`.

Knots: clumps of a clumpy source are younger and less dusty than its body. Their ``E(B-V)`` is
the body's times :attr:`SourceColourPrior.knot_ebv_fraction`, and their template is the youngest
CWW one (``Im``) at the same redshift, or the body's own template where that is bluer in g-r
(Im is not the bluest at every redshift). A knot is hence never redder in g-r than its body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from builder.inject.sed import (
    EBV_MAX,
    IGM_MODELS,
    SF_TEMPLATE_FILES,
    Z_MAX,
    G,
    Z,
    template_colours,
)
from builder.photometry import AB_ZEROPOINT_MAG
from common.configio import check, check_between, check_range

#: Template used for the bluer knots of clumpy sources (the youngest CWW population).
KNOT_TEMPLATE = "Im"


@dataclass(frozen=True)
class SourceColourPrior:
    """Distribution of source SEDs (the E(B-V) default and its references: :mod:`builder.inject.sed`).

    Attributes
    ----------
    templates : tuple[str, ...]
        Star-forming templates (keys of :data:`SF_TEMPLATE_FILES`), drawn with ``weights``.
        Default ``("Sbc", "Scd", "Im")``.
    weights : tuple[float, ...] or None
        Template probabilities (normalised here); None means equal. Default None.
    redshift : tuple[float, float]
        Uniform source-redshift range when the caller does not supply one. Default (1.0, 3.0).
    ebv_mean_mag, ebv_sigma_mag : float
        Mean and sigma of the normal E_s(B-V) distribution, mag. Default 0.15 and 0.12.
    ebv_range_mag : tuple[float, float]
        Truncation of the E(B-V) normal, mag. Default (0.0, 0.6).
    knot_ebv_fraction : float
        Knot E(B-V) as a fraction of the body's (young clumps, less dust). Default 0.25.
    igm : str
        Key of :data:`IGM_MODELS`. Default ``"madau1995"``.
    """

    templates: tuple[str, ...] = ("Sbc", "Scd", "Im")
    weights: tuple[float, ...] | None = None
    redshift: tuple[float, float] = (1.0, 3.0)
    ebv_mean_mag: float = 0.15
    ebv_sigma_mag: float = 0.12
    ebv_range_mag: tuple[float, float] = (0.0, 0.6)
    knot_ebv_fraction: float = 0.25
    igm: str = "madau1995"

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`~common.configio.ConfigError` (a ``ValueError``) naming the bad key."""
        p = f"{prefix}." if prefix else ""
        check(len(self.templates) > 0, f"{p}templates", "expected at least one template")
        for i, t in enumerate(self.templates):
            check(
                t in SF_TEMPLATE_FILES,
                f"{p}templates[{i}]",
                f"unknown {t!r} (known: {sorted(SF_TEMPLATE_FILES)})",
            )
        check(
            self.weights is None
            or (
                len(self.weights) == len(self.templates)
                and min(self.weights) >= 0
                and sum(self.weights) > 0
            ),
            f"{p}weights",
            f"need {len(self.templates)} non-negative weights, not all 0 (or null)",
        )
        check_range(self.redshift, f"{p}redshift", lo=0.0, hi=Z_MAX)
        check_range(self.ebv_range_mag, f"{p}ebv_range_mag", lo=0.0, hi=EBV_MAX)
        check_between(self.ebv_mean_mag, f"{p}ebv_mean_mag", -1.0, EBV_MAX)
        check_between(self.ebv_sigma_mag, f"{p}ebv_sigma_mag", 0.0, 1.0)
        check_between(self.knot_ebv_fraction, f"{p}knot_ebv_fraction", 0.0, 1.0)
        check(
            self.igm in IGM_MODELS,
            f"{p}igm",
            f"unknown {self.igm!r} (known: {sorted(IGM_MODELS)})",
        )


@dataclass(frozen=True)
class SourceColours:
    """Colours of one drawn source: its body and its (bluer) knots.

    Attributes
    ----------
    template, knot_template : str
        SED templates of the body and the knots.
    redshift : float
        Source redshift.
    ebv_mag, knot_ebv_mag : float
        Stellar E(B-V) of the body and the knots, mag.
    g_minus_r, r_minus_z : float
        Body DECam AB colours, mag.
    knot_g_minus_r, knot_r_minus_z : float
        Knot DECam AB colours, mag.
    """

    template: str
    redshift: float
    ebv_mag: float
    g_minus_r: float
    r_minus_z: float
    knot_template: str
    knot_ebv_mag: float
    knot_g_minus_r: float
    knot_r_minus_z: float

    def flux_ratios(self, knot: bool = False) -> np.ndarray:
        """Flux per band relative to r, ``(3,)`` in :data:`BANDS` order (r entry is 1)."""
        gr, rz = (
            (self.knot_g_minus_r, self.knot_r_minus_z) if knot else (self.g_minus_r, self.r_minus_z)
        )
        out = np.ones(3)
        out[G] = 10.0 ** (-0.4 * gr)
        out[Z] = 10.0 ** (0.4 * rz)
        return out

    def band_fluxes_nmgy(self, mag_r: float, knot: bool = False) -> np.ndarray:
        """g, r, z fluxes (nmgy) of a component whose DECam r AB magnitude is ``mag_r``."""
        return self.flux_ratios(knot) * 10.0 ** (-0.4 * (float(mag_r) - AB_ZEROPOINT_MAG))


def _truncated_normal(
    rng: np.random.Generator, mean: float, sigma: float, lo: float, hi: float
) -> float:
    if sigma == 0 or lo == hi:
        return float(min(max(mean, lo), hi))
    for _ in range(1000):
        x = rng.normal(mean, sigma)
        if lo <= x <= hi:
            return float(x)
    raise ValueError(f"E(B-V) normal ({mean}, {sigma}) has almost no mass in [{lo}, {hi}]")


def draw_source_colours(
    rng: np.random.Generator,
    prior: SourceColourPrior = SourceColourPrior(),
    redshift: float | None = None,
) -> SourceColours:
    """Draw one source's template, redshift and dust, and return body and knot colours.

    Parameters
    ----------
    rng : np.random.Generator
        Random generator (draw order: template, redshift if not given, E(B-V)).
    prior : SourceColourPrior
        Distributions (validated here).
    redshift : float or None
        Source redshift when the caller has drawn it (e.g. with the lens population); else
        uniform in ``prior.redshift``.

    Returns
    -------
    SourceColours
    """
    prior.validate()
    weights = np.asarray(
        prior.weights if prior.weights is not None else [1.0] * len(prior.templates)
    )
    template = prior.templates[int(rng.choice(len(prior.templates), p=weights / weights.sum()))]
    z = float(rng.uniform(*prior.redshift)) if redshift is None else float(redshift)
    ebv = _truncated_normal(rng, prior.ebv_mean_mag, prior.ebv_sigma_mag, *prior.ebv_range_mag)
    knot_ebv = ebv * prior.knot_ebv_fraction
    gr, rz = template_colours(template, z, ebv, prior.igm)
    # the knot is the bluer (in g-r) of the youngest template and the body's own, both at the
    # knot's lower dust: never redder than the body, as dust only reddens
    knot_template = KNOT_TEMPLATE
    kgr, krz = template_colours(KNOT_TEMPLATE, z, knot_ebv, prior.igm)
    own_gr, own_rz = template_colours(template, z, knot_ebv, prior.igm)
    if own_gr < kgr:
        knot_template, kgr, krz = template, own_gr, own_rz
    return SourceColours(
        template=template,
        redshift=z,
        ebv_mag=ebv,
        g_minus_r=float(gr),
        r_minus_z=float(rz),
        knot_template=knot_template,
        knot_ebv_mag=knot_ebv,
        knot_g_minus_r=float(kgr),
        knot_r_minus_z=float(krz),
    )


def colour_span(values: Sequence[float], lo_pct: float = 5.0, hi_pct: float = 95.0) -> float:
    """Width (mag) of the ``lo_pct``-``hi_pct`` percentile range of a colour sample."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [lo_pct, hi_pct])
    return float(hi - lo)
