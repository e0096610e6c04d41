"""Process set-up of a run: RNG seeding per epoch, torch backends, the dataset check."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch

from common.configio import ConfigError
from shards.manifest import Manifest, ManifestError
from train.config import TrainConfig

__all__ = ["check_shards", "configure_backends", "seed_epoch"]


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed python, numpy and torch (all devices) from ``(seed, epoch, rank)``."""
    value = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)  # noqa: NPY002 (third-party code may use the global RNG)
    torch.manual_seed(value)


def configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    """Deterministic algorithms on CPU (when asked); fast TF32 / cuDNN autotuning on CUDA."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(cfg.deterministic)
        # CPU depthwise-conv weight grads have a different (equivalent) stride on their size-1
        # dim than DDP's bucket views; DDP copies them and warns once per rank. Harmless.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def validation_controls(shards_dir: Path) -> int | None:
    """Controls (label 0) in the dataset's ``val`` split per its manifest; None if unknown."""
    try:
        splits = Manifest.load(shards_dir).splits
    except ManifestError:
        return None
    n_neg = splits.get("val", {}).get("n_neg")
    return int(n_neg) if n_neg is not None else None


def check_shards(shards_dir: Path) -> None:
    """Refuse a missing dataset directory or an unreadable manifest (as a config error)."""
    if not shards_dir.is_dir():
        raise ConfigError("shards", f"directory not found: {shards_dir}")
    try:
        Manifest.load(shards_dir)
    except ManifestError as exc:
        raise ConfigError("shards", str(exc)) from None
