"""Known-lens recovery of a scoring pass: which known lenses were scored, at what rank, kept where.

Each known lens (:func:`common.crossmatch.read_known_lenses`) is matched to its nearest scored
galaxy within ``radius_arcsec`` (astropy ``SkyCoord`` matching, :func:`common.crossmatch.
match_coords`). A matched lens is *recovered* at a threshold when its galaxy's logit is at or
above it. Lenses outside the scored sample (no galaxy within the radius, e.g. rejected parents or
another footprint) are counted separately and never as misses of the model.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_open
from common.crossmatch import KnownLenses, match_coords
from train.metrics import clopper_pearson

__all__ = ["KNOWN_LENSES_NAME", "known_lens_recovery"]

KNOWN_LENSES_NAME = "known_lenses.csv"


def known_lens_recovery(
    known: KnownLenses,
    scores: Any,
    thresholds: Mapping[str, float],
    radius_arcsec: float,
    out_csv: str | Path | None = None,
) -> dict[str, Any]:
    """Recovery counts of ``known`` among ``scores`` at each threshold.

    Parameters
    ----------
    known : KnownLenses
        Known-lens positions (names and grades are carried into the CSV).
    scores : train.score_outputs.Assembled
        The scored galaxies (``ra``, ``dec``, ``logit``, ``rank``, ``galaxy_id``).
    thresholds : mapping
        Name -> logit threshold (``+inf`` selects nothing).
    radius_arcsec : float
        Match radius.
    out_csv : path, optional
        Write one row per known lens (match, separation, rank, logit, recovered per threshold).

    Returns
    -------
    dict
        ``{"n_known", "n_matched", "n_unmatched", "radius_arcsec", "ranks" (of matched lenses,
        ascending), "at_threshold": {name: {"logit", "n_recovered", "fraction", "interval_95"}}}``
        where ``fraction`` is of the matched lenses, with a Clopper-Pearson 95% interval.
    """
    idx, sep = match_coords(known.ra_deg, known.dec_deg, scores.ra, scores.dec, radius_arcsec)
    matched = idx >= 0
    n_matched = int(matched.sum())
    logit = np.full(len(known), np.nan)
    rank = np.full(len(known), -1, np.int64)
    logit[matched] = scores.logit[idx[matched]]
    rank[matched] = scores.rank[idx[matched]]
    at: dict[str, Any] = {}
    for name, t in thresholds.items():
        k = int(np.count_nonzero(matched & (logit >= t)))
        lo, hi = (float(v) for v in clopper_pearson(k, n_matched)) if n_matched else (0.0, 1.0)
        at[name] = {
            "logit": None if not math.isfinite(t) else float(t),
            "n_recovered": k,
            "fraction": k / n_matched if n_matched else None,
            "interval_95": [lo, hi] if n_matched else None,
        }
    if out_csv is not None:
        with atomic_open(out_csv, "w") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(
                ["index", "name", "grade", "ra", "dec", "galaxy_id", "sep_arcsec", "rank", "logit"]
                + [f"recovered_{n}" for n in thresholds]
            )
            for i in range(len(known)):
                hit = bool(matched[i])
                w.writerow(
                    [
                        i,
                        known.name[i] if known.name is not None else "",
                        known.grade[i] if known.grade is not None else "",
                        f"{known.ra_deg[i]:.7f}",
                        f"{known.dec_deg[i]:.7f}",
                        scores.galaxy_id[idx[i]] if hit else "",
                        f"{sep[i]:.3f}" if math.isfinite(sep[i]) else "",
                        int(rank[i]) if hit else "",
                        f"{float(logit[i]):.6g}" if hit else "",
                    ]
                    + [int(hit and logit[i] >= t) for t in thresholds.values()]
                )
    return {
        "n_known": len(known),
        "n_matched": n_matched,
        "n_unmatched": len(known) - n_matched,
        "radius_arcsec": float(radius_arcsec),
        "ranks": sorted(int(r) for r in rank[matched]),
        "at_threshold": at,
    }
