"""Process-group setup from the torchrun environment and the few collectives the trainer needs.

Without ``WORLD_SIZE > 1`` in the environment everything degrades to a single process and the
helpers are identity functions, so the same code runs under ``python`` and ``torchrun``.
Backends: NCCL when the device is CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from common.configio import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        From torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (0, 1, 0 without torchrun).
    device : torch.device
        The device this rank computes on.
    owns_group : bool
        True if :func:`init_distributed` created the process group (and :func:`cleanup` should
        destroy it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, which logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` -> ``cuda:LOCAL_RANK``.

    Raises
    ------
    ConfigError
        If CUDA is requested but not available (``device: ...`` in the message).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "device", "'cuda' requested but CUDA is not available here (use cpu or auto)"
            )
        return torch.device("cuda", local_rank)
    return torch.device(name)


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join the torchrun process group if there is one (gloo on CPU, NCCL on CUDA).

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    timeout_s : float
        Collective timeout.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if dev.type == "cuda" else None,
        )
        owns = True
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank, world_size, local_rank, dev, owns)


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


def all_gather_object(obj: T) -> list[T]:
    """Every rank's ``obj``, indexed by rank (``[obj]`` in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (identity in a single process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_ranks_true(flag: torch.Tensor) -> bool:
    """True iff the boolean scalar ``flag`` is true on every rank (one host sync)."""
    value = flag.detach().to(torch.int32).reshape(1)
    if dist.is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def gather_keys(keys: list[str]) -> list[list[str]]:
    """Every rank's list of sample keys, indexed by rank (feed to ``train.accounting.accounting``)."""
    return all_gather_object(list(keys))


def gather_columns(columns: dict[str, Any]) -> dict[str, Any]:
    """Concatenate per-rank columns (lists or 1-d numpy arrays) over ranks, in rank order.

    Parameters
    ----------
    columns : dict
        Same keys on every rank; each value a list or a 1-d numpy array.

    Returns
    -------
    dict
        Lists are concatenated as lists, arrays with :func:`numpy.concatenate`.
    """
    parts = all_gather_object(columns)
    out: dict[str, Any] = {}
    for name, first in columns.items():
        if isinstance(first, list):
            out[name] = [v for part in parts for v in part[name]]
        else:
            out[name] = np.concatenate([np.asarray(part[name]) for part in parts])
    return out
