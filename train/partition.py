"""Exactly-once partition of a split's samples over ``world_size x num_workers`` loader slots.

A *slot* is one DataLoader worker of one rank. Every epoch the shard order is shuffled
deterministically from ``(seed, epoch)``; whole shards are dealt to the slots as long as they fit
under each slot's sample quota, and the shards left over are concatenated and cut sample-wise into
contiguous pieces that fill the quotas exactly, so per-slot sample counts differ by at most one.

The plan is a flat list of :class:`WorkItem` ordered for webdataset's splitters: rank ``r`` keeps
``items[r::world_size]`` (``wds.split_by_node``) and its worker ``w`` keeps
``items[r::world_size][w::num_workers]`` (``wds.split_by_worker``), i.e. slot ``r + w *
world_size`` owns the positions ``p`` with ``p % n_slots == r + w * world_size``. Slots with fewer
items are padded with empty items, so the list length is a multiple of the slot count.

``num_workers=0`` (loading in the main process) counts as one worker throughout.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class WorkItem:
    """Samples ``start:stop`` of the shard at ``url`` (an empty item has ``start == stop``).

    Attributes
    ----------
    url : str
        Shard path (``""`` for padding items).
    start, stop : int
        Half-open range of sample indices inside the shard.
    """

    url: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def as_dict(self) -> dict[str, str | int]:
        """The item as the ``{"url", "start", "stop"}`` dict that flows through the pipeline."""
        return asdict(self)


EMPTY_ITEM = WorkItem("", 0, 0)


def n_worker_slots(num_workers: int) -> int:
    """Worker slots per rank: ``num_workers``, with 0 (main-process loading) counting as 1."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    return max(1, num_workers)


def _check_world(world_size: int, num_workers: int) -> int:
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    return world_size * n_worker_slots(num_workers)


def shard_order(n_shards: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """Shard indices in the order of this epoch: a permutation seeded from ``(seed, epoch)``."""
    if not shuffle:
        return list(range(n_shards))
    rng = np.random.default_rng([seed, epoch])
    return [int(i) for i in rng.permutation(n_shards)]


def _quotas(total: int, n_slots: int) -> list[int]:
    base, extra = divmod(total, n_slots)
    return [base + (s < extra) for s in range(n_slots)]


def _deal(
    shards: Sequence[tuple[str, int]], order: Sequence[int], n_slots: int
) -> list[list[WorkItem]]:
    """Per-slot items: whole shards while they fit the quota, then sample-wise pieces."""
    quota = _quotas(sum(n for _, n in shards), n_slots)
    per_slot: list[list[WorkItem]] = [[] for _ in range(n_slots)]
    # Max-heap on remaining quota (ties -> lowest slot) so whole shards spread evenly.
    heap = [(-q, s) for s, q in enumerate(quota)]
    heapq.heapify(heap)
    leftover: list[tuple[str, int]] = []
    for i in order:
        url, n = shards[i]
        if n <= 0:
            continue
        room, slot = heap[0]
        if n <= -room:
            per_slot[slot].append(WorkItem(url, 0, n))
            quota[slot] -= n
            heapq.heapreplace(heap, (room + n, slot))
        else:
            leftover.append((url, n))
    # Cut the concatenated leftover shards into contiguous runs filling each slot's quota.
    slot = 0
    for url, n in leftover:
        start = 0
        while start < n:
            while quota[slot] == 0:
                slot += 1
            take = min(quota[slot], n - start)
            per_slot[slot].append(WorkItem(url, start, start + take))
            quota[slot] -= take
            start += take
    assert not any(quota), "partition bug: quotas not filled"
    return per_slot


def plan_work_items(
    shards: Sequence[tuple[str, int]],
    world_size: int,
    num_workers: int,
    seed: int,
    epoch: int,
    shuffle: bool,
) -> list[WorkItem]:
    """Plan one epoch: every sample of ``shards`` in exactly one slot, slots balanced.

    Parameters
    ----------
    shards : sequence of (str, int)
        ``(url, n_samples)`` of each shard, in manifest order.
    world_size : int
        Number of ranks (>= 1).
    num_workers : int
        DataLoader workers per rank (0 counts as 1).
    seed, epoch : int
        The shard order of an epoch is a permutation seeded from ``(seed, epoch)``.
    shuffle : bool
        Shuffle the shard order (training); ``False`` keeps manifest order (evaluation).

    Returns
    -------
    list of WorkItem
        Flat list, length a multiple of ``world_size * max(num_workers, 1)``, such that
        ``items[rank::world_size][worker::num_workers]`` is the work of slot ``(rank, worker)``
        (see :func:`slot_items`). Per-slot sample counts differ by at most one.
    """
    n_slots = _check_world(world_size, num_workers)
    # Slot s = rank + worker * world_size owns the positions p with p % n_slots == s; the extra
    # samples of an uneven split go to the lowest slots, i.e. one per rank before any rank
    # gets a second.
    per_slot = _deal(shards, shard_order(len(shards), seed, epoch, shuffle), n_slots)
    depth = max((len(items) for items in per_slot), default=0)
    return [items[j] if j < len(items) else EMPTY_ITEM for j in range(depth) for items in per_slot]


def slot_items(
    items: Sequence[WorkItem], rank: int, world_size: int, worker: int, num_workers: int
) -> list[WorkItem]:
    """Items that ``split_by_node`` then ``split_by_worker`` hand to slot ``(rank, worker)``."""
    nw = n_worker_slots(num_workers)
    if not (0 <= rank < world_size and 0 <= worker < nw):
        raise ValueError(f"slot ({rank}, {worker}) outside world {world_size} x workers {nw}")
    return list(items[rank::world_size][worker::nw])


def slot_counts(items: Sequence[WorkItem], world_size: int, num_workers: int) -> list[list[int]]:
    """Samples per slot: ``counts[rank][worker]``."""
    nw = n_worker_slots(num_workers)
    return [
        [sum(len(it) for it in slot_items(items, r, world_size, w, nw)) for w in range(nw)]
        for r in range(world_size)
    ]


def steps_per_rank(
    items: Sequence[WorkItem], world_size: int, num_workers: int, batch_size: int
) -> list[int]:
    """Batches each rank's loader yields: per-worker batching, so ``sum_w ceil(n_w / B)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [
        sum(-(-n // batch_size) for n in per_worker)
        for per_worker in slot_counts(items, world_size, num_workers)
    ]


def max_steps(items: Sequence[WorkItem], world_size: int, num_workers: int, batch_size: int) -> int:
    """Steps every rank must take so that all ranks run the same number (pad to this)."""
    return max(steps_per_rank(items, world_size, num_workers, batch_size), default=0)
