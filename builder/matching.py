"""Host/control matching report: do the two populations look alike after the acceptance cuts?

For each split, a two-sample Kolmogorov-Smirnov test (scipy) compares hosts and controls in the
r-band aperture flux of the parent stamp, psfsize_r and psfdepth_r. A small KS statistic (and a
p-value that is not tiny) means a model cannot tell the classes apart by these properties alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.stats import ks_2samp

COLUMNS = ("r_flux_nmgy", "psfsize_r", "psfdepth_r")
APERTURE_RADIUS_PIX = 8.0  # 2.1 arcsec: r-band aperture flux used to compare hosts and controls
_YY, _XX = np.mgrid[:64, :64] - 31.5
_R = np.hypot(_XX, _YY)
_IN = _R < APERTURE_RADIUS_PIX
_OUT = _R >= 24.0


def aperture_flux_nmgy(band: np.ndarray) -> float:
    """Background-subtracted flux within :data:`APERTURE_RADIUS_PIX` of the centre, nanomaggies.

    The background is the median of the outer annulus (r >= 24 px).
    """
    bkg = float(np.median(band[_OUT]))
    return float(band[_IN].sum() - bkg * _IN.sum())


def matching_report(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """KS statistics for rows of ``(role, r_flux_nmgy, psfsize_r, psfdepth_r)``.

    Returns
    -------
    dict
        ``n_host``, ``n_control`` and, per column, ``{"ks": D, "p_value": p, "host_median": ...,
        "control_median": ...}`` (``None`` when either class is empty).
    """
    rows = list(rows)
    host = np.array([r[1:] for r in rows if r[0] == "host"], dtype=float).reshape(-1, 3)
    ctrl = np.array([r[1:] for r in rows if r[0] == "control"], dtype=float).reshape(-1, 3)
    out: dict[str, Any] = {"n_host": int(len(host)), "n_control": int(len(ctrl))}
    for j, name in enumerate(COLUMNS):
        if len(host) == 0 or len(ctrl) == 0:
            out[name] = None
            continue
        res = ks_2samp(host[:, j], ctrl[:, j])
        out[name] = {
            "ks": round(float(res.statistic), 6),
            "p_value": float(f"{res.pvalue:.6g}"),
            "host_median": float(f"{np.median(host[:, j]):.6g}"),
            "control_median": float(f"{np.median(ctrl[:, j]):.6g}"),
        }
    return out
