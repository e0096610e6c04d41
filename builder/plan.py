"""Plan stage: de-duplicate ids, assign split and role, and cut each split into shard tasks.

A task is one output shard: ``(split, index)`` and the ordered list of planned samples it holds.
Samples within a split keep source order (so a task touches few chunks); every shard holds
``samples_per_shard`` planned samples except the last of its split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from builder.config import BuildConfig
from builder.parents.base import Rejection
from builder.positives import (
    EXCLUDE_STAGE,
    NEAR_KNOWN,
    NEAR_REAL,
    RealPositives,
    exclusion_reasons,
    hybrid_host_cap,
    positives_summary,
)
from builder.scan import ScanResult
from builder.splits import assign_many, scheme_record
from shards.schema import CATALOG_FIELDS, SPLITS, make_key


@dataclass(frozen=True)
class PlannedSample:
    """One sample to produce: a galaxy in a role, and where to read it.

    ``kind`` is ``"real"`` for a known lens read from the real-positive input (``source``
    ``"positives"``; ``grade`` and loss ``weight`` from :mod:`builder.positives`), ``""`` for a
    parent (injected host or control).
    """

    galaxy_id: str
    key: str
    role: str  # "host" or "control"
    chunk: int
    row: int
    location: str
    catalog: tuple[float, ...]
    kind: str = ""
    source: str = "parents"
    grade: str = ""
    weight: float = 1.0


@dataclass
class ShardTask:
    """One output shard to build."""

    split: str
    index: int
    samples: list[PlannedSample] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"


@dataclass
class Plan:
    """The full build plan."""

    tasks: list[ShardTask]
    rejections: list[Rejection]
    n_parents: int
    assignment: dict[str, dict[str, int]]
    split_scheme: dict = field(default_factory=dict)
    positives: dict = field(default_factory=dict)


def plan_build(scan: ScanResult, cfg: BuildConfig, real: RealPositives | None = None) -> Plan:
    """Turn scan results into shard tasks (pure function of the scans and the config).

    ``real`` (optional) holds the scanned real positives and the known lenses: real positives are
    planned first (so a parent with the same id is the duplicate), then the parents, minus the
    exclusions of :mod:`builder.positives`.
    """
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    per_split: dict[str, list[PlannedSample]] = {s: [] for s in SPLITS}
    assignment = {s: Counter() for s in SPLITS}
    keys_seen: set[str] = set()
    paired = cfg.splits.controls == "paired"
    pixels_of_split: dict[str, set[int]] = {s: set() for s in SPLITS}
    n_real: Counter = Counter()

    def add(sample: PlannedSample, split: str, tag_role: str) -> bool:
        if sample.key in keys_seen:  # distinct ids that sanitise to the same key: refuse
            rejections.append(
                Rejection(
                    sample.galaxy_id,
                    sample.location,
                    "bad_galaxy_id",
                    "plan",
                    f"key {sample.key} collides with another galaxy id",
                )
            )
            return False
        keys_seen.add(sample.key)
        per_split[split].append(sample)
        assignment[split][tag_role] += 1
        return True

    pos = real.scan if real is not None else None
    n_inputs = len(scan) + len(scan.rejections)
    if pos is not None:
        rejections.extend(pos.rejections)  # unreadable real positives (scan stage)
        n_inputs += len(pos) + len(pos.rejections)
    if pos is not None and len(pos):
        p_split, _, p_pix = assign_many(
            pos.galaxy_id, [c[0] for c in pos.catalog], [c[1] for c in pos.catalog], cfg.splits
        )
        for i, gid in enumerate(pos.galaxy_id):
            if gid in seen:
                rejections.append(
                    Rejection(
                        gid,
                        pos.location[i],
                        "duplicate_galaxy_id",
                        "plan",
                        f"first seen at {seen[gid]}",
                    )
                )
                continue
            seen[gid] = pos.location[i]
            split = p_split[i]
            sample = PlannedSample(
                gid,
                make_key(gid),
                "host",
                pos.chunk[i],
                pos.row[i],
                pos.location[i],
                tuple(pos.catalog[i]),
                kind="real",
                source="positives",
                grade=real.grades[i],
                weight=real.weights[i],
            )
            if add(sample, split, "real"):  # assignment counts: host (injected), real, control
                n_real[split] += 1
                if p_pix is not None:
                    pixels_of_split[split].add(int(p_pix[i]))

    ra = [c[0] for c in scan.catalog]  # CATALOG_FIELDS start with ra, dec (degrees)
    dec = [c[1] for c in scan.catalog]
    split_of, u_role, pixels = assign_many(scan.galaxy_id, ra, dec, cfg.splits)
    roles = [
        "host" if u < cfg.splits.pos_fraction[sp] else "control"
        for u, sp in zip(u_role, split_of, strict=True)
    ]
    if real is not None:
        _apply_hybrid_ratio(roles, split_of, u_role, n_real, cfg)
    if real is not None:
        near_known, near_real, sep_known, sep_real = exclusion_reasons(
            ra, dec, real, cfg.known_lenses.radius_arcsec
        )
    excluded: Counter = Counter()
    for i, gid in enumerate(scan.galaxy_id):
        loc = scan.location[i]
        if gid in seen:
            rejections.append(
                Rejection(gid, loc, "duplicate_galaxy_id", "plan", f"first seen at {seen[gid]}")
            )
            continue
        seen[gid] = loc
        split, role = split_of[i], roles[i]
        if real is not None and (near_real[i] or (near_known[i] and role == "control")):
            reason, sep = (NEAR_REAL, sep_real[i]) if near_real[i] else (NEAR_KNOWN, sep_known[i])
            excluded[reason] += 1
            rejections.append(
                Rejection(gid, loc, reason, EXCLUDE_STAGE, f"{role} at {sep:.2f} arcsec")
            )
            continue
        if pixels is not None:
            pixels_of_split[split].add(int(pixels[i]))
        for r, tag in [("host", "h"), ("control", "c")] if paired else [(role, "")]:
            sample = PlannedSample(
                galaxy_id=gid,
                key=make_key(gid, tag),
                role=r,
                chunk=scan.chunk[i],
                row=scan.row[i],
                location=loc,
                catalog=tuple(scan.catalog[i]),
            )
            if not add(sample, split, r):
                break
    k = cfg.output.samples_per_shard
    tasks: list[ShardTask] = []
    for split in SPLITS:
        samples = per_split[split]
        for index, start in enumerate(range(0, len(samples), k)):
            tasks.append(ShardTask(split, index, samples[start : start + k]))
    n_injected = {s: assignment[s].get("host", 0) for s in SPLITS}
    return Plan(
        tasks=tasks,
        rejections=rejections,
        n_parents=n_inputs,
        assignment={s: dict(c) for s, c in assignment.items()},
        split_scheme=_scheme_summary(cfg, pixels_of_split if pixels is not None else None),
        positives=(
            positives_summary(real, cfg.positives, cfg.known_lenses, n_real, n_injected, excluded)
            if real is not None
            else {}
        ),
    )


def _apply_hybrid_ratio(
    roles: list[str], split_of: list[str], u_role: list[float], n_real: Counter, cfg: BuildConfig
) -> None:
    """Turn surplus injected hosts into controls so each split meets ``positives.real_fraction``.

    The hosts kept are those with the smallest role uniforms, so the choice is per galaxy.
    """
    if cfg.positives.real_fraction is None:
        return
    for split in SPLITS:
        cap = hybrid_host_cap(n_real[split], cfg.positives.real_fraction)
        hosts = sorted(
            (u_role[i], i) for i, r in enumerate(roles) if r == "host" and split_of[i] == split
        )
        for _, i in hosts[cap:]:
            roles[i] = "control"


def _scheme_summary(cfg: BuildConfig, pixels_of_split: dict[str, set[int]] | None) -> dict:
    """The manifest's ``split_scheme``: scheme, nside and pixels per split (healpix)."""
    rec = scheme_record(cfg.splits)
    if pixels_of_split is not None:
        rec["n_pixels"] = {s: len(pixels_of_split[s]) for s in SPLITS}
    return rec


def catalog_dict(sample: PlannedSample) -> dict[str, float]:
    """Catalog values of a planned sample as a dict keyed by :data:`CATALOG_FIELDS`."""
    return dict(zip(CATALOG_FIELDS, sample.catalog, strict=True))
