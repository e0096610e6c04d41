"""Cosmological distances for lensing: named astropy cosmologies, a distance table, SIE theta_E.

``theta_E = 4 pi (sigma_v/c)^2 D_ls / D_s`` (Kormann, Schneider & Bartelmann 1994) with
angular-diameter distances of a named cosmology (default Planck18). Distances come from a
comoving-distance table of the cosmology (0.001 steps in z up to 10, built once per cosmology);
``tests/test_population.py`` checks them against ``astropy.cosmology`` directly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import astropy.cosmology as apc
import numpy as np
from astropy import units as u
from astropy.constants import c as speed_of_light

#: Speed of light, km/s.
C_KMS = float(speed_of_light.to_value(u.km / u.s))
#: One radian in arcsec.
ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0

#: Cosmologies by name. Add one: a new entry name -> zero-argument factory.
COSMOLOGIES: dict[str, Callable[[], apc.Cosmology]] = {
    **{name: functools.partial(getattr, apc, name) for name in apc.realizations.available},
    "FlatLambdaCDM_H70_Om0.3": lambda: apc.FlatLambdaCDM(H0=70.0, Om0=0.3),
}
#: Default cosmology (Planck Collaboration 2020, Paper VI, TT,TE,EE+lowE+lensing+BAO).
DEFAULT_COSMOLOGY = "Planck18"

#: Highest redshift of the distance table.
Z_TABLE_MAX = 10.0
_Z_TABLE_STEP = 1e-3


class DistanceTable:
    """Angular-diameter distances and distance moduli of one cosmology, by table interpolation.

    The transverse comoving distance ``D_M(z)`` is tabulated once (0.001 steps up to z = 10) with
    astropy; ``D_A(z1, z2)`` uses the exact relation for any curvature
    ``D_A12 = [D_M2 sqrt(1 + Ok D_M1^2 / D_H^2) - D_M1 sqrt(1 + Ok D_M2^2 / D_H^2)] / (1 + z2)``
    (Hogg 1999, eq. 19), which needs ``Ok0 >= 0``.

    Parameters
    ----------
    name : str
        Key of :data:`COSMOLOGIES`.
    """

    def __init__(self, name: str):
        if name not in COSMOLOGIES:
            raise ValueError(f"unknown cosmology {name!r}; known: {sorted(COSMOLOGIES)}")
        cosmo = COSMOLOGIES[name]()
        if cosmo.Ok0 < 0:
            raise ValueError(f"cosmology {name!r} is closed (Ok0 < 0); not supported")
        self.name = name
        self.cosmology = cosmo
        self._ok = float(cosmo.Ok0)
        self._dh_mpc = float((speed_of_light / cosmo.H0).to_value(u.Mpc))
        self._z = np.arange(0.0, Z_TABLE_MAX + _Z_TABLE_STEP / 2, _Z_TABLE_STEP)
        self._dm_mpc = cosmo.comoving_transverse_distance(self._z).to_value(u.Mpc)

    def _dm(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if np.any((z < 0) | (z > Z_TABLE_MAX)):
            raise ValueError(f"redshift outside [0, {Z_TABLE_MAX}]")
        return np.interp(z, self._z, self._dm_mpc)

    def angular_diameter_distance_mpc(self, z1: Any, z2: Any | None = None) -> np.ndarray:
        """``D_A(0, z1)``, or ``D_A(z1, z2)`` between two redshifts when ``z2`` is given, Mpc."""
        if z2 is None:
            z1 = np.asarray(z1, dtype=np.float64)
            return self._dm(z1) / (1.0 + z1)
        z2 = np.asarray(z2, dtype=np.float64)
        d1, d2 = self._dm(z1), self._dm(z2)
        k = self._ok / self._dh_mpc**2
        return (d2 * np.sqrt(1.0 + k * d1 * d1) - d1 * np.sqrt(1.0 + k * d2 * d2)) / (1.0 + z2)

    def distance_modulus_mag(self, z: Any) -> np.ndarray:
        """``5 log10(D_L / 10 pc)`` with ``D_L = (1 + z) D_M``, mag (``z > 0``)."""
        z = np.asarray(z, dtype=np.float64)
        d_l_pc = (1.0 + z) * self._dm(z) * 1e6
        return 5.0 * np.log10(d_l_pc / 10.0)


@functools.cache
def distance_table(name: str = DEFAULT_COSMOLOGY) -> DistanceTable:
    """The :class:`DistanceTable` of cosmology ``name`` (built once, cached)."""
    return DistanceTable(name)


def sie_theta_e_arcsec(
    sigma_v_kms: Any, z_lens: Any, z_source: Any, cosmology: str = DEFAULT_COSMOLOGY
) -> np.ndarray:
    """Einstein radius of a singular isothermal lens, ``4 pi (sigma/c)^2 D_ls / D_s``.

    Parameters
    ----------
    sigma_v_kms : float or array
        Velocity dispersion, km/s (>= 0).
    z_lens, z_source : float or array
        Lens and source redshifts (broadcast together).
    cosmology : str
        Key of :data:`COSMOLOGIES`.

    Returns
    -------
    np.ndarray
        theta_E in arcsec (0-d for scalar input); exactly 0 where ``z_source <= z_lens``.
    """
    sigma = np.asarray(sigma_v_kms, dtype=np.float64)
    if np.any(~np.isfinite(sigma) | (sigma < 0)):
        raise ValueError(f"sigma_v_kms must be finite and >= 0, got {sigma_v_kms!r}")
    zl, zs = np.broadcast_arrays(
        np.asarray(z_lens, dtype=np.float64), np.asarray(z_source, dtype=np.float64)
    )
    table = distance_table(cosmology)
    behind = zs > zl
    zs_safe = np.where(behind, zs, zl + 1.0)  # keeps D_s > 0 where the result is set to 0
    ratio = table.angular_diameter_distance_mpc(zl, zs_safe) / table.angular_diameter_distance_mpc(
        zs_safe
    )
    theta = 4.0 * math.pi * (sigma / C_KMS) ** 2 * ratio * ARCSEC_PER_RAD
    return np.where(behind, theta, 0.0)
