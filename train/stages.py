"""Generator stages of the per-rank data pipeline (webdataset ``pipelinefilter`` style).

Each stage takes an iterator and yields one: work items -> this rank's -> this worker's ->
decoded samples -> seeded shuffle -> (``wds.batched``) -> collated, normalised batches -> torch.
Every random stream is seeded from ``(seed, epoch, rank, worker, stream)`` (:func:`stream_seed`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import webdataset as wds

from shards.reader import IndexedShard, ShardFormatError, check_against_manifest
from train.collate import Batch, collate
from train.errors import LoaderError
from train.partition import WorkItem, n_worker_slots
from train.preprocess import PreprocessConfig, normalize, random_symmetries

__all__ = [
    "WorkItemList",
    "check_worker_count",
    "expand_items",
    "make_batches",
    "seeded_shuffle",
    "split_by_rank",
    "stream_seed",
    "to_torch",
]

# Stream tags keep the shuffle and augmentation random streams independent.
_SHUFFLE_STREAM = 1
_AUGMENT_STREAM = 2


def stream_seed(
    seed: int, epoch: int, rank: int, worker: int, stream: int
) -> np.random.SeedSequence:
    """Independent seed of one random stream of one worker of one rank in one epoch."""
    return np.random.SeedSequence([seed, epoch, rank, worker, stream])


def _current_worker() -> int:
    return wds.utils.pytorch_worker_info()[2]


# --------------------------------------------------------------------------- stages


class WorkItemList(torch.utils.data.IterableDataset):
    """Pipeline source yielding planned work items as ``{"url", "start", "stop"}`` dicts.

    The work-item counterpart of ``wds.SimpleShardList`` (which yields ``{"url"}`` only); the
    order is the plan's, which the node and worker splitters rely on.
    """

    def __init__(self, items: Sequence[WorkItem]):
        super().__init__()
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            yield item.as_dict()


def _split_by_rank(src: Iterable[dict], rank: int, world_size: int) -> Iterator[dict]:
    """``items[rank::world_size]``: ``wds.split_by_node`` for an explicit rank and world.

    The explicit values are authoritative (the plan was made for them). When the environment
    (``RANK``/``WORLD_SIZE`` or an initialised ``torch.distributed``) declares the same world,
    ``wds.split_by_node`` itself does the split; otherwise, e.g. single-process evaluation on
    rank 0 of a DDP job (``world_size=1``) or ranks simulated in one process, the same slicing
    is applied with ``wds.slice``.
    """
    env_rank, env_world, _, _ = wds.utils.pytorch_worker_info()
    if (env_rank, env_world) == (rank, world_size):
        yield from wds.split_by_node(src)
    else:
        yield from wds.slice(rank, None, world_size)(iter(src))


split_by_rank = wds.pipelinefilter(_split_by_rank)


def _check_worker_count(src: Iterable[dict], num_workers: int) -> Iterator[dict]:
    """Fail loudly if the worker count at run time differs from the one the plan was made for."""
    _, _, worker, actual = wds.utils.pytorch_worker_info()
    planned = n_worker_slots(num_workers)
    if actual != planned:
        raise LoaderError(
            f"work items were planned for {planned} worker(s) per rank but worker {worker} "
            f"runs among {actual}; samples would be skipped or repeated"
        )
    yield from src


check_worker_count = wds.pipelinefilter(_check_worker_count)


def _expand_items(
    src: Iterable[dict], shard_info: Mapping[str, tuple[int, str]] | None = None
) -> Iterator[dict[str, Any]]:
    """Decoded samples of each ``{"url", "start", "stop"}`` item, via the shard's offset index.

    ``shard_info`` maps a shard url to its manifest ``(n_samples, sha256)``; a shard whose index
    holds another number of samples, or records another tar, is refused.

    Raises
    ------
    ShardFormatError
        Corrupt, truncated or unsafe shard (the message names the shard and member), a shard
        holding fewer samples than the item asks for, or one that disagrees with the manifest.
    """
    for item in src:
        url, start, stop = item["url"], item["start"], item["stop"]
        if stop <= start:
            continue  # padding item
        shard = IndexedShard(url)
        if shard_info is not None and url in shard_info:
            check_against_manifest(shard, *shard_info[url])
        if stop > len(shard):
            raise ShardFormatError(
                f"{url}: holds {len(shard)} samples but the manifest plan reads up to {stop}"
            )
        # The JSON metadata travels undecoded and is parsed once per batch (see collate).
        yield from shard.iter_samples(start, stop, decode_meta=False)


expand_items = wds.pipelinefilter(_expand_items)


def _seeded_shuffle(
    src: Iterable[dict], bufsize: int, seed: int, epoch: int, rank: int
) -> Iterator[dict]:
    """``wds.shuffle`` with a generator seeded from (seed, epoch, rank, worker)."""
    state = stream_seed(seed, epoch, rank, _current_worker(), _SHUFFLE_STREAM).generate_state(2)
    rng = random.Random(int(state[0]) << 32 | int(state[1]))
    yield from wds.shuffle(bufsize, initial=bufsize, rng=rng)(iter(src))


seeded_shuffle = wds.pipelinefilter(_seeded_shuffle)


def _make_batches(
    src: Iterable[list[dict[str, Any]]],
    cfg: PreprocessConfig,
    augment: bool,
    seed: int,
    epoch: int,
    rank: int,
) -> Iterator[Batch]:
    """Collate lists of samples and normalise; with ``augment``, random dihedral symmetries.

    The symmetries (drawn from a generator seeded by (seed, epoch, rank, worker)) are applied
    while stacking, before :func:`train.preprocess.normalize`: the annulus is invariant under
    them, so this equals normalising first and augmenting after, at one pass less.
    """
    rng = None
    if augment:
        rng = np.random.default_rng(
            stream_seed(seed, epoch, rank, _current_worker(), _AUGMENT_STREAM)
        )
    for samples in src:
        batch = collate(samples, None if rng is None else random_symmetries(len(samples), rng))
        normalize(batch["image"], cfg, inplace=True)  # collate made a fresh batch
        # batch["weight"] comes from collate: the sample's metadata weight (a real positive's
        # grade weight), 1 otherwise; padding batches carry weight 0
        yield batch


make_batches = wds.pipelinefilter(_make_batches)


def to_torch(batch: Batch) -> Batch:
    """Numpy arrays of a batch -> torch tensors (zero-copy); lists stay lists."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}
