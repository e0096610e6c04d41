"""One shard task: read the planned galaxies, inject arcs into hosts, write the shard.

A task is a pure function of (config, plan entry, input): the random state of each injection is
seeded from ``(seed, galaxy_id)``, so the shard bytes do not depend on which worker runs the task,
on the worker count or on the order tasks finish. The task writes its shard atomically, then a
small summary beside it (``OUT/tasks/SPLIT-NNNNNN.json``) that lets a resumed build reassemble the
manifest without redoing the work.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np

from builder.config import BuildConfig
from builder.faults import crash_point
from builder.inject import inject_arc
from builder.inject.decoy import add_decoy
from builder.matching import aperture_flux_nmgy
from builder.parents.base import PARENT_META_COLUMNS, Rejection
from builder.parents.open import SourceSpec, open_source
from builder.plan import PlannedSample, ShardTask, catalog_dict
from builder.positives import positives_spec
from builder.splits import galaxy_seed
from builder.validate import storage_overflow
from common.atomic import atomic_write_text
from shards.schema import shard_name
from shards.writer import Sample, ShardWriter

TASKS_DIR = "tasks"


@dataclass
class TaskSummary:
    """What a finished task reports (persisted as JSON beside the shards)."""

    split: str
    index: int
    path: str
    n_planned: int
    n_samples: int = 0
    n_pos: int = 0
    n_neg: int = 0
    sha256: str = ""
    bytes: int = 0
    rejections: list[dict[str, str]] = field(default_factory=list)
    draws: int = 0
    accepted: int = 0
    failed_draws: dict[str, int] = field(default_factory=dict)
    # For the host/control matching report: per written sample (role, r_flux, psfsize_r, psfdepth_r)
    match_rows: list[list[Any]] = field(default_factory=list)


def summary_path(out_dir: Path, task: ShardTask) -> Path:
    return out_dir / TASKS_DIR / f"{task.name}.json"


def load_summary(path: Path) -> TaskSummary | None:
    """Read a task summary; ``None`` if it is missing or unreadable."""
    try:
        return TaskSummary(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _records(specs: dict[str, SourceSpec | None], samples: list[PlannedSample]):
    """Yield (planned sample, record or rejection), reading one chunk at a time.

    ``specs`` maps a sample's ``source`` (``parents``, or ``positives`` for real positives) to
    its input.
    """
    sources = {name: open_source(sp) for name, sp in specs.items() if sp is not None}
    for (name, chunk), group in groupby(samples, key=lambda s: (s.source, s.chunk)):
        group = list(group)
        rows = [s.row for s in group]
        # Contract of ParentSource.read: exactly one item per requested row, in order.
        yield from zip(group, sources[name].read(chunk, rows), strict=True)


def _real_fields(s: PlannedSample, rec: Any, split: str) -> dict[str, Any]:
    """A real (known) lens: its stamp as is, label 1, ``kind: real`` with grade and weight."""
    meta = _meta(s, split, 1, rec)
    meta.update(kind="real", grade=s.grade, weight=s.weight)
    return {"image": rec.stamp_nmgy, "meta": meta, "label": 1}


def _meta(s: PlannedSample, split: str, label: int, rec: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "galaxy_id": s.galaxy_id,
        "key": s.key,
        "split": split,
        "role": s.role,
        "label": label,
        "source_location": s.location,
    }
    meta.update(catalog_dict(s))
    parent_meta = getattr(rec, "meta", None) or {}
    meta.update({k: parent_meta[k] for k in PARENT_META_COLUMNS if k in parent_meta})
    if "extra" in parent_meta:  # configured extra catalogue columns (never a model input)
        meta["extra"] = parent_meta["extra"]
    return meta


def _sample_fields(
    s: PlannedSample,
    rec: Any,
    cat: dict[str, float],
    split: str,
    cfg: BuildConfig,
    summary: TaskSummary,
    failed: Counter,
) -> dict[str, Any] | None:
    """Values of one sample's members, by member-table field (:data:`shards.schema.MEMBERS`).

    A control is the parent stamp as is (label 0); a host gets an arc injected (label 1, and the
    noiseless arc model when ``output.with_arcs``). The writer encodes each value through its
    row, so a new member is one table row plus its value here. Returns ``None`` (and records the
    rejection in ``summary``) when every injection draw of a host failed.
    """
    if s.kind == "real":
        return _real_fields(s, rec, split)
    if s.role != "host":  # a control; decoys.fraction > 0 adds decoys (builder/inject/decoy.py)
        fields = {"image": rec.stamp_nmgy, "meta": _meta(s, split, 0, rec), "label": 0}
        return add_decoy(fields, s.galaxy_id, cat, rec, cfg)
    seed = galaxy_seed(s.galaxy_id, cfg.seed)
    rng = np.random.default_rng(seed)
    res = inject_arc(
        rec.stamp_nmgy,
        cat,
        rng,
        cfg.injection,
        psf_images=rec.psf_images,
        moffat_beta=cfg.psf.moffat_beta if rec.psf_beta is None else rec.psf_beta,
    )
    summary.draws += res.n_draws
    failed.update(res.rejections)
    if not res.accepted:
        summary.rejections.append(
            Rejection(
                s.galaxy_id,
                s.location,
                "injection_failed",
                "inject",
                f"all {res.n_draws} draws failed: {dict(sorted(res.rejections.items()))}",
            ).to_json()
        )
        return None
    summary.accepted += 1
    meta = _meta(s, split, 1, rec)
    meta["kind"] = "injected"
    meta["injection"] = {**res.params, "injection_seed": seed}
    fields: dict[str, Any] = {"image": res.image_nmgy, "meta": meta, "label": 1}
    if cfg.output.with_arcs:
        fields["arc"] = res.arc_nmgy
    return fields


def run_task(
    task: ShardTask, cfg: BuildConfig, spec: SourceSpec, out_dir: str | Path
) -> TaskSummary:
    """Build one shard and its summary; return the summary."""
    out_dir = Path(out_dir)
    rel = shard_name(task.split, task.index)
    summary = TaskSummary(split=task.split, index=task.index, path=rel, n_planned=len(task.samples))
    failed = Counter()
    with ShardWriter(out_dir / rel, dtype=cfg.output.dtype) as writer:
        specs = {"parents": spec, "positives": positives_spec(cfg, spec.context)}
        for s, rec in _records(specs, task.samples):
            if isinstance(rec, Rejection):
                summary.rejections.append(
                    Rejection(s.galaxy_id, s.location, rec.reason, "read", rec.detail).to_json()
                )
                continue
            if rec.galaxy_id != s.galaxy_id:
                raise RuntimeError(
                    f"{s.location}: input changed since the scan (expected galaxy {s.galaxy_id}, "
                    f"found {rec.galaxy_id}); rerun the build from scratch with --overwrite"
                )
            cat = catalog_dict(s)
            fields = _sample_fields(s, rec, cat, task.split, cfg, summary, failed)
            if fields is None:
                continue
            overflow = storage_overflow(fields, cfg.output.dtype)  # before a byte is written
            if overflow is not None:
                summary.accepted -= s.role == "host"
                summary.rejections.append(
                    Rejection(
                        s.galaxy_id, s.location, "float16_overflow", "write", overflow
                    ).to_json()
                )
                continue
            writer.write(Sample.from_fields(s.key, fields))
            crash_point("samples")
            if s.kind == "real":  # the matching report compares injection hosts and controls
                continue
            r_flux = aperture_flux_nmgy(rec.stamp_nmgy[1])  # the parent stamp, before injection
            summary.match_rows.append([s.role, r_flux, cat["psfsize_r"], cat["psfdepth_r"]])
    info = writer.info
    summary.n_samples, summary.n_pos, summary.n_neg = info.n_samples, info.n_pos, info.n_neg
    summary.sha256, summary.bytes = info.sha256, info.bytes
    summary.failed_draws = dict(sorted(failed.items()))
    atomic_write_text(summary_path(out_dir, task), json.dumps(asdict(summary), sort_keys=True))
    return summary
