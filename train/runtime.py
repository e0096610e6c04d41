"""Process set-up of a run: RNG seeding per epoch, torch backends and CPU threads, the dataset check.

CPU threads: a rank's share of the cores (``os.sched_getaffinity`` divided by the ranks on this
node, ``LOCAL_WORLD_SIZE``) goes first to its DataLoader workers (one thread each: PyTorch sets
``torch.set_num_threads(1)`` in every worker), the rest to torch's intra-op pool; without this,
torch starts one intra-op thread per visible core in every rank and the loader workers compete
with them (measured in docs/benchmarks.md). ``threads`` in the config overrides the intra-op count.
The loader worker count itself stays an explicit ``data.num_workers`` (the exactly-once
partition and the data order depend on it, so it must not change with the machine).
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.configio import ConfigError
from shards.manifest import Manifest, ManifestError
from train.config import TrainConfig

__all__ = [
    "ThreadPlan",
    "apply_thread_plan",
    "available_cores",
    "check_shards",
    "configure_backends",
    "plan_threads",
    "seed_epoch",
]


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed python, numpy and torch (all devices) from ``(seed, epoch, rank)``."""
    value = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)  # noqa: NPY002 (third-party code may use the global RNG)
    torch.manual_seed(value)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a container's or a Slurm
    job's allocation), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    """How one rank uses its cores.

    Attributes
    ----------
    cores_per_rank : int
        This rank's share of the cores available on the node.
    intra_op_threads : int
        ``torch.set_num_threads`` of the rank's main process.
    loader_workers : int
        DataLoader worker processes (one thread each).
    oversubscribed : bool
        True when the workers alone already fill the rank's cores (``threads`` or
        ``data.num_workers`` too large for the machine): then intra-op gets 1 thread.
    """

    cores_per_rank: int
    intra_op_threads: int
    loader_workers: int
    oversubscribed: bool


def plan_threads(
    num_workers: int,
    threads: int | None = None,
    cores: int | None = None,
    local_ranks: int | None = None,
) -> ThreadPlan:
    """Split a rank's cores between its loader workers and torch's intra-op threads.

    Parameters
    ----------
    num_workers : int
        ``data.num_workers`` (0: loading runs in the main process, between steps).
    threads : int, optional
        Explicit intra-op thread count (config ``threads``); default: the rank's cores minus
        its loader workers, at least 1.
    cores : int, optional
        Cores available on the node (default :func:`available_cores`).
    local_ranks : int, optional
        Ranks on this node (default ``LOCAL_WORLD_SIZE``, else 1).
    """
    cores = available_cores() if cores is None else cores
    if local_ranks is None:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if cores < 1 or local_ranks < 1 or num_workers < 0:
        raise ValueError(
            f"bad thread budget: cores={cores} ranks={local_ranks} workers={num_workers}"
        )
    per_rank = max(1, cores // local_ranks)
    intra = max(1, per_rank - num_workers) if threads is None else threads
    return ThreadPlan(
        cores_per_rank=per_rank,
        intra_op_threads=intra,
        loader_workers=num_workers,
        oversubscribed=intra + num_workers > per_rank,
    )


def apply_thread_plan(plan: ThreadPlan) -> None:
    """Set torch's intra-op threads (and inter-op threads to 1 on the first call of the
    process); warn once when the plan oversubscribes the cores."""
    torch.set_num_threads(plan.intra_op_threads)
    try:
        torch.set_num_interop_threads(1)  # no inter-op parallelism in this model's forward
    except RuntimeError:  # only allowed before any inter-op work has started; keep the first
        pass
    if plan.oversubscribed:
        warnings.warn(
            f"{plan.intra_op_threads} intra-op thread(s) + {plan.loader_workers} loader "
            f"worker(s) on {plan.cores_per_rank} core(s) per rank oversubscribe the CPU; lower "
            "data.num_workers or threads",
            stacklevel=2,
        )


def configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    """Deterministic algorithms on CPU (when asked); fast TF32 / cuDNN autotuning on CUDA; CPU
    threads from :func:`plan_threads` (on every device: the CUDA path also runs the loader)."""
    apply_thread_plan(plan_threads(cfg.data.num_workers, cfg.threads))
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
