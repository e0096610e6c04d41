"""``train report`` and ``train dump-config`` (registered by :mod:`train.cli`).

* ``train report --shards D --run R --eval E --out REPORT.md``: the one-page report
  (:mod:`train.report`), with figure links relative to the report.
* ``train dump-config [--preset P] [--config F] [--set K=V ...]``: the fully resolved training
  configuration as commented YAML (every key with its meaning and units), ready to edit and pass
  back with ``train run --config``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from common.configio import parse_overrides
from common.yamldoc import commented_yaml
from train.config import preset_names, resolve_config
from train.report import add_report_arguments, write_report


def _dump_config(args: argparse.Namespace) -> int:
    cfg = resolve_config(
        preset=args.preset, config_file=args.config, overrides=parse_overrides(args.set)
    )
    source = f"preset {args.preset}" if args.preset else "defaults"
    if args.config:
        source += f" + {args.config.name}"
    header = (
        f"train run configuration ({source}; train dump-config): every key with its meaning.\n"
        "Edit and pass with `train run --config FILE`, or override with --set KEY=VALUE."
    )
    print(commented_yaml(cfg, header), end="")
    return 0


def add_report_parsers(sub: Any) -> None:
    """Add ``train report`` and ``train dump-config`` to the ``train`` subparsers."""
    r = sub.add_parser(
        "report",
        help="write the one-page Markdown report of a run",
        description="Data, training and test tables with counts and intervals, and the figures.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_report_arguments(r)
    r.set_defaults(func=write_report)
    d = sub.add_parser(
        "dump-config",
        help="print the resolved training config as commented YAML",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d.add_argument("--preset", choices=preset_names(), help="bundled preset to start from")
    d.add_argument("--config", type=Path, help="YAML config applied over the preset")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    d.set_defaults(func=_dump_config)
