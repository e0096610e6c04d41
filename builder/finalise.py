"""The manifest side of ``builder make-shards``: resume checks, rejects, totals, the abort rule.

:func:`check_existing` decides whether an output directory is resumed, refused or cleared;
:func:`reusable` keeps a finished shard only when its file, its offset index, its task summary
and the manifest agree; :func:`finalise` fills the manifest's totals, rejections, injection
statistics and matching report and writes ``rejects.jsonl``; :func:`too_many_rejected` is the
``rejects.max_reject_fraction`` rule (known-lens exclusions not counted).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Protocol

from builder.abort import abort_message
from builder.config import BuildConfig
from builder.errors import BuildError
from builder.matching import matching_report
from builder.parents.base import Rejection
from builder.plan import Plan
from builder.positives import EXCLUDE_STAGE
from builder.tasks import TASKS_DIR, TaskSummary, load_summary, summary_path
from common.atomic import atomic_open
from common.checksum import file_sha256
from shards.manifest import MANIFEST_NAME, REJECTS_NAME, Manifest, ManifestError, ShardEntry
from shards.schema import SPLITS
from shards.verify import index_problems


class TaskLike(Protocol):
    """A shard task or its slot: what the resume check reads."""

    split: str
    index: int

    @property
    def name(self) -> str: ...

    @property
    def n_samples(self) -> int: ...


def check_existing(out_dir: Path, fingerprint: str, overwrite: bool) -> Manifest | None:
    """Return the existing manifest to resume from, or None; refuse a config clash."""
    mpath = out_dir / MANIFEST_NAME
    if not mpath.exists():
        return None
    try:
        old = Manifest.load(out_dir)
    except ManifestError:
        old = None
    if old is not None and old.config_sha256 == fingerprint:
        return old
    if not overwrite:
        raise BuildError(
            f"{out_dir} already holds a dataset built with a different config or input "
            f"(fingerprint {old.config_sha256[:12] if old else 'unreadable'} != {fingerprint[:12]}); "
            "use --overwrite to replace it or choose another --out"
        )
    for split in SPLITS:
        shutil.rmtree(out_dir / split, ignore_errors=True)
    shutil.rmtree(out_dir / TASKS_DIR, ignore_errors=True)
    for name in (MANIFEST_NAME, REJECTS_NAME):
        (out_dir / name).unlink(missing_ok=True)
    return None


def reusable(out_dir: Path, task: TaskLike, old: Manifest | None) -> TaskSummary | None:
    """The summary of a finished shard that can be kept as is, else None."""
    if old is None:
        return None
    entry = next((s for s in old.shards if s.split == task.split and s.index == task.index), None)
    summary = load_summary(summary_path(out_dir, task))  # type: ignore[arg-type]
    shard = out_dir / (entry.path if entry else "")
    if entry is None or summary is None or not shard.is_file():
        return None
    if summary.sha256 != entry.sha256 or summary.n_planned != task.n_samples:
        return None
    if file_sha256(shard) != entry.sha256:
        return None
    if index_problems(shard, entry.sha256):  # a missing, stale or edited offset index
        return None
    return summary


def shard_entry(s: TaskSummary) -> ShardEntry:
    """The manifest entry of a finished shard."""
    return ShardEntry(
        path=s.path,
        split=s.split,
        index=s.index,
        n_samples=s.n_samples,
        n_pos=s.n_pos,
        n_neg=s.n_neg,
        sha256=s.sha256,
        bytes=s.bytes,
        n_planned=s.n_planned,
        n_rejected=len(s.rejections),
    )


def write_rejects(out_dir: Path, rejects: list[dict[str, str]]) -> None:
    """Write ``rejects.jsonl`` atomically (one JSON object per rejected parent)."""
    with atomic_open(out_dir / REJECTS_NAME, "w") as fh:
        for r in rejects:
            fh.write(json.dumps(r, sort_keys=True) + "\n")


def finalise(
    manifest: Manifest,
    plan: Plan,
    scan_rejections: list[Rejection],
    summaries: list[TaskSummary],
    out_dir: Path,
) -> list[dict[str, str]]:
    """Fill totals, rejections, injection stats and matching; write and return the rejects."""
    summaries = sorted(summaries, key=lambda s: (SPLITS.index(s.split), s.index))
    rejects = [r.to_json() for r in scan_rejections] + [r.to_json() for r in plan.rejections]
    for s in summaries:
        rejects.extend(s.rejections)
    write_rejects(out_dir, rejects)
    by_reason = Counter(r["reason"] for r in rejects)
    by_stage = Counter(r["stage"] for r in rejects)
    manifest.rejections = {
        "n_parents": plan.n_parents,
        "total": len(rejects),
        "fraction": round(len(rejects) / max(plan.n_parents, 1), 6),
        "by_reason": dict(sorted(by_reason.items())),
        "by_stage": dict(sorted(by_stage.items())),
        "file": REJECTS_NAME,
    }
    failed = Counter()
    for s in summaries:
        failed.update(s.failed_draws)
    manifest.injection = {
        "hosts_planned": sum(plan.assignment[sp].get("host", 0) for sp in SPLITS),
        "hosts_accepted": sum(s.accepted for s in summaries),
        "hosts_failed": by_reason.get("injection_failed", 0),
        "draws": sum(s.draws for s in summaries),
        "failed_draws_by_reason": dict(sorted(failed.items())),
    }
    manifest.matching = {
        sp: matching_report(row for s in summaries if s.split == sp for row in s.match_rows)
        for sp in SPLITS
    }
    manifest.shards = [shard_entry(s) for s in summaries]
    manifest.recompute_splits()
    manifest.status = "complete"
    return rejects


def too_many_rejected(
    rejects: list[dict[str, str]], n_total: int, cfg: BuildConfig, out_dir: Path
) -> str | None:
    """The abort message if the rejected fraction exceeds ``max_reject_fraction``, else None."""
    rejects = [r for r in rejects if r["stage"] != EXCLUDE_STAGE]  # known-lens exclusions
    return abort_message(
        rejects,
        n_total,
        cfg.rejects.max_reject_fraction,
        f"{str(out_dir).rstrip('/')}/{REJECTS_NAME}",
    )
