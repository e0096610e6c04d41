"""Guards of a run directory: one run at a time (a lock), and resume only on the run's dataset.

* :func:`lock_run_dir` takes the :class:`common.lock.DirLock` of ``--out`` on rank 0 and tells
  every rank whether it got it, so a second ``train run`` into the same directory is refused on
  all ranks with one message naming the owner, instead of silently replacing the first run.
* :func:`dataset_fingerprint` is what a run records about its dataset (in every checkpoint):
  the sha256 of ``manifest.json`` (which lists every shard's sha256 and count) and the per-split
  sample counts. :func:`check_same_dataset` refuses a resume on another dataset, showing both
  fingerprints, unless the user allows it explicitly; the change is then recorded in history.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from common.checksum import file_sha256
from common.clierrors import os_error
from common.configio import ConfigError
from common.lock import DirLock, LockError
from shards.manifest import MANIFEST_NAME, Manifest
from train.distributed import DistContext, broadcast_object

__all__ = [
    "ALLOW_FLAG",
    "HISTORY_KEY",
    "check_same_dataset",
    "dataset_fingerprint",
    "lock_run_dir",
]

log = logging.getLogger(__name__)

ALLOW_FLAG = "--allow-dataset-change"
"""``train run --resume`` flag that continues a run on a dataset other than the recorded one."""

HISTORY_KEY = "dataset_changed_after_this_epoch"
"""Key added to the last history record when a resume continues on another dataset."""


def lock_run_dir(run_dir: Path, ctx: DistContext, wait: bool = False) -> DirLock | None:
    """Lock ``run_dir`` for this run (rank 0 holds it); return the lock (None on other ranks).

    Raises
    ------
    ConfigError
        On every rank, key ``out``, when another run holds the directory or it cannot be made
        (a file, under a file, read-only).
    """
    lock, error = None, None
    if ctx.is_main:
        try:
            lock = DirLock(run_dir, "training run", wait=wait).acquire()
        except (LockError, OSError) as exc:
            error = str(exc) if isinstance(exc, LockError) else f"cannot use {os_error(exc)[0]}"
    error = broadcast_object(error)
    if error is not None:
        if lock is not None:
            lock.release()
        raise ConfigError("out", error)
    return lock


def dataset_fingerprint(shards_dir: Path) -> dict[str, Any]:
    """sha256 of the dataset's manifest and its per-split sample counts."""
    manifest = Manifest.load(shards_dir)
    return {
        "manifest_sha256": file_sha256(Path(shards_dir) / MANIFEST_NAME),
        "n_samples": {split: manifest.expected(split) for split in ("train", "val", "test")},
    }


def _describe(fp: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in fp.get("n_samples", {}).items())
    return f"manifest sha256 {fp.get('manifest_sha256', '?')[:16]}... ({counts})"


def check_same_dataset(
    stored: dict[str, Any] | None,
    current: dict[str, Any],
    checkpoint: Path,
    allow_change: bool = False,
) -> dict[str, Any] | None:
    """Refuse to resume on a dataset other than the one the run recorded.

    Returns
    -------
    dict or None
        When ``allow_change`` lets a different dataset through: the record of the change
        (``from``/``to`` fingerprints) to store in history; None when the dataset is the same.

    Raises
    ------
    ConfigError
        Key ``shards``: the fingerprints differ and ``allow_change`` is False.
    """
    if stored is None:
        log.warning(
            "%s records no dataset fingerprint (written by an older version): cannot check "
            "that --shards is the run's dataset",
            checkpoint,
        )
        return None
    if stored.get("manifest_sha256") == current["manifest_sha256"]:
        return None
    if not allow_change:
        raise ConfigError(
            "shards",
            f"not the dataset this run was trained on: the run recorded {_describe(stored)}, "
            f"--shards has {_describe(current)}; resume on the original dataset, or pass "
            f"{ALLOW_FLAG} to continue on this one (recorded in history.json)",
        )
    log.warning(
        "resuming on another dataset (%s): %s -> %s",
        ALLOW_FLAG,
        _describe(stored),
        _describe(current),
    )
    return {"from": stored, "to": current}


def last_checkpoint_note(last: Path, history: list[dict[str, Any]]) -> str:
    """What a stopped run says about ``last``: kept and verified, or corrupt (never "good")."""
    from train.checkpoint import verify_checkpoint
    from train.errors import CheckpointError

    if not history:
        return "no checkpoint was written yet"
    try:
        verify_checkpoint(last)
    except CheckpointError as exc:
        return f"WARNING: the last checkpoint is unusable: {exc}"
    return (
        f"the last good checkpoint {last} (epoch {history[-1]['epoch']}, sha256 verified) is kept"
    )
