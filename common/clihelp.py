"""Help text with defaults for every flag of the ``builder`` and ``train`` commands.

:func:`document` walks a parser and its subcommands once it is built: every subcommand gets
argparse's ``ArgumentDefaultsHelpFormatter`` (``--help`` shows each default), and a flag added
without ``help=`` takes its text from the command's table of common flags (``COMMON_HELP``
plus the command's own entries). ``tests/test_cli_help.py`` fails on any flag that still has
none, so a new flag cannot ship undocumented.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

#: Help of flags that several subcommands share (dest -> text).
COMMON_HELP: dict[str, str] = {
    "seed": "master seed (everything random derives from it and the galaxy id)",
    "config": "YAML config (see `dump-config`); flags and --set override it",
    "set": "override any config key, e.g. --set a.b=1 (repeatable)",
    "out": "output directory",
    "device": "auto (CUDA when available), cpu or cuda",
    "batch_size": "samples per batch (default: the checkpoint's or preset's)",
    "workers": "DataLoader worker processes (default: the checkpoint's or preset's)",
    "no_progress": "no progress bars",
    "quiet": "no progress bars or summaries",
    "checkpoint": "checkpoint file, e.g. RUN/checkpoints/best.pt",
    "split": "dataset split",
    "epochs": "total epochs (the schedule spans them)",
    "n": "number of galaxies",
    "samples_per_shard": "samples per shard (the last shard of a split may be shorter)",
    "max_reject_fraction": "abort when more than this fraction of parents is rejected",
    "match_radius_arcsec": "cross-match radius, arcsec",
    "folds": "cross-validation folds",
    "shard": "shard .tar file",
    "key": "only the sample with this key",
    "dir": "dataset root (manifest.json) or its URL",
}


def document(parser: argparse.ArgumentParser, extra: Mapping[str, str] | None = None) -> None:
    """Give every subcommand defaults in ``--help`` and fill flags that lack help text."""
    table = {**COMMON_HELP, **(extra or {})}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.formatter_class = argparse.ArgumentDefaultsHelpFormatter
                document(sub, table)
        elif action.help is None and action.dest in table:
            action.help = table[action.dest]


def undocumented(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """``"command --flag"`` of every argument without help text (for the test)."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += undocumented(sub, f"{prefix}{name} ")
        elif not action.help and action.dest != "help":
            out.append(f"{prefix}{(action.option_strings or [action.dest])[0]}")
    return out
