"""Command line: ``builder make-shards | synth-parents | inspect | verify | dump-config``.

Every user error (bad config value, missing input, config clash) is one clear line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from builder.errors import BuilderError
from builder.parents.registry import detect_kind, readable_kinds
from builder.remote import url_kind
from common.clierrors import one_line, os_error
from common.clihelp import document
from common.configio import ConfigError, merge, parse_overrides
from common.files import NotRegularFileError
from common.lock import LockError
from common.storage import is_remote, is_url, local_path


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Nested overrides from the shorthand flags, then the ``--set KEY=VALUE`` pairs."""
    o: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        o["seed"] = args.seed
    if getattr(args, "parents", None):
        p = args.parents if is_url(args.parents) else Path(args.parents)
        kind = args.parents_format or (url_kind(p) if is_url(p) else detect_kind(p))
        o.setdefault("input", {}).update({"kind": kind, "path": str(p)})
    if getattr(args, "side_table", None):  # catalogue values of FITS cutouts
        o.setdefault("input", {})["fits"] = {"side_table": str(args.side_table)}
    if getattr(args, "positives", None):  # real (known) lenses as label-1 samples
        kind = args.positives_format or detect_kind(Path(args.positives))
        o["positives"] = {"path": str(Path(args.positives)), "kind": kind}
    if getattr(args, "known_lenses", None):
        o["known_lenses"] = {"path": str(Path(args.known_lenses))}
    if getattr(args, "n", None) is not None and getattr(args, "parents", None):
        o["max_parents"] = args.n
    elif getattr(args, "n", None) is not None and args.command == "make-shards":
        o.setdefault("input", {})["synthetic"] = {"n_parents": args.n}
    out: dict[str, Any] = {}
    if getattr(args, "samples_per_shard", None) is not None:
        out["samples_per_shard"] = args.samples_per_shard
    if getattr(args, "with_arcs", False):
        out["with_arcs"] = True
    if getattr(args, "dtype", None):
        out["dtype"] = args.dtype
    if out:
        o["output"] = out
    if getattr(args, "controls", None):
        o.setdefault("splits", {})["controls"] = args.controls
    if getattr(args, "max_reject_fraction", None) is not None:
        o.setdefault("rejects", {})["max_reject_fraction"] = args.max_reject_fraction
    return merge(o, parse_overrides(getattr(args, "set", None) or []))


def cmd_make_shards(args: argparse.Namespace) -> int:
    from builder.build import BuildOptions, make_shards
    from builder.config import load_build_config

    _check_workers(args)
    cfg = load_build_config(args.config, _overrides(args))
    if cfg.splits.controls == "paired":
        print(
            "builder: WARNING: --controls paired is an ABLATION (the Gen-2 design): every galaxy "
            "is both host and control. Do not train production models on it.",
            file=sys.stderr,
        )
    options = BuildOptions(
        workers=args.workers,
        executor=args.executor,
        overwrite=args.overwrite,
        progress=not args.quiet,
        staging=args.staging,
        wait=args.wait,
    )
    with _executor(args) as executor:
        manifest = make_shards(cfg, args.out, options, executor=executor)
    print(
        f"builder: wrote {sum(s.n_samples for s in manifest.shards)} samples in "
        f"{len(manifest.shards)} shards to {args.out}"
    )
    for split, t in manifest.splits.items():
        print(
            f"  {split:5s}: {t['n_samples']:7d} samples ({t['n_pos']} pos / {t['n_neg']} neg) "
            f"in {t['n_shards']} shards"
        )
    rj = manifest.rejections
    print(f"  rejected: {rj['total']} of {rj['n_parents']} parents {rj['by_reason']}")
    return 0


def cmd_synth_parents(args: argparse.Namespace) -> int:
    from builder.config import load_build_config
    from builder.parents.synthetic import write_synthetic_parquet

    _check_workers(args)
    cfg = load_build_config(args.config, _overrides(args))
    if args.n < 1:
        raise ConfigError("n", f"must be >= 1 (got {args.n})")
    synth = cfg.input.section("synthetic")
    with _executor(args) as executor:
        path = write_synthetic_parquet(
            Path(args.out),
            args.n,
            cfg.seed,
            synth,
            row_group_size=synth.row_group_size,
            executor=executor,
            window=2 * args.workers,
            progress=sys.stderr.isatty(),  # a bar for people, nothing in logs
        )
    print(f"builder: wrote {args.n} synthetic parent galaxies to {path}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from builder.inspect import describe_shard, shard_png

    if args.n < 1:
        raise ConfigError("n", f"samples in the PNG grid must be >= 1 (got {args.n})")
    if args.limit < 0:
        raise ConfigError("limit", f"must be >= 0 (got {args.limit})")
    print(describe_shard(args.shard, key=args.key, limit=args.limit))
    if args.png:
        shard_png(args.shard, args.png, key=args.key, n=args.n)
        print(f"builder: wrote {args.png}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from shards.remote import verify_remote
    from shards.verify import verify_dataset

    local = not is_remote(args.dir)
    report = verify_dataset(local_path(args.dir)) if local else verify_remote(args.dir)
    print(report.format())
    return 0 if report.ok else 1


def cmd_audit(args: argparse.Namespace) -> int:
    from builder.audit import AuditConfig, run_audit

    cfg = AuditConfig(
        max_auc=args.max_auc, confidence=args.confidence, max_per_split=args.max_per_split
    )
    if not 0.5 <= cfg.max_auc <= 1.0:
        raise ConfigError("max_auc", f"must be in [0.5, 1] (got {cfg.max_auc})")
    if not 0.0 <= cfg.confidence < 1.0:
        raise ConfigError("confidence", f"must be in [0, 1) (got {cfg.confidence})")
    if cfg.max_per_split < 1:
        raise ConfigError("max_per_split", f"must be >= 1 (got {cfg.max_per_split})")
    report = run_audit(args.dir, cfg)
    print(Path(args.dir, "audit.md").read_text())
    return 0 if report["ok"] else 1


def cmd_dump_config(args: argparse.Namespace) -> int:
    from builder.config import load_build_config
    from common.yamldoc import commented_yaml

    cfg = load_build_config(args.config, parse_overrides(args.set))
    header = (
        "builder make-shards configuration (builder dump-config): every parameter with its\n"
        "default and meaning; edit and pass with --config FILE, or override with --set KEY=VALUE."
    )
    print(commented_yaml(cfg, header), end="")
    return 0


def _executor(args: argparse.Namespace):
    """The executor named by ``--executor`` (``--workers``, ``--scheduler``); a context manager."""
    from builder.executors import make_executor

    return make_executor(args.executor, args.workers, args.scheduler)


def _check_workers(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise ConfigError("workers", f"must be >= 1 (got {args.workers})")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by the commands that run the builder's parallel stages."""
    from builder.executors import EXECUTORS

    p.add_argument(
        "--workers", type=int, default=1, help="parallel processes (output is identical)"
    )
    p.add_argument(
        "--executor",
        choices=sorted(EXECUTORS),
        default="local",
        help="where the parallel stages run (builder/executors.py; output is identical)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="--executor dask: address (tcp://HOST:8786) or scheduler-file (.json) of a running "
        "Dask scheduler; default: a LocalCluster of --workers processes",
    )
    p.add_argument("--config", help="YAML build config (see `builder dump-config`)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any build-config key, e.g. --set psf.moffat_beta=3.0 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="builder", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("make-shards", help="build WebDataset shards (default: synthetic sky)")
    m.add_argument(
        "--parents", help="parent Parquet file (seed layout) or directory of FITS cutouts"
    )
    m.add_argument(
        "--parents-format", choices=readable_kinds(), help="override input format detection"
    )
    m.add_argument(
        "--side-table",
        metavar="CSV_OR_PARQUET",
        help="FITS inputs: catalogue values (psfsize_*, psfdepth_*, ra, dec) keyed by galaxy_id "
        "(file stem) or filename; see docs/inputs.md (input.fits.side_table)",
    )
    m.add_argument(
        "--positives",
        help="real (known) lenses, any parent format, added as label-1 samples (kind: real)",
    )
    m.add_argument(
        "--positives-format", choices=readable_kinds(), help="override --positives detection"
    )
    m.add_argument(
        "--known-lenses",
        metavar="CSV",
        help="CSV with ra, dec (deg) [, name, grade]: controls near them are excluded; grades "
        "weight the real positives",
    )
    m.add_argument("--out", default="out/shards", help="output directory (default: out/shards)")
    m.add_argument("--n", type=int, help="synthetic: galaxies to render; input: max parents to use")
    m.add_argument("--seed", type=int)
    m.add_argument("--samples-per-shard", type=int)
    _add_run_flags(m)
    m.add_argument("--with-arcs", action="store_true", help="also store KEY.arc.npy arc models")
    m.add_argument("--dtype", choices=["float32", "float16"], help="image storage dtype")
    m.add_argument(
        "--controls",
        choices=["unpaired", "paired"],
        help="paired = ABLATION ONLY (same galaxy as host and control)",
    )
    m.add_argument("--max-reject-fraction", type=float)
    m.add_argument(
        "--staging",
        help="--out is a URL: local directory the build is staged in before upload "
        "(default: $LENSFINDER_STAGING or the temporary directory, one per URL)",
    )
    m.add_argument(
        "--overwrite", action="store_true", help="replace a build made with another config"
    )
    m.add_argument("--quiet", action="store_true")
    m.add_argument(
        "--wait", action="store_true", help="wait for another build using --out to finish"
    )
    m.set_defaults(func=cmd_make_shards)

    s = sub.add_parser("synth-parents", help="write the built-in synthetic sky as parent Parquet")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int)
    _add_run_flags(s)
    s.set_defaults(func=cmd_synth_parents)

    i = sub.add_parser("inspect", help="print members and metadata of a shard; optional PNG grid")
    i.add_argument("shard")
    i.add_argument("--key")
    i.add_argument("--png", help="write a colour grid of samples to this PNG")
    i.add_argument("--n", type=int, default=16, help="samples in the PNG grid")
    i.add_argument("--limit", type=int, default=3, help="samples whose metadata is printed")
    i.set_defaults(func=cmd_inspect)

    v = sub.add_parser("verify", help="check every shard of a dataset against its manifest")
    v.add_argument("dir")
    v.set_defaults(func=cmd_verify)

    a = sub.add_parser(
        "audit", help="shortcut audit: can simple models separate the classes without the arc?"
    )
    a.add_argument("dir", help="a dataset built with --with-arcs")
    a.add_argument("--max-auc", type=float, default=0.55, help="gate on host-only/catalog AUCs")
    a.add_argument(
        "--confidence", type=float, default=0.95, help="one-sided confidence of the gate (0: none)"
    )
    a.add_argument("--max-per-split", type=int, default=2000, help="samples read per split")
    a.set_defaults(func=cmd_audit)

    d = sub.add_parser("dump-config", help="print the full resolved build config as YAML")
    d.add_argument("--config")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    d.set_defaults(func=cmd_dump_config)
    document(p, {"n": "galaxies: synthetic parents to render, or the first N of --parents"})
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from shards.manifest import ManifestError
    from shards.reader import ShardFormatError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"builder: config error: {one_line(exc)}", file=sys.stderr)
    except (BuilderError, ManifestError, ShardFormatError, LockError, NotRegularFileError) as exc:
        print(f"builder: error: {one_line(exc)}", file=sys.stderr)
    except OSError as exc:  # disk full, file-size limit, unusable --out (common/clierrors.py)
        message, status = os_error(exc)
        print(f"builder: error: {message}", file=sys.stderr)
        return status
    return 2


if __name__ == "__main__":
    sys.exit(main())
