"""LensPop-style visibility of an injected arc (Collett 2015, ApJ 811, 20, sect. 3).

A lensed source counts as *visible* (detectable by eye or by a finder in the survey data) when

1. **S/N**: in an inverse-variance-weighted stack of the ``bands`` (default g + r), the arc's
   S/N summed over the pixels where the stacked arc exceeds 1 sigma of the stacked noise,
   ``S/N = sum_{i in M} s_i / sqrt(sum_{i in M} sigma_i^2)``, ``M = {i : s_i > sigma_i}``, is at
   least ``min_snr`` (default 20, Collett's threshold);
2. **resolved**: ``theta_E^2 > r_e^2 + (FWHM / 2)^2`` (the images are separated from the lens
   light by more than the seeing-convolved source size);
3. **stretched**: ``mu r_e > FWHM / 2`` (the arc is tangentially extended beyond the seeing);
4. **magnified**: ``mu >= min_magnification`` (``injection.min_magnification``, default 3;
   Collett's ``mu_tot >= 3``).

The stack of bands ``b`` with per-pixel noise variance ``v_b = sigma_b^2 + a_b / gain_b`` (sky plus
the arc's own shot noise) is ``s = sum_b w_b a_b / sum_b w_b`` with ``w_b = 1 / v_b``, of variance
``1 / sum_b w_b``. ``FWHM`` is the widest PSF of the stacked bands, ``r_e`` the source's
half-light radius and ``mu`` the total magnification (lensed / unlensed flux, before the PSF).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.configio import check, check_between
from shards.schema import BANDS


@dataclass(frozen=True)
class VisibilityConfig:
    """Acceptance of a positive by visibility (``injection.visibility``).

    Attributes
    ----------
    min_snr : float
        Stacked S/N over the pixels above 1 sigma, at least. Default 20 (Collett 2015).
    bands : tuple[str, ...]
        Bands of the inverse-variance stack. Default ``("g", "r")``.
    require_resolved, require_stretched : bool
        Apply the resolved / stretched criteria. Default True.
    hard_fraction : float
        Fraction of positives drawn on purpose *without* the visibility cut (only
        ``hard_min_snr`` and the magnification / image-count cuts apply); they are flagged
        ``hard_positive`` and their ``visible`` flag is recorded honestly. Default 0.
    hard_min_snr : float
        Stacked S/N floor of the hard positives. Default 5.
    """

    min_snr: float = 20.0
    bands: tuple[str, ...] = ("g", "r")
    require_resolved: bool = True
    require_stretched: bool = True
    hard_fraction: float = 0.0
    hard_min_snr: float = 5.0

    def validate(self, prefix: str = "injection.visibility") -> None:
        """Raise :class:`~common.configio.ConfigError` naming the first invalid key."""
        p = f"{prefix}." if prefix else ""
        check_between(self.min_snr, f"{p}min_snr", 0.0, 1e4)
        check(
            isinstance(self.bands, list | tuple)
            and len(self.bands) > 0
            and all(b in BANDS for b in self.bands)
            and len(set(self.bands)) == len(self.bands),
            f"{p}bands",
            f"expected distinct band names from {', '.join(BANDS)}, got {self.bands!r}",
        )
        check_between(self.hard_fraction, f"{p}hard_fraction", 0.0, 1.0)
        check_between(self.hard_min_snr, f"{p}hard_min_snr", 0.0, 1e4)


@dataclass(frozen=True)
class Visibility:
    """The visibility quantities of one arc (all recorded in the positive's metadata).

    Attributes
    ----------
    snr : float
        Stacked S/N over the pixels above 1 sigma (0 when no pixel is).
    n_pix_above_1sigma : int
        Number of those pixels.
    resolved, stretched, magnified : bool
        The criteria of the module docstring.
    fwhm_arcsec : float
        PSF FWHM used (widest of the stacked bands).
    visible : bool
        All criteria met (S/N at least ``min_snr``, plus the required ones).
    """

    snr: float
    n_pix_above_1sigma: int
    resolved: bool
    stretched: bool
    magnified: bool
    fwhm_arcsec: float
    visible: bool

    def as_params(self) -> dict[str, Any]:
        """Metadata entries (``vis_*`` and ``visible``)."""
        return {
            "vis_snr": self.snr,
            "vis_n_pix": self.n_pix_above_1sigma,
            "vis_resolved": self.resolved,
            "vis_stretched": self.stretched,
            "vis_magnified": self.magnified,
            "vis_fwhm_arcsec": self.fwhm_arcsec,
            "visible": self.visible,
        }


def stacked_snr_above_1sigma(
    arc_nmgy: np.ndarray,
    sigma_nmgy: Sequence[float],
    gain_e_per_nmgy: Sequence[float] | None = None,
) -> tuple[float, int]:
    """Arc S/N over the pixels above 1 sigma of an inverse-variance stack of bands.

    Parameters
    ----------
    arc_nmgy : np.ndarray
        ``(B, n, n)`` noiseless PSF-convolved arc of the stacked bands, nmgy per pixel.
    sigma_nmgy : Sequence[float]
        Per-pixel background sigma of each band, nmgy (> 0).
    gain_e_per_nmgy : Sequence[float] or None
        Effective gain per band; adds the arc's shot noise ``a / gain`` to the variance
        (None: background only).

    Returns
    -------
    snr : float
        ``sum_M s / sqrt(sum_M sigma^2)`` over ``M = {s > sigma}`` (0 if ``M`` is empty).
    n_pix : int
        Size of ``M``.
    """
    arc = np.asarray(arc_nmgy, dtype=np.float64)
    sigma = np.asarray(sigma_nmgy, dtype=np.float64)
    if arc.ndim != 3 or arc.shape[0] != sigma.size:
        raise ValueError(f"arc {arc.shape} and sigma {sigma.shape} disagree on the bands")
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ValueError(f"sigma_nmgy must be finite and > 0, got {sigma_nmgy!r}")
    variance = np.broadcast_to(np.square(sigma)[:, None, None], arc.shape).copy()
    if gain_e_per_nmgy is not None:
        gain = np.asarray(gain_e_per_nmgy, dtype=np.float64)[:, None, None]
        variance += np.maximum(arc, 0.0) / gain
    weight = 1.0 / variance
    wsum = weight.sum(axis=0)
    stack = (weight * arc).sum(axis=0) / wsum
    stack_var = 1.0 / wsum
    above = stack * stack > stack_var
    above &= stack > 0
    n = int(np.count_nonzero(above))
    if n == 0:
        return 0.0, 0
    return float(stack[above].sum() / np.sqrt(stack_var[above].sum())), n


def measure_visibility(
    arc_nmgy: np.ndarray,
    sigma_nmgy: Sequence[float],
    gain_e_per_nmgy: Sequence[float],
    fwhm_arcsec: Sequence[float],
    theta_e_arcsec: float,
    source_re_arcsec: float,
    magnification: float,
    cfg: VisibilityConfig,
    min_magnification: float = 3.0,
) -> Visibility:
    """All visibility criteria of one arc (see the module docstring).

    Parameters
    ----------
    arc_nmgy : np.ndarray
        ``(3, n, n)`` noiseless PSF-convolved arc in :data:`shards.schema.BANDS` order, nmgy.
    sigma_nmgy, gain_e_per_nmgy, fwhm_arcsec : Sequence[float]
        Per band (``BANDS`` order): background sigma per pixel (nmgy), gain (e-/nmgy), PSF FWHM.
    theta_e_arcsec : float
        Einstein radius.
    source_re_arcsec : float
        Unlensed half-light radius of the source.
    magnification : float
        Total magnification.
    cfg : VisibilityConfig
        Thresholds and the stacked bands.
    min_magnification : float
        The magnification criterion.

    Returns
    -------
    Visibility
    """
    idx = [BANDS.index(b) for b in cfg.bands]
    snr, n_pix = stacked_snr_above_1sigma(
        np.asarray(arc_nmgy)[idx],
        [float(sigma_nmgy[i]) for i in idx],
        [float(gain_e_per_nmgy[i]) for i in idx],
    )
    fwhm, resolved, stretched, magnified = _geometry(
        fwhm_arcsec, theta_e_arcsec, source_re_arcsec, magnification, cfg, min_magnification
    )
    visible = snr >= cfg.min_snr and _geometry_ok(resolved, stretched, magnified, cfg)
    return Visibility(
        snr=snr,
        n_pix_above_1sigma=n_pix,
        resolved=bool(resolved),
        stretched=bool(stretched),
        magnified=bool(magnified),
        fwhm_arcsec=fwhm,
        visible=bool(visible),
    )


def _geometry(
    fwhm_arcsec: Sequence[float],
    theta_e_arcsec: float,
    source_re_arcsec: float,
    magnification: float,
    cfg: VisibilityConfig,
    min_magnification: float,
) -> tuple[float, bool, bool, bool]:
    """FWHM of the stack and the resolved, stretched and magnified criteria (no image needed)."""
    fwhm = max(float(fwhm_arcsec[BANDS.index(b)]) for b in cfg.bands)
    half = 0.5 * fwhm
    resolved = theta_e_arcsec**2 > source_re_arcsec**2 + half**2
    stretched = magnification * source_re_arcsec > half
    magnified = magnification >= min_magnification
    return fwhm, bool(resolved), bool(stretched), bool(magnified)


def _geometry_ok(resolved: bool, stretched: bool, magnified: bool, cfg: VisibilityConfig) -> bool:
    return (
        magnified
        and (resolved or not cfg.require_resolved)
        and (stretched or not cfg.require_stretched)
    )


def can_be_visible(
    fwhm_arcsec: Sequence[float],
    theta_e_arcsec: float,
    source_re_arcsec: float,
    magnification: float,
    cfg: VisibilityConfig,
    min_magnification: float = 3.0,
) -> bool:
    """Whether the criteria that need no image (resolved, stretched, magnified) all hold.

    When this is False, :func:`measure_visibility` returns ``visible=False`` for any arc with
    these values (same arithmetic), so the sampler rejects such a draw before convolving it.
    Parameters as for :func:`measure_visibility`.
    """
    _, resolved, stretched, magnified = _geometry(
        fwhm_arcsec, theta_e_arcsec, source_re_arcsec, magnification, cfg, min_magnification
    )
    return _geometry_ok(resolved, stretched, magnified, cfg)
