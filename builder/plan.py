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
from builder.scan import ScanResult
from builder.splits import assign
from shards.schema import CATALOG_FIELDS, SPLITS, make_key


@dataclass(frozen=True)
class PlannedSample:
    """One sample to produce: a galaxy in a role, and where to read it."""

    galaxy_id: str
    key: str
    role: str  # "host" or "control"
    chunk: int
    row: int
    location: str
    catalog: tuple[float, ...]


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


def plan_build(scan: ScanResult, cfg: BuildConfig) -> Plan:
    """Turn scan results into shard tasks (pure function of the scan and the config)."""
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    per_split: dict[str, list[PlannedSample]] = {s: [] for s in SPLITS}
    assignment = {s: Counter() for s in SPLITS}
    keys_seen: set[str] = set()
    paired = cfg.splits.controls == "paired"
    for i, gid in enumerate(scan.galaxy_id):
        loc = scan.location[i]
        if gid in seen:
            rejections.append(
                Rejection(gid, loc, "duplicate_galaxy_id", "plan", f"first seen at {seen[gid]}")
            )
            continue
        seen[gid] = loc
        split, role = assign(gid, cfg.splits.salt, cfg.splits.fractions, cfg.splits.pos_fraction)
        roles = [("host", "h"), ("control", "c")] if paired else [(role, "")]
        for r, tag in roles:
            key = make_key(gid, tag)
            if key in keys_seen:  # distinct ids that sanitise to the same key: refuse the later
                rejections.append(
                    Rejection(
                        gid,
                        loc,
                        "bad_galaxy_id",
                        "plan",
                        f"key {key} collides with another galaxy id",
                    )
                )
                break
            keys_seen.add(key)
            per_split[split].append(
                PlannedSample(
                    galaxy_id=gid,
                    key=key,
                    role=r,
                    chunk=scan.chunk[i],
                    row=scan.row[i],
                    location=loc,
                    catalog=tuple(scan.catalog[i]),
                )
            )
            assignment[split][r] += 1
    k = cfg.output.samples_per_shard
    tasks: list[ShardTask] = []
    for split in SPLITS:
        samples = per_split[split]
        for index, start in enumerate(range(0, len(samples), k)):
            tasks.append(ShardTask(split, index, samples[start : start + k]))
    return Plan(
        tasks=tasks,
        rejections=rejections,
        n_parents=len(scan) + len(scan.rejections),
        assignment={s: dict(c) for s, c in assignment.items()},
    )


def catalog_dict(sample: PlannedSample) -> dict[str, float]:
    """Catalog values of a planned sample as a dict keyed by :data:`CATALOG_FIELDS`."""
    return dict(zip(CATALOG_FIELDS, sample.catalog, strict=True))
