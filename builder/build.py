"""Orchestration of ``builder make-shards``: scan -> plan -> shard tasks -> manifest.

Crash safety and resume: every shard is written under a temporary name and renamed when complete;
a per-task summary is written after it, and the manifest (status ``building``) is rewritten
atomically after each finished shard. A rerun with the same config keeps each shard whose file
sha256 matches both the manifest and its summary, rebuilds everything else, and ends with bytes
identical to an uninterrupted build. A rerun with a different config is refused unless
``overwrite`` is set.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from builder.columns import release_unused_memory
from builder.config import BuildConfig
from builder.errors import BuildError
from builder.executors import SubmitExecutor, make_executor, submit_ordered
from builder.faults import crash_point
from builder.finalise import (
    check_existing,
    finalise,
    reusable,
    shard_entry,
    too_many_rejected,
    write_rejects,
)
from builder.notices import input_notices
from builder.parents.base import ReaderContext
from builder.parents.open import SourceSpec, open_source
from builder.parents.registry import get_parent_kind
from builder.plan import TaskSlot, plan_build
from builder.positives import describe_real_inputs, prepare_real
from builder.scan import scan_source
from builder.tasks import TaskSummary, run_task
from builder.validate import Limits
from common.atomic import atomic_open, remove_stale_tmp
from common.configio import to_dict
from common.lock import DirLock
from common.storage import is_remote, local_path
from shards.manifest import Manifest

__all__ = [
    "BuildError",
    "BuildOptions",
    "build_limits",
    "ensure_generated_parents",
    "generated_description",
    "make_shards",
    "package_versions",
    "prepare_source",
    "source_description",
    "write_rejects",
]

MIN_TASKS_IN_FLIGHT = 32
TASKS_PER_WORKER = 4

VERSIONED_PACKAGES = (
    "numpy",
    "scipy",
    "galsim",
    "lenstronomy",
    "webdataset",
    "pyarrow",
    "astropy",
    "speclite",
    "lensfinder-data",
)


@dataclass
class BuildOptions:
    """Run-time options that do not change the output bytes.

    ``executor`` names a factory of :data:`builder.executors.EXECUTORS` (made with ``workers``);
    :func:`make_shards` also accepts a ready executor object instead.
    """

    workers: int = 1
    executor: str = "local"
    overwrite: bool = False
    progress: bool = True
    staging: str | None = None
    """Local staging directory of a build to a URL (:mod:`builder.remote`); default per URL."""
    wait: bool = False
    """Wait for another build holding the output directory instead of refusing."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_limits(cfg: BuildConfig) -> Limits:
    """The configured plausibility limits for catalog values."""
    return Limits(
        tuple(cfg.rejects.psfsize_arcsec),
        tuple(cfg.rejects.psfdepth_invnmgy2),
        float(cfg.rejects.max_abs_pixel_nmgy),
    )


def generated_description(cfg: BuildConfig) -> dict[str, Any]:
    """What identifies a generated input (e.g. the synthetic sky), known before rendering."""
    kind = cfg.input.kind
    return {
        "kind": kind,
        "seed": cfg.seed,
        "moffat_beta": cfg.psf.moffat_beta,
        kind: to_dict(cfg.input.section(kind)),
    }


def prepare_source(cfg: BuildConfig, out_dir: Path) -> SourceSpec:
    """Resolve the configured input to a :class:`SourceSpec` (renders nothing)."""
    kind = get_parent_kind(cfg.input.kind)
    context = ReaderContext(build_limits(cfg), cfg.psf.moffat_beta)
    if kind.generated:
        path = out_dir / "parents" / kind.file_name
        return SourceSpec(kind.read_as, str(path), cfg.input.section(kind.read_as), context)
    path = local_path(cfg.input.path) if not is_remote(cfg.input.path) else None
    if path is None:  # a URL: downloaded once into OUT/inputs/ (builder/remote.py)
        from builder.remote import localise_input

        path = localise_input(cfg.input.path, out_dir)
    return SourceSpec(kind.name, str(path), cfg.input.section(kind.name), context)


def ensure_generated_parents(
    cfg: BuildConfig,
    spec: SourceSpec,
    executor: SubmitExecutor,
    options: BuildOptions,
) -> None:
    """Render a generated input unless the file on disk was made with this config."""
    kind = get_parent_kind(cfg.input.kind)
    path = Path(spec.path)
    stamp = path.with_suffix(".json")
    want = json.dumps(generated_description(cfg), sort_keys=True)
    if path.is_file() and stamp.is_file() and stamp.read_text() == want:
        return
    if options.progress:
        print(f"builder: rendering the {kind.name} parent input -> {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    kind.render_to(
        cfg.input.section(kind.name),
        path,
        seed=cfg.seed,
        moffat_beta=cfg.psf.moffat_beta,
        executor=executor,
        window=2 * options.workers,
        progress=options.progress,
    )
    with atomic_open(stamp, "w") as fh:
        fh.write(want)


def source_description(spec: SourceSpec) -> dict[str, Any]:
    """What identifies the input in the fingerprint: kind, resolved path and size (no mtime)."""
    p = Path(spec.path).resolve()  # the same input however it is named (relative, symlink)
    if p.is_file():
        size = p.stat().st_size
    else:
        size = sum(f.stat().st_size for f in sorted(p.rglob("*")) if f.is_file())
    info = open_source(spec).info()
    return {
        "kind": spec.kind,
        "path": p.name,
        "bytes": size,
        "n_chunks": info.n_chunks,
        "extra": info.extra,
    }


def tasks_in_flight(workers: int, executor: SubmitExecutor) -> int:
    """Shard tasks submitted at once: enough to keep every worker busy, never all of them.

    ``TASKS_PER_WORKER`` per worker (``--workers``, or the worker threads of a Dask cluster the
    executor is connected to, whichever is larger), at least ``MIN_TASKS_IN_FLIGHT``. A task's
    planned samples exist in the main process only while it is in flight.
    """
    slots = workers
    client = getattr(executor, "client", None)  # builder.executors_dask.DaskExecutor
    if client is not None:
        try:
            slots = max(slots, sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a hint only; the build does not depend on it
            pass
    return max(MIN_TASKS_IN_FLIGHT, TASKS_PER_WORKER * slots)


def make_shards(
    cfg: BuildConfig,
    out_dir: str | Path,
    options: BuildOptions | None = None,
    executor: SubmitExecutor | None = None,
) -> Manifest:
    """Build (or resume) the dataset in ``out_dir`` and return its manifest.

    Parameters
    ----------
    cfg : BuildConfig
        The validated build config.
    out_dir : str or Path
        Output directory.
    options : BuildOptions, optional
        Worker count, executor name, overwrite and progress.
    executor : Executor-like, optional
        Runs the render, scan and shard tasks (``submit`` + ``result``); by default one is made
        from ``options.executor`` and shut down at the end. A given one is left running.

    Raises
    ------
    BuildError
        On a config clash with an existing build or when too many inputs are rejected.
    """
    options = options or BuildOptions()
    if is_remote(out_dir):  # object store: staged locally, published with the manifest last
        from builder.remote import make_shards_remote

        return make_shards_remote(cfg, str(out_dir), options, executor, options.staging)
    out_dir = Path(local_path(out_dir))
    # One build per directory, taken before anything in it is read or touched (common/lock.py).
    with DirLock(out_dir, "build", wait=options.wait):
        return _make_shards_locked(cfg, out_dir, options, executor)


def _make_shards_locked(
    cfg: BuildConfig, out_dir: Path, options: BuildOptions, executor: SubmitExecutor | None
) -> Manifest:
    """:func:`make_shards` once the output directory is locked."""
    spec = prepare_source(cfg, out_dir)
    generated = get_parent_kind(cfg.input.kind).generated
    src_desc = generated_description(cfg) if generated else source_description(spec)
    src_desc.update(describe_real_inputs(cfg, spec.context))  # --positives, --known-lenses
    fingerprint = cfg.fingerprint(src_desc)
    for note in input_notices(src_desc, cfg.psf.moffat_beta):  # defaults for physical inputs
        print(f"builder: note: {note}", file=sys.stderr)
    old = check_existing(out_dir, fingerprint, options.overwrite)  # before touching any file
    remove_stale_tmp(out_dir)  # under the lock, and only temporaries of dead writers
    own = executor is None
    executor = make_executor(options.executor, options.workers) if own else executor
    try:
        if generated:
            ensure_generated_parents(cfg, spec, executor, options)
        return _build(cfg, out_dir, options, executor, spec, src_desc, fingerprint, old)
    finally:
        if own:
            executor.shutdown(cancel_futures=True)


def _build(
    cfg: BuildConfig,
    out_dir: Path,
    options: BuildOptions,
    executor: SubmitExecutor,
    spec: SourceSpec,
    src_desc: dict[str, Any],
    fingerprint: str,
    old: Manifest | None,
) -> Manifest:
    """Scan, plan, run the shard tasks on ``executor``, finalise the manifest."""
    scan = scan_source(spec, spec.context.limits, executor=executor, max_parents=cfg.max_parents)
    plan = plan_build(scan, cfg, prepare_real(cfg, spec.context, executor))
    release_unused_memory()  # the scan's and plan's transients; their columns stay
    early = [r.to_json() for r in (*scan.rejections, *plan.rejections)]
    if message := too_many_rejected(early, plan.n_parents, cfg, out_dir):
        write_rejects(out_dir, early)  # abort before building any shard
        raise BuildError(message)

    manifest = Manifest(
        config=cfg.to_dict(),
        config_sha256=fingerprint,
        seed=cfg.seed,
        versions=package_versions(),
        source=src_desc,
        controls=cfg.splits.controls,
        split_scheme=plan.split_scheme,
        positives=plan.positives,
    )
    summaries: dict[tuple[str, int], TaskSummary] = {}
    todo: list[TaskSlot] = []
    for slot in plan.slots:  # slots, not tasks: no planned sample is materialised here
        kept = reusable(out_dir, slot, old)
        if kept is not None:
            summaries[(slot.split, slot.index)] = kept
        else:
            todo.append(slot)
    manifest.shards = [shard_entry(s) for s in summaries.values()]
    manifest.save(out_dir)
    if options.progress and summaries:
        print(f"builder: resuming: {len(summaries)} finished shard(s) kept, {len(todo)} to build")
    # Each task's sample list is made when it is submitted, a bounded number at a time.
    calls = ((plan.task(slot), cfg, spec, out_dir) for slot in todo)
    window = tasks_in_flight(options.workers, executor)
    results = submit_ordered(executor, run_task, calls, window=window)
    bar = tqdm(results, total=len(todo), desc="shards", unit="shard", disable=not options.progress)
    for summary in bar:
        summaries[(summary.split, summary.index)] = summary
        manifest.shards.append(shard_entry(summary))
        manifest.save(out_dir)
        crash_point("shards")
    remove_stale_tmp(out_dir)  # left by workers lost mid-shard (Dask reran their tasks)

    rejects = finalise(manifest, plan, scan.rejections, list(summaries.values()), out_dir)
    if message := too_many_rejected(rejects, plan.n_parents, cfg, out_dir):
        manifest.status = "aborted"  # verify and the trainer refuse an aborted dataset
        manifest.save(out_dir)
        raise BuildError(message)
    manifest.save(out_dir)
    return manifest
