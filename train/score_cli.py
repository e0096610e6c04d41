"""``train score`` and ``train probe``: their arguments and commands (registered by train/cli.py).

Each ``add_*`` function adds one subcommand with ``func`` set to its command; errors follow the
``train`` CLI convention (a :class:`~common.configio.ConfigError` is a one-line config error,
exit 2; a failed pass a one-line error, exit 1).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from common.configio import ConfigError, parse_overrides
from train.errors import TrainError

log = logging.getLogger("train")


class ScoreError(TrainError):
    """A scoring pass failed on its input (an unreadable chunk, a changed file)."""


def add_score_parser(sub: Any) -> None:
    """Add ``train score`` to the ``train`` subparsers."""
    s = sub.add_parser(
        "score",
        help="score every galaxy of a parent sample (resumable); candidates and a gallery",
        description="Apply a checkpoint to a parent sample (Parquet, FITS directory or the "
        "synthetic sky) with the training preprocessing; write scores.parquet, rejects.jsonl, "
        "candidates.csv, gallery/ and summary.json. Rerun the same command to resume.",
    )
    s.add_argument("--checkpoint", required=True, type=Path, help="e.g. RUN/checkpoints/best.pt")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--parents", help="parent Parquet file or FITS directory (a path or an s3:// ... URL)"
    )
    src.add_argument("--synthetic", type=int, metavar="N", help="score N synthetic galaxies")
    s.add_argument("--parents-format", help="override format detection (parquet, fits, ...)")
    s.add_argument("--out", required=True, help="output directory (a path or an s3:// ... URL)")
    s.add_argument(
        "--staging", type=Path, help="local directory a URL --out is scored in before upload"
    )
    s.add_argument("--config", type=Path, help="build YAML: input.* column maps, rejects.* limits")
    s.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="build-config override"
    )
    s.add_argument(
        "--threshold",
        help="candidate cut: a stored validation operating point (fpr1e-3, fpr1e-4, tpr0.85, "
        "nfp10, ...) or a logit; default: the top --top galaxies",
    )
    s.add_argument("--top", type=int, default=100, help="candidates without --threshold")
    s.add_argument("--gallery", type=int, default=64, help="candidates shown in the gallery")
    s.add_argument("--known-lenses", type=Path, help="CSV with ra, dec (deg) [, name, grade]")
    s.add_argument("--match-radius-arcsec", type=float, default=2.0)
    s.add_argument("--batch-size", type=int)
    s.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader reader processes; with --executor, the executor's workers",
    )
    s.add_argument(
        "--executor",
        choices=_executor_names(),
        help="score one chunk per task on this executor (dask: a cluster; default: DataLoader "
        "readers feeding the model in this process)",
    )
    s.add_argument("--scheduler", help="running Dask scheduler: tcp://HOST:PORT or its JSON file")
    s.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    s.add_argument("--overwrite", action="store_true", help="discard scores of another run")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_score)


def _executor_names() -> list[str]:
    from builder.executors import EXECUTORS

    return sorted(EXECUTORS)


def cmd_score(args: argparse.Namespace) -> int:
    """``train score``."""
    from builder.errors import BuilderError
    from builder.remote import staging_dir
    from common.storage import is_remote, local_path
    from train.score import ScoreOptions, resolve_parents, score_parents
    from train.score_remote import fetch_score_progress, publish_score_output

    remote_out = is_remote(args.out)
    out = staging_dir(args.out, args.staging) if remote_out else local_path(args.out)
    if args.staging is not None and not remote_out:
        raise ConfigError("staging", "applies only to an --out URL")
    if args.scheduler is not None and args.executor != "dask":
        raise ConfigError("scheduler", "applies to --executor dask")
    if not args.checkpoint.is_file():
        raise ConfigError("checkpoint", f"file not found: {args.checkpoint}")
    for name in ("top", "gallery"):
        if getattr(args, name) < 0:
            raise ConfigError(name, f"must be >= 0 (got {getattr(args, name)})")
    if not args.match_radius_arcsec > 0:
        raise ConfigError("match_radius_arcsec", "must be > 0")
    if remote_out:
        out.mkdir(parents=True, exist_ok=True)
        n = fetch_score_progress(args.out, out)
        if n:
            log.info("resuming %s: %d committed chunk(s) fetched into %s", args.out, n, out)
    spec = resolve_parents(
        args.parents,
        out,
        parents_format=args.parents_format,
        synthetic_n=args.synthetic,
        build_config=args.config,
        overrides=parse_overrides(args.set),
    )
    options = ScoreOptions(
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        executor=args.executor,
        scheduler=args.scheduler,
    )
    try:
        summary = score_parents(
            args.checkpoint,
            spec,
            out,
            options,
            threshold=args.threshold,
            top_n=args.top,
            gallery_n=args.gallery,
            known_lenses=args.known_lenses,
            match_radius_arcsec=args.match_radius_arcsec,
        )
    except BuilderError as exc:
        raise ScoreError(f"reading {spec.path}: {exc}") from None
    if remote_out:
        log.info("uploading to %s (summary.json last)", args.out)
        publish_score_output(out, args.out)
    log.info(
        "scored %d galaxies (%d rejected, see rejects.jsonl); %d candidates (%s) -> %s",
        summary["n_scored"],
        summary["n_rejected"],
        summary["n_candidates"],
        summary["threshold"] or f"top {args.top}",
        args.out,
    )
    kl = summary.get("known_lenses")
    if kl:
        for name, at in kl["at_threshold"].items():
            log.info(
                "known lenses at %s: %d of %d matched (%d of %d in the catalogue)",
                name, at["n_recovered"], kl["n_matched"], kl["n_matched"], kl["n_known"],
            )  # fmt: skip
    return 0


def add_probe_parser(sub: Any) -> None:
    """Add ``train probe`` to the ``train`` subparsers."""
    p = sub.add_parser(
        "probe",
        help="realism probe: linear-probe AUC separating two sets of lenses in feature space",
        description="Cross-validated AUC of a logistic regression on the model's pooled "
        "backbone features separating two sets of positives (default: injected vs real when "
        "the split has real ones). ~0.5: indistinguishable; high: injections look unlike real "
        "lenses to the model.",
    )
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--shards", required=True, type=Path, help="dataset root (manifest.json)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--field", help="metadata field defining the sets (dotted, e.g. kind)")
    p.add_argument("--groups", nargs=2, metavar=("A", "B"), help="the two values of --field")
    p.add_argument("--against", type=Path, help="second dataset: its positives are set B")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", type=Path, help="JSON report (default: print only)")
    p.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    """``train probe``."""
    from train.evaluate import write_json
    from train.probe import run_probe
    from train.runtime import check_shards

    for path in (args.shards, args.against):
        if path is not None:
            check_shards(path)
    if not args.checkpoint.is_file():
        raise ConfigError("checkpoint", f"file not found: {args.checkpoint}")
    if args.folds < 2:
        raise ConfigError("folds", f"must be >= 2 (got {args.folds})")
    if args.groups and not args.field:
        raise ConfigError("groups", "needs --field")
    report = run_probe(
        args.checkpoint,
        args.shards,
        split=args.split,
        field=args.field,
        groups=args.groups,
        against=args.against,
        device=args.device,
        folds=args.folds,
        seed=args.seed,
        n_boot=args.bootstrap,
        batch_size=args.batch_size,
    )
    if args.out:
        write_json(report, args.out)
    lo, hi = report["auc_interval_95"]
    log.info(
        "probe %s %s vs %s (%d vs %d positives, %d features): AUC %.3f [%.3f, %.3f]%s",
        report["field"], *report["sets"], *report["n"].values(), report["n_features"],
        report["auc"], lo, hi, f" -> {args.out}" if args.out else "",
    )  # fmt: skip
    return 0
