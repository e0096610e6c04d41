"""Host measurements: shape from adaptive moments of the r band, r magnitude from an aperture.

GalSim's HSM adaptive moments (Hirata & Seljak 2003; Mandelbaum et al. 2005; Rowe et al. 2015)
give the observed shape as a reduced shear ``g``; the axis ratio is ``q = (1 - |g|)/(1 + |g|)``
and the position angle is ``beta`` of the shear, measured from +x (columns) towards +y (rows),
the same frame as the lens model. The shape includes the PSF (it is the observed light). When
HSM fails, or locks on an object away from the centre, the host is taken as round (q = 1,
angle 0) and ``measured`` is False.
"""

from __future__ import annotations

import math
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


#: Radius of the aperture of :func:`measure_host_mag_r`, pixels (3 arcsec at 0.262"/pix).
HOST_APERTURE_RADIUS_PIX = 11.5
#: Inner radius of the background annulus of :func:`measure_host_mag_r`, pixels.
HOST_SKY_INNER_RADIUS_PIX = 24.0
#: Magnitude given to a host with no positive aperture flux (a faint, distant galaxy).
FAINT_HOST_MAG_R = 24.0


def measure_host_mag_r(image_r_nmgy: np.ndarray) -> float:
    """Apparent r magnitude (AB) of the central galaxy from a 3" radius aperture.

    The aperture sum (radius :data:`HOST_APERTURE_RADIUS_PIX` around the stamp centre) minus
    the median of the pixels beyond :data:`HOST_SKY_INNER_RADIUS_PIX` times the aperture area,
    as ``22.5 - 2.5 log10(flux_nmgy)``. A 3" radius holds most of an LRG's light at DR10
    depth; neighbours inside it make the host brighter, as they would in a catalogue
    aperture magnitude. No positive flux gives :data:`FAINT_HOST_MAG_R`.

    Parameters
    ----------
    image_r_nmgy : np.ndarray
        ``(n, n)`` r-band cutout, nmgy.

    Returns
    -------
    float
        Magnitude, AB.
    """
    img = np.asarray(image_r_nmgy, dtype=np.float64)
    ny, nx = img.shape
    yy, xx = np.mgrid[:ny, :nx]
    r = np.hypot(yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0)
    aperture = r <= HOST_APERTURE_RADIUS_PIX
    sky = r >= HOST_SKY_INNER_RADIUS_PIX
    finite = np.isfinite(img)
    background = float(np.median(img[sky & finite])) if np.any(sky & finite) else 0.0
    flux = float(np.sum(img[aperture & finite] - background))
    if not (math.isfinite(flux) and flux > 0):
        return FAINT_HOST_MAG_R
    return 22.5 - 2.5 * math.log10(flux)
