"""The training / evaluation data pipeline: exactly-once, seeded, batch-preprocessed.

One epoch on one rank is a ``wds.DataPipeline`` of small generator stages
(:mod:`train.stages`, collation in :mod:`train.collate`)::

    work items of the epoch (train.partition)        {"url", "start", "stop"} dicts
    -> split_by_rank        this rank's items (wds.split_by_node semantics)
    -> wds.split_by_worker  this DataLoader worker's items
    -> expand_items         decoded samples through the shard's offset index (IndexedShard)
    -> seeded_shuffle       sample shuffle buffer, seeded by (seed, epoch, rank, worker)  [train]
    -> wds.batched          lists of samples, per worker
    -> make_batches         collate to numpy (+ random dihedral, seeded like the shuffle  [train])
                            then normalize the whole batch
    -> wds.map(to_torch)

:func:`make_loader` wraps it in a ``torch.utils.data.DataLoader`` and pads every rank with
zero-weight batches up to the same number of steps, so DDP ranks never wait on each other.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import webdataset as wds
from torch.utils.data import DataLoader

from common.configio import check
from shards.manifest import Manifest, ManifestError
from shards.paths import shard_path
from shards.schema import SAFE_MODEL_METADATA, STAMP_SHAPE
from train.collate import Batch
from train.errors import LoaderError
from train.partition import WorkItem, max_steps, plan_work_items, steps_per_rank
from train.preprocess import PreprocessConfig
from train.stages import (
    WorkItemList,
    check_worker_count,
    expand_items,
    make_batches,
    seeded_shuffle,
    split_by_rank,
    to_torch,
)


@dataclass
class DataConfig:
    """Loader settings.

    Attributes
    ----------
    batch_size : int
        Samples per batch; every DataLoader worker batches its own samples.
    num_workers : int
        DataLoader worker processes per rank (0 loads in the main process).
    shuffle_buffer : int
        Size of the per-worker sample shuffle buffer when training (<= 1: shard order only).
    seed : int
        Master seed; shard order, shuffle and augmentation derive from (seed, epoch, rank, worker).
    preprocess : PreprocessConfig
        Normalisation shared with evaluation and inference.
    augment : bool
        Random dihedral symmetries when training.
    prefetch_factor : int
        Batches each worker loads ahead (only used with ``num_workers > 0``).
    """

    batch_size: int = 64
    num_workers: int = 0
    shuffle_buffer: int = 1000
    seed: int = 0
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: bool = True
    prefetch_factor: int = 2

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`common.configio.ConfigError` naming the offending key."""
        p = f"{prefix}." if prefix else ""
        check(self.batch_size >= 1, f"{p}batch_size", f"must be >= 1 (got {self.batch_size})")
        check(self.num_workers >= 0, f"{p}num_workers", f"must be >= 0 (got {self.num_workers})")
        check(
            self.shuffle_buffer >= 0,
            f"{p}shuffle_buffer",
            f"must be >= 0 (got {self.shuffle_buffer})",
        )
        check(self.seed >= 0, f"{p}seed", f"must be >= 0 (got {self.seed})")
        check(
            self.prefetch_factor >= 1,
            f"{p}prefetch_factor",
            f"must be >= 1 (got {self.prefetch_factor})",
        )
        self.preprocess.validate(f"{p}preprocess")


# --------------------------------------------------------------------------- building


def shard_list(root: str | Path, split: str) -> tuple[list[tuple[str, int]], int]:
    """``(url, n_samples)`` of each shard of ``split`` and the manifest's expected total."""
    shards, _, expected = _split_shards(root, split)
    return shards, expected


def _split_shards(
    root: str | Path, split: str
) -> tuple[list[tuple[str, int]], dict[str, tuple[int, str]], int]:
    """``(url, n_samples)`` per shard, ``url -> (n_samples, sha256)`` and the expected total.

    Shard paths that leave the dataset root are refused (:func:`shards.paths.shard_path`).
    """
    manifest = Manifest.load(root)
    if manifest.status != "complete":
        raise ManifestError(
            f"{root}: dataset status is {manifest.status!r}, not 'complete' (an unfinished or "
            "aborted build); finish it with `builder make-shards` before training on it"
        )
    if manifest.controls == "paired":
        warnings.warn(
            f"{root} was built with --controls paired (an ABLATION: every galaxy is both host and "
            "control, the Gen-2 design); metrics on it do not measure lens finding",
            stacklevel=2,
        )
    entries = manifest.shards_for(split)
    urls = [str(shard_path(root, e.path)) for e in entries]
    shards = [(url, e.n_samples) for url, e in zip(urls, entries, strict=True)]
    info = {url: (e.n_samples, e.sha256) for url, e in zip(urls, entries, strict=True)}
    return shards, info, manifest.expected(split)


def make_pipeline(
    items: Sequence[WorkItem],
    cfg: DataConfig,
    *,
    epoch: int,
    rank: int,
    world_size: int,
    training: bool,
    shard_info: Mapping[str, tuple[int, str]] | None = None,
) -> wds.DataPipeline:
    """The per-rank ``wds.DataPipeline`` over an epoch's planned work items.

    ``items`` is the full plan of :func:`train.partition.plan_work_items` (all ranks); the
    pipeline keeps this rank's and this worker's share at iteration time. ``shard_info``
    (url -> manifest ``(n_samples, sha256)``) makes every shard opened be checked against
    its manifest entry.
    """
    shuffle = training and cfg.shuffle_buffer > 1
    return wds.DataPipeline(
        WorkItemList(items),
        split_by_rank(rank, world_size),
        wds.split_by_worker,
        check_worker_count(cfg.num_workers),
        expand_items(shard_info),
        seeded_shuffle(cfg.shuffle_buffer, cfg.seed, epoch, rank) if shuffle else None,
        wds.batched(cfg.batch_size, collation_fn=None, partial=True),
        make_batches(cfg.preprocess, training and cfg.augment, cfg.seed, epoch, rank),
        wds.map(to_torch),
    )


def _padding_batch(template: Batch | None, batch_size: int) -> Batch:
    """A zero-weight batch: a copy of ``template`` (realistic inputs for BatchNorm) or zeros."""
    if template is None:
        n = batch_size
        return {
            "image": torch.zeros(n, *STAMP_SHAPE),
            "label": torch.zeros(n),
            "weight": torch.zeros(n),
            "meta": torch.zeros(n, len(SAFE_MODEL_METADATA)),
            "key": [""] * n,
            "galaxy_id": [""] * n,
        }
    n = len(template["key"])
    return {
        **{k: v.clone() for k, v in template.items() if isinstance(v, torch.Tensor)},
        "weight": torch.zeros(n),
        "key": [""] * n,
        "galaxy_id": [""] * n,
    }


def _passthrough(batch: Batch) -> Batch:
    return batch


class EpochLoader:
    """One epoch of one rank: real batches, then zero-weight padding up to ``len(self)``.

    Attributes
    ----------
    expected : int
        Samples of the split according to the manifest.
    n_samples : int
        Real samples this rank yields this epoch.
    real_steps : int
        Real batches this rank yields; ``len(self) - real_steps`` padding batches follow.
    items : list of WorkItem
        The epoch's full plan (all ranks).
    dataset : wds.DataPipeline
        The per-rank pipeline the DataLoader iterates.
    """

    def __init__(
        self,
        dataset: wds.DataPipeline,
        cfg: DataConfig,
        items: list[WorkItem],
        *,
        rank: int,
        world_size: int,
        expected: int,
    ):
        self.dataset = dataset
        self.cfg = cfg
        self.items = items
        self.rank = rank
        self.world_size = world_size
        self.expected = expected
        per_rank = steps_per_rank(items, world_size, cfg.num_workers, cfg.batch_size)
        self.real_steps = per_rank[rank]
        self.steps = max_steps(items, world_size, cfg.num_workers, cfg.batch_size)
        self.n_samples = sum(len(it) for it in items[rank::world_size])

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        workers = self.cfg.num_workers
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=workers,
            prefetch_factor=self.cfg.prefetch_factor if workers else None,
            persistent_workers=False,
            collate_fn=_passthrough,  # batches are already tensors; skip default_convert
        )
        n = 0
        last: Batch | None = None
        batches = iter(loader)
        try:
            for batch in batches:
                n += 1
                if n > self.real_steps:
                    raise LoaderError(
                        f"rank {self.rank} got more than the {self.real_steps} planned batches"
                    )
                last = batch
                yield batch
        finally:
            # Stop the workers now: after an error the traceback keeps the iterator alive, and
            # a later garbage collection may close its queues first and wait 5 s per worker.
            shutdown = getattr(batches, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
        if n != self.real_steps:
            raise LoaderError(
                f"rank {self.rank} got {n} batches but {self.real_steps} were planned; "
                "a shard is shorter than its manifest entry"
            )
        for _ in range(self.steps - n):
            yield _padding_batch(last, self.cfg.batch_size)


def make_loader(
    root: str | Path,
    split: str,
    cfg: DataConfig,
    *,
    epoch: int,
    rank: int,
    world_size: int,
    training: bool,
) -> EpochLoader:
    """Loader of one epoch of ``split`` for one rank.

    Parameters
    ----------
    root : str or Path
        Dataset root holding ``manifest.json``.
    split : str
        ``train``, ``val`` or ``test``.
    cfg : DataConfig
        Loader settings (validated here).
    epoch : int
        Epoch number: shard order, shuffle and augmentation change with it, reproducibly.
    rank, world_size : int
        This process's rank and the number of ranks.
    training : bool
        Shuffle shards and samples and augment (if ``cfg.augment``); ``False`` gives a fixed order
        and no augmentation (evaluation / inference).

    Returns
    -------
    EpochLoader
        Iterable of batches (dicts of torch tensors, see :func:`collate`, plus ``weight``); its
        length is the same on every rank.
    """
    cfg.validate()
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    shards, info, expected = _split_shards(root, split)
    items = plan_work_items(shards, world_size, cfg.num_workers, cfg.seed, epoch, shuffle=training)
    dataset = make_pipeline(
        items,
        cfg,
        epoch=epoch,
        rank=rank,
        world_size=world_size,
        training=training,
        shard_info=info,
    )
    return EpochLoader(dataset, cfg, items, rank=rank, world_size=world_size, expected=expected)
