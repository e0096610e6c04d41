"""Checkpoints: everything a run needs to continue bit-identically, loadable with weights_only.

A checkpoint is a plain dict of tensors and Python containers (see :func:`collect_state`), so
:func:`load_checkpoint` always uses ``torch.load(..., weights_only=True)``: loading a checkpoint
never executes code. RNG states are stored as tensors and lists for the same reason. Files are
written atomically (temporary sibling, fsync, ``os.replace``), so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.atomic import atomic_open, atomic_write_text
from common.checksum import file_sha256
from train.early_stopping import EarlyStopping
from train.ema import ema_module_state
from train.errors import CheckpointError

CHECKPOINT_VERSION = 1
BEST_NAME = "checkpoints/best.pt"
LAST_NAME = "checkpoints/last.pt"


# -------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA, if initialised) global RNG states as plain containers."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)  # noqa: NPY002 (global state)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002 (the global state is what we restore)
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -------------------------------------------------------------------------------- contents
def collect_state(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: nn.Module | None,
    early_stopping: EarlyStopping,
    scaler: torch.amp.GradScaler | None,
    epoch: int,
    step: int,
    history: list[dict[str, Any]],
    config: dict[str, Any],
    rng: list[dict[str, Any]],
) -> dict[str, Any]:
    """Assemble a checkpoint dict.

    Parameters
    ----------
    model : nn.Module
        The bare model (not the DDP or compiled wrapper).
    optimizer, scheduler, ema, early_stopping, scaler
        Training components (``ema``/``scaler`` may be None).
    epoch : int
        Last completed epoch (0-based).
    step : int
        Optimiser steps taken so far.
    history : list of dict
        One record per completed epoch.
    config : dict
        Resolved configuration (:func:`common.configio.to_dict` of the TrainConfig).
    rng : list of dict
        :func:`capture_rng` of every rank, indexed by rank.
    """
    return {
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "early_stopping": early_stopping.state_dict(),
        "history": history,
        "config": config,
        "rng": rng,
    }


def restore_state(
    ckpt: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: nn.Module | None,
    early_stopping: EarlyStopping,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Load every component's state from ``ckpt`` (RNG states are restored separately)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if (ema is None) != (ckpt["ema"] is None):
        raise CheckpointError("EMA enabled in only one of the config and the checkpoint")
    if ema is not None:
        ema.load_state_dict(ckpt["ema"])
    if scaler is not None and ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    early_stopping.load_state_dict(ckpt["early_stopping"])


def eval_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights that were validated: the EMA copy when the run kept one, else the model."""
    return ema_module_state(ckpt["ema"]) if ckpt.get("ema") is not None else ckpt["model"]


# ------------------------------------------------------------------------------------- I/O
DIGEST_SUFFIX = ".sha256"
"""Sidecar of every checkpoint: ``NAME.pt.sha256`` holds the sha256 of ``NAME.pt``."""


def digest_path(path: str | Path) -> Path:
    """The digest sidecar of checkpoint ``path``."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


class _HashingWriter:
    """File-like wrapper that hashes what is written through it."""

    def __init__(self, fh: Any):
        self.fh, self.sha, self.n = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.n += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def _write_digest(path: Path, sha256: str, n_bytes: int, also: list[str]) -> None:
    record = {"file": path.name, "sha256": sha256, "bytes": n_bytes}
    if also:
        record["also_accepted_while_replacing"] = also
    atomic_write_text(digest_path(path), json.dumps(record, sort_keys=True) + "\n")


def _accepted_digests(path: Path) -> list[str] | None:
    """Digests the sidecar accepts for ``path`` (None: no readable sidecar)."""
    try:
        record = json.loads(digest_path(path).read_text())
        return [str(record["sha256"]), *map(str, record.get("also_accepted_while_replacing", []))]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _replace_with_digest(path: Path, write: Any) -> Path:
    """Write ``path`` atomically through ``write(fh)`` and keep its digest sidecar in step.

    The two files cannot be renamed together, so the sidecar first accepts the old and the new
    digest, then the checkpoint is renamed into place, then the sidecar names the new digest
    only: a crash at any point leaves a checkpoint its sidecar accepts.
    """
    path = Path(path)
    old = _accepted_digests(path)
    with atomic_open(path, "wb") as fh:
        hashing = _HashingWriter(fh)
        write(hashing)
        digest = hashing.sha.hexdigest()
        _write_digest(path, digest, hashing.n, [old[0]] if old and path.is_file() else [])
    _write_digest(path, digest, hashing.n, [])
    return path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically, with its sha256 sidecar; return the path."""
    return _replace_with_digest(Path(path), lambda fh: torch.save(state, fh))


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Atomically replace ``dst`` with a copy of ``src`` (whose digest is checked first)."""
    verify_checkpoint(src)

    def write(fh: Any) -> None:
        with open(src, "rb") as inp:
            shutil.copyfileobj(inp, fh)

    dst = _replace_with_digest(Path(dst), write)
    if _accepted_digests(dst) != _accepted_digests(Path(src))[:1]:
        raise CheckpointError(f"{src}: changed while being copied to {dst}")
    return dst


def verify_checkpoint(path: str | Path) -> str:
    """Check ``path`` against its sha256 sidecar; return the digest.

    Raises
    ------
    CheckpointError
        The file is missing, has no readable sidecar, or its bytes do not match (corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    accepted = _accepted_digests(path)
    if accepted is None:
        raise CheckpointError(
            f"{path}: no readable digest sidecar {digest_path(path).name}, so the file cannot be "
            "checked for corruption; refusing to load it"
        )
    actual = file_sha256(path)
    if actual not in accepted:
        raise CheckpointError(
            f"{path} is corrupt: its sha256 {actual[:16]}... does not match the one recorded "
            f"when it was written ({accepted[0][:16]}... in {digest_path(path).name})"
        )
    return actual


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify the digest of ``path``, then load it with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        If the file is missing, corrupt (digest mismatch), not loadable safely, or of another
        format version; the message names the file.
    """
    path = Path(path)
    verify_checkpoint(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncation, unsafe globals
        raise CheckpointError(f"{path}: cannot load checkpoint safely ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: not a version-{CHECKPOINT_VERSION} training checkpoint")
    return ckpt


def load_model_weights(model: nn.Module, weights: dict[str, Any], path: str | Path) -> None:
    """``model.load_state_dict(weights)``; a mismatch is a one-line :class:`CheckpointError`."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise CheckpointError(
            f"{path}: the weights do not fit the model described by its stored config ({detail})"
        ) from None


def restore_rank_rng(states: list[dict[str, Any]], rank: int, world_size: int) -> None:
    """Restore this rank's RNG state from a checkpoint saved by ``len(states)`` ranks.

    With a different world size the states are not restored (every epoch re-seeds them anyway);
    a warning says so.
    """
    if len(states) == world_size:
        restore_rng(states[rank])
    else:
        logging.getLogger(__name__).warning(
            "checkpoint saved by %d ranks, resuming with %d: RNG states not restored "
            "(every epoch re-seeds them anyway)",
            len(states),
            world_size,
        )
