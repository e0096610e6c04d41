"""The build's one PSF-model parameter, shared by the parent readers and the injection
(top-level ``psf:`` section of the build config).

The model PSF of a band is a Moffat profile with FWHM = the catalog ``psfsize_<b>`` and the index
``psf.moffat_beta`` given here: the parent readers use its noise-equivalent area to estimate a
missing ``psfdepth_<b>``, and the injection convolves the arc with it, unless the parent brings
its own PSF (PSF images, or per-band indices such as the synthetic sky's, which draws them from
``input.synthetic.moffat_beta_range``: :mod:`builder.parents.psf_input`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.configio import check

DEFAULT_MOFFAT_BETA = 3.5
"""Moffat index of the DR10 model PSF (Tractor's PSFs are close to beta 3.5 in the core)."""

MIN_MOFFAT_BETA = 1.1
"""Lower bound: GalSim's Moffat needs beta > 1.1, and the NEA integral diverges as beta -> 1."""


@dataclass
class PsfConfig:
    """Model PSF of every band.

    Attributes
    ----------
    moffat_beta : float
        Moffat index (dimensionless) of the model PSF, > 1.1. Default 3.5.
    """

    moffat_beta: float = DEFAULT_MOFFAT_BETA

    def validate(self, prefix: str = "psf") -> None:
        """Raise :class:`~common.configio.ConfigError` naming ``psf.moffat_beta`` if invalid."""
        key = f"{prefix}.moffat_beta" if prefix else "moffat_beta"
        beta = self.moffat_beta
        check(
            math.isfinite(beta) and beta > MIN_MOFFAT_BETA,
            key,
            f"Moffat beta must be a finite number > {MIN_MOFFAT_BETA} (got {beta})",
        )
