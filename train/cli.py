"""Command line: ``train run`` (train / resume) and ``train eval`` (score a checkpoint).

Errors never end in a traceback: an invalid configuration, a missing dataset or checkpoint
prints ``train: config error: KEY: message`` and exits 2; a failed run invariant (non-finite
loss, samples not seen exactly once, corrupt shard) prints ``train: error: message`` and exits 1.
Works unchanged under ``torchrun`` (every rank runs it; rank 0 logs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.clierrors import one_line, os_error
from common.clihelp import document
from common.configio import ConfigError, merge, parse_overrides
from common.remote_dir import staged_output
from common.storage import is_remote
from shards.errors import ShardError
from shards.remote import dataset_root
from train.config import (
    CONFIG_NAME,
    load_run_config,
    preset_names,
    resolve_config,
)
from train.errors import TrainError
from train.evaluate import METRICS_NAME, evaluate_checkpoint
from train.history import HISTORY_NAME
from train.metrics import HEADLINE_METRIC, get_metric
from train.model import is_convnext
from train.report_cli import add_report_parsers
from train.rundir import ALLOW_FLAG
from train.score_cli import add_probe_parser, add_score_parser
from train.trainer import check_shards, run

#: ``train run`` flags that are shorthands for config keys.
FLAG_KEYS: dict[str, str] = {
    "epochs": "epochs",
    "arch": "model.arch",
    "batch_size": "data.batch_size",
    "workers": "data.num_workers",
    "device": "device",
    "max_steps_per_epoch": "max_steps_per_epoch",
    "stop_after_epochs": "stop_after_epochs",
    "seed": "seed",
    "init_from": "init_from",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``train`` argument parser."""
    parser = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train a model (or resume a run)")
    r.add_argument(
        "--shards", required=True, help="dataset root (manifest.json): a directory or a URL"
    )
    r.add_argument("--out", required=True, help="run directory: a path or a URL (s3://...)")
    r.add_argument("--staging", type=Path, help="local directory a URL --out is written in")
    r.add_argument("--config", type=Path, help="YAML config applied over the preset")
    r.add_argument("--preset", choices=preset_names(), help="bundled preset")
    r.add_argument("--epochs", type=int)
    r.add_argument("--arch", help="timm model name")
    r.add_argument("--batch-size", type=int)
    r.add_argument("--workers", type=int, help="DataLoader workers per rank")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"))
    r.add_argument("--seed", type=int)
    r.add_argument("--max-steps-per-epoch", type=int, help="debug: cap steps per epoch")
    r.add_argument(
        "--stop-after-epochs", type=int, help="stop this invocation after N epochs (resumable)"
    )
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set optim.lr=1e-3 (repeatable)",
    )
    r.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from the weights of another run's checkpoint (fine-tuning; a new run)",
    )
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument(
        ALLOW_FLAG,
        action="store_true",
        help="with --resume: continue on a dataset other than the run's (recorded in history)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars")

    e = sub.add_parser("eval", help="score a split with a checkpoint")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--shards", required=True, help="dataset root: a directory or a URL")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--out", required=True, help="output directory: a path or a URL")
    e.add_argument("--staging", type=Path, help="local directory a URL --out is written in")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    e.add_argument("--batch-size", type=int)
    e.add_argument("--workers", type=int)
    e.add_argument(
        "--selection-edges",
        action="append",
        default=[],
        metavar="NAME=E1,E2,...",
        help="bin edges of a selection-function quantity, e.g. theta_e_arcsec=0.5,1,1.5,2,3",
    )
    e.add_argument("--no-progress", action="store_true")
    add_score_parser(sub)  # train score (train/score_cli.py)
    add_report_parsers(sub)  # train report, train dump-config (train/report_cli.py)
    add_probe_parser(sub)  # train probe
    document(parser)
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Nested overrides from the shorthand flags, then ``--set`` pairs."""
    pairs = [
        f"{key}={getattr(args, flag)}"
        for flag, key in FLAG_KEYS.items()
        if getattr(args, flag) is not None
    ]
    if args.no_progress:
        pairs.append("progress=false")
    set_keys = {pair.partition("=")[0] for pair in args.set}
    if args.arch is not None and not is_convnext(args.arch):
        # a preset's ConvNeXt stage layout does not apply to another family
        pairs += [f"model.{k}=null" for k in ("depths", "dims") if f"model.{k}" not in set_keys]
    return merge(parse_overrides(pairs), parse_overrides(args.set))


def _staged(args: argparse.Namespace, commit_name: str, fetch: bool = False):
    """:func:`common.remote_dir.staged_output` for ``--out`` / ``--staging`` (rank 0 publishes)."""
    if args.staging is not None and not is_remote(args.out):
        raise ConfigError("staging", "applies only to an --out URL")
    rank0 = int(os.environ.get("RANK", "0")) == 0
    return staged_output(args.out, commit_name, args.staging, fetch=fetch, publish=rank0)


def cmd_run(args: argparse.Namespace) -> int:
    """``train run``; a URL ``--out`` is published with ``history.json`` last."""
    with _staged(args, HISTORY_NAME, fetch=args.resume) as out:
        return _run(args, out)


def _run(args: argparse.Namespace, out: Path) -> int:
    base = None
    if args.resume and args.config is None and args.preset is None:
        if not (out / CONFIG_NAME).is_file():
            raise ConfigError("resume", f"no {CONFIG_NAME} in {args.out}: nothing to resume")
        base = load_run_config(out)
    cfg = resolve_config(
        base=base, preset=args.preset, config_file=args.config, overrides=cli_overrides(args)
    )
    summary = run(
        cfg,
        dataset_root(args.shards),  # a URL is mirrored (verified) into the cache (shards/remote.py)
        out,
        resume=args.resume,
        allow_dataset_change=args.allow_dataset_change,
    )
    logging.getLogger("train").info(
        "run %s: %d epoch(s), best epoch %s",
        summary.status,
        summary.epochs_done,
        summary.best_epoch,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``train eval``; a URL ``--out`` is published with ``metrics.json`` last."""
    with _staged(args, METRICS_NAME) as out:
        return _eval(args, out)


def parse_edges(pairs: Sequence[str]) -> dict[str, list[float]]:
    """``NAME=E1,E2,...`` pairs of ``--selection-edges`` -> ``{name: [edges]}``."""
    edges: dict[str, list[float]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            edges[name] = [float(v) for v in values.split(",")]
        except ValueError:
            raise ConfigError(
                "selection_edges", f"expected NAME=E1,E2,... with numbers, got {pair!r}"
            ) from None
    return edges


def _eval(args: argparse.Namespace, out: Path) -> int:
    edges = parse_edges(args.selection_edges)
    args.shards = dataset_root(args.shards)
    check_shards(args.shards)
    if not args.checkpoint.is_file():
        raise ConfigError("checkpoint", f"file not found: {args.checkpoint}")
    report = evaluate_checkpoint(
        args.checkpoint,
        args.shards,
        out,
        split=args.split,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        progress=not args.no_progress,
        selection_edges=edges or None,
    )
    summary = report["summary"]
    auc, headline = get_metric("auc"), get_metric(HEADLINE_METRIC)
    logging.getLogger("train").info(
        "%s: %d samples, auc %s, %s %s -> %s",
        args.split,
        report["n_samples"],
        auc.format(summary["auc"]),
        HEADLINE_METRIC,
        headline.format(summary[HEADLINE_METRIC]),
        args.out,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``train`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if hasattr(args, "func"):  # subcommands in their own modules (score, probe)
            return args.func(args)
        return cmd_run(args) if args.command == "run" else cmd_eval(args)
    except ConfigError as exc:
        print(f"train: config error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (TrainError, ShardError) as exc:  # ShardError: corrupt shard, unfinished manifest
        print(f"train: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, file-size limit, unusable --out (common/clierrors.py)
        message, status = os_error(exc)
        print(f"train: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
