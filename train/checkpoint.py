"""Checkpoints: everything a run needs to continue bit-identically, loadable with weights_only.

A checkpoint is a plain dict of tensors and Python containers (see :func:`collect_state`), so
:func:`load_checkpoint` always uses ``torch.load(..., weights_only=True)``: loading a checkpoint
never executes code. RNG states are stored as tensors and lists for the same reason. Files are
written atomically (temporary sibling, fsync, ``os.replace``), so a crash mid-write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.atomic import atomic_open
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
def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    return path


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Atomically replace ``dst`` with a copy of ``src``."""
    dst = Path(dst)
    with atomic_open(dst, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out)
    return dst


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises
    ------
    CheckpointError
        If the file is missing, not loadable safely, or of another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncation, unsafe globals
        raise CheckpointError(f"{path}: cannot load checkpoint safely ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: not a version-{CHECKPOINT_VERSION} training checkpoint")
    return ckpt


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
