"""Axis ratio and position angle of the host light, from adaptive moments of the r band.

GalSim's HSM adaptive moments (Hirata & Seljak 2003; Mandelbaum et al. 2005; Rowe et al. 2015)
give the observed shape as a reduced shear ``g``; the axis ratio is ``q = (1 - |g|)/(1 + |g|)``
and the position angle is ``beta`` of the shear, measured from +x (columns) towards +y (rows),
the same frame as the lens model. The shape includes the PSF (it is the observed light). When
HSM fails, or locks on an object away from the centre, the host is taken as round (q = 1,
angle 0) and ``measured`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np

#: Initial Gaussian sigma guess for the adaptive moments, pixels.
GUESS_SIGMA_PIX = 3.0
#: Largest accepted distance of the measured centroid from the stamp centre, pixels.
MAX_CENTROID_OFFSET_PIX = 4.0


@dataclass(frozen=True)
class HostShape:
    """Shape of the host light.

    Attributes
    ----------
    q : float
        Axis ratio (minor/major) in (0, 1].
    phi_deg : float
        Major-axis position angle in [0, 180) degrees from +x towards +y.
    measured : bool
        False when the fallback (round) shape is used.
    """

    q: float
    phi_deg: float
    measured: bool


ROUND = HostShape(q=1.0, phi_deg=0.0, measured=False)


def measure_host_shape(image_r_nmgy: np.ndarray) -> HostShape:
    """Measure the host's light shape with adaptive moments, falling back to round.

    Parameters
    ----------
    image_r_nmgy : np.ndarray
        ``(n, n)`` r-band cutout centred on the host, nmgy.

    Returns
    -------
    HostShape
        Measured shape, or :data:`ROUND` when the measurement fails.
    """
    img = np.asarray(image_r_nmgy, dtype=np.float64)
    ny, nx = img.shape
    # GalSim positions are 1-indexed: the 0-indexed centre (n-1)/2 is at (n+1)/2.
    center = galsim.PositionD((nx + 1) / 2.0, (ny + 1) / 2.0)
    moments = galsim.hsm.FindAdaptiveMom(
        galsim.Image(img, scale=1.0),
        guess_sig=GUESS_SIGMA_PIX,
        guess_centroid=center,
        strict=False,
    )
    if moments.moments_status != 0 or not np.isfinite(moments.moments_sigma):
        return ROUND
    offset = moments.moments_centroid - center
    if np.hypot(offset.x, offset.y) > MAX_CENTROID_OFFSET_PIX:
        return ROUND
    shape = moments.observed_shape
    q = float(shape.q)
    if not np.isfinite(q) or q <= 0.0:
        return ROUND
    phi_deg = float(shape.beta.deg) % 180.0
    return HostShape(q=min(q, 1.0), phi_deg=phi_deg, measured=True)
