"""Real positives and known-lens exclusions: the configs and the planning steps behind
``builder make-shards --positives PATH --known-lenses CSV``.

* **Real positives** (``positives.path``, any registered parent kind read with its
  ``input.<kind>`` section) become label-1 samples with ``kind: real`` in their metadata (injected
  ones carry ``kind: injected``). Each gets a ``grade`` and a loss ``weight``: the grade is that of
  the nearest row of the known-lens CSV within ``positives.match_radius_arcsec`` (its optional
  ``grade`` column), mapped through ``positives.grade_weights``; without a grade the weight is
  ``positives.default_weight``. A grade missing from the mapping is an error, never a silent
  default.
* **Hybrid ratio** (``positives.real_fraction``): when set, each split keeps at most
  ``n_real (1 - f) / f`` injected hosts (those with the smallest role uniform); the other planned
  hosts become controls. ``f = 1`` trains on real positives only; unset keeps every injected host.
* **Exclusions**: a control within ``known_lenses.radius_arcsec`` of a known lens (CSV) or of a
  real positive is excluded, and so is a parent of any role that close to a real positive (the
  same object, or a neighbour sharing its stamp). Each exclusion is a ``rejects.jsonl`` row with
  stage ``exclude`` (reason ``near_known_lens`` / ``near_real_positive``), counted in the
  manifest and not counted against ``rejects.max_reject_fraction``.

Splits of real positives follow the same scheme as the parents (:mod:`builder.splits`), so with
``healpix`` a known lens and its neighbours share a split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder.errors import SourceError
from builder.parents.registry import PARENT_KINDS, get_parent_kind
from common.checksum import file_sha256
from common.configio import check, check_between
from common.crossmatch import KnownLensError, KnownLenses, match_coords, read_known_lenses

EXCLUDE_STAGE = "exclude"
NEAR_KNOWN = "near_known_lens"
NEAR_REAL = "near_real_positive"
# Half the diagonal of a 64-pixel stamp at 0.262"/pix is 11.86": a known lens anywhere in a
# control's cutout is within 12" of its centre.
DEFAULT_RADIUS_ARCSEC = 12.0


def _default_grade_weights() -> dict[str, float]:
    # DESI Legacy Imaging lens-candidate grades (A/B/C) and their words.
    return {
        "A": 1.0,
        "B": 0.5,
        "C": 0.25,
        "confident": 1.0,
        "probable": 0.5,
        "possible": 0.25,
    }


@dataclass
class PositivesConfig:
    """Real (known) lenses added as label-1 samples.

    Attributes
    ----------
    path : str or None
        File or directory of real positives (``--positives``); None: injected positives only.
    kind : str or None
        Its parent kind (``--positives-format``; detected from the path when None).
    real_fraction : float or None
        Hybrid ratio: target fraction of real among a split's positives, in (0, 1]; None keeps
        every injected host.
    grade_weights : dict
        Grade (as written in the known-lens CSV) -> loss weight (> 0).
    default_weight : float
        Weight of a real positive without a grade (> 0).
    match_radius_arcsec : float
        Radius within which a real positive takes the grade of a known-lens CSV row.
    """

    path: str | None = None
    kind: str | None = None
    real_fraction: float | None = None
    grade_weights: dict[str, float] = field(default_factory=_default_grade_weights)
    default_weight: float = 1.0
    match_radius_arcsec: float = 2.0

    def validate(self, prefix: str = "positives") -> None:
        if self.kind is not None:
            kinds = [k for k, v in PARENT_KINDS.items() if v.reader is not None]
            check(self.kind in kinds, f"{prefix}.kind", f"must be one of {kinds}")
        if self.real_fraction is not None:
            check(
                0.0 < self.real_fraction <= 1.0,
                f"{prefix}.real_fraction",
                f"must be in (0, 1] (got {self.real_fraction})",
            )
        for grade, w in self.grade_weights.items():
            check(float(w) > 0, f"{prefix}.grade_weights.{grade}", f"must be > 0 (got {w})")
        check(self.default_weight > 0, f"{prefix}.default_weight", "must be > 0")
        check_between(self.match_radius_arcsec, f"{prefix}.match_radius_arcsec", 0.0, 60.0)


@dataclass
class KnownLensConfig:
    """Known lenses kept out of the controls.

    Attributes
    ----------
    path : str or None
        CSV with ``ra``, ``dec`` (deg) and optional ``name``, ``grade`` (``--known-lenses``).
    radius_arcsec : float
        Controls within this distance of a known lens (or of a real positive) are excluded;
        default 12" (half the diagonal of a 64 x 64 stamp at 0.262"/pix).
    """

    path: str | None = None
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC

    def validate(self, prefix: str = "known_lenses") -> None:
        check_between(self.radius_arcsec, f"{prefix}.radius_arcsec", 0.0, 600.0)


def load_known_lenses(cfg: KnownLensConfig) -> KnownLenses:
    """The configured known-lens CSV (empty when none); unreadable -> :class:`SourceError`."""
    if not cfg.path:
        return KnownLenses(np.zeros(0), np.zeros(0))
    try:
        return read_known_lenses(cfg.path)
    except KnownLensError as exc:
        raise SourceError(str(exc)) from None


def known_lens_description(cfg: KnownLensConfig) -> dict[str, Any] | None:
    """What identifies the known-lens CSV in the build fingerprint (name and sha256)."""
    if not cfg.path:
        return None
    p = Path(cfg.path)
    if not p.is_file():
        raise SourceError(f"{p}: known-lens file not found")
    return {"path": p.name, "sha256": file_sha256(p)}


def positives_kind(cfg: PositivesConfig) -> str:
    """The parent kind of the real positives (configured, else detected from the path)."""
    from builder.parents.registry import detect_kind

    kind = cfg.kind or detect_kind(cfg.path)
    if get_parent_kind(kind).reader is None:
        raise SourceError(f"positives: kind {kind!r} is generated, not read from a path")
    return kind


@dataclass
class RealPositives:
    """Everything the plan needs about real positives and known lenses.

    Attributes
    ----------
    scan : ScanResult or None
        Scan of the real-positive input (None without ``--positives``).
    known : KnownLenses
        The known-lens CSV (possibly empty).
    grades, weights : list
        Per scanned real positive, its grade ("" if none) and loss weight.
    """

    scan: Any
    known: KnownLenses
    grades: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def grade_positives(scan: Any, known: KnownLenses, cfg: PositivesConfig) -> RealPositives:
    """Grade and weight each scanned real positive from the nearest known-lens CSV row.

    Raises
    ------
    SourceError
        A matched grade that ``positives.grade_weights`` does not map (names the grade, the
        positive and the CSV).
    """
    out = RealPositives(scan, known)
    if scan is None:
        return out
    ra = [c[0] for c in scan.catalog]
    dec = [c[1] for c in scan.catalog]
    idx, _ = match_coords(ra, dec, known.ra_deg, known.dec_deg, cfg.match_radius_arcsec)
    for gid, j in zip(scan.galaxy_id, idx.tolist(), strict=True):
        grade = "" if j < 0 or known.grade is None else str(known.grade[j])
        if not grade:
            out.grades.append("")
            out.weights.append(float(cfg.default_weight))
            continue
        if grade not in cfg.grade_weights:
            raise SourceError(
                f"positives: real positive {gid} has grade {grade!r} (from {known.path}), which "
                f"positives.grade_weights does not map (it maps {sorted(cfg.grade_weights)})"
            )
        out.grades.append(grade)
        out.weights.append(float(cfg.grade_weights[grade]))
    return out


def exclusion_reasons(
    ra_deg: list[float], dec_deg: list[float], real: RealPositives, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each parent: near a known lens? near a real positive? and the separations (arcsec)."""
    near_known_idx, sep_known = match_coords(
        ra_deg, dec_deg, real.known.ra_deg, real.known.dec_deg, radius_arcsec
    )
    if real.scan is not None and len(real.scan):
        pra = [c[0] for c in real.scan.catalog]
        pdec = [c[1] for c in real.scan.catalog]
    else:
        pra, pdec = [], []
    near_real_idx, sep_real = match_coords(ra_deg, dec_deg, pra, pdec, radius_arcsec)
    return near_known_idx >= 0, near_real_idx >= 0, sep_known, sep_real


def hybrid_host_cap(n_real: int, real_fraction: float | None) -> int | None:
    """Most injected hosts a split keeps so that real / (real + injected) >= ``real_fraction``."""
    if real_fraction is None:
        return None
    return int(np.floor(n_real * (1.0 - real_fraction) / real_fraction + 1e-9))


def positives_summary(
    real: RealPositives,
    cfg_pos: PositivesConfig,
    cfg_known: KnownLensConfig,
    n_real: dict[str, int],
    n_injected: dict[str, int],
    excluded: Counter,
) -> dict[str, Any]:
    """The manifest's ``positives`` record: counts by split and grade, weights, exclusions."""
    return {
        "real_fraction": cfg_pos.real_fraction,
        "n_real_planned": dict(n_real),
        "n_injected_planned": dict(n_injected),
        "n_real_by_grade": dict(sorted(Counter(g or "(none)" for g in real.grades).items())),
        "grade_weights": dict(sorted(cfg_pos.grade_weights.items())),
        "default_weight": cfg_pos.default_weight,
        "known_lenses": {
            "file": Path(cfg_known.path).name if cfg_known.path else None,
            "n": len(real.known),
            "radius_arcsec": cfg_known.radius_arcsec,
            "excluded": {NEAR_KNOWN: excluded[NEAR_KNOWN], NEAR_REAL: excluded[NEAR_REAL]},
        },
    }


def positives_spec(cfg: Any, context: Any) -> Any:
    """:class:`~builder.parents.open.SourceSpec` of the real positives (None without them).

    ``cfg`` is the :class:`~builder.config.BuildConfig`; the reader gets the ``input.<kind>``
    section of the positives' kind and the build's reader ``context``.
    """
    from builder.parents.open import SourceSpec

    if not cfg.positives.path:
        return None
    kind = positives_kind(cfg.positives)
    return SourceSpec(kind, str(Path(cfg.positives.path)), cfg.input.section(kind), context)


def describe_real_inputs(cfg: Any, context: Any) -> dict[str, Any]:
    """Fingerprint entries of the real-positive input and the known-lens CSV ({} without)."""
    from builder.build import source_description

    out: dict[str, Any] = {}
    spec = positives_spec(cfg, context)
    if spec is not None:
        out["positives"] = source_description(spec)
    known = known_lens_description(cfg.known_lenses)
    if known is not None:
        out["known_lenses"] = known
    return out


def prepare_real(cfg: Any, context: Any, executor: Any) -> RealPositives | None:
    """Scan and grade the real positives and read the known lenses (None when neither given)."""
    from builder.scan import scan_source

    spec = positives_spec(cfg, context)
    if spec is None and not cfg.known_lenses.path:
        return None
    known = load_known_lenses(cfg.known_lenses)
    scan = None if spec is None else scan_source(spec, context.limits, executor=executor)
    return grade_positives(scan, known, cfg.positives)
