"""The training / evaluation data pipeline: exactly-once, seeded, batch-preprocessed.

One epoch on one rank is a ``wds.DataPipeline`` of small generator stages::

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

import json
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from common.configio import check
from shards.manifest import Manifest, ManifestError
from shards.reader import META_RAW, IndexedShard, ShardFormatError, decode_member
from shards.schema import META_SUFFIX, SAFE_MODEL_METADATA, STAMP_SHAPE
from train.partition import WorkItem, max_steps, n_worker_slots, plan_work_items, steps_per_rank
from train.preprocess import PreprocessConfig, normalize, random_symmetries, stack_dihedral

# Stream tags keep the shuffle and augmentation random streams independent.
_SHUFFLE_STREAM = 1
_AUGMENT_STREAM = 2

Batch = dict[str, Any]


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


# --------------------------------------------------------------------------- seeding


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
        raise RuntimeError(
            f"work items were planned for {planned} worker(s) per rank but worker {worker} "
            f"runs among {actual}; samples would be skipped or repeated"
        )
    yield from src


check_worker_count = wds.pipelinefilter(_check_worker_count)


def _expand_items(src: Iterable[dict]) -> Iterator[dict[str, Any]]:
    """Decoded samples of each ``{"url", "start", "stop"}`` item, via the shard's offset index.

    Raises
    ------
    ShardFormatError
        Corrupt, truncated or unsafe shard (the message names the shard and member), or a shard
        holding fewer samples than the item asks for.
    """
    for item in src:
        url, start, stop = item["url"], item["start"], item["stop"]
        if stop <= start:
            continue  # padding item
        shard = IndexedShard(url)
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


def collate(samples: Sequence[dict[str, Any]], symmetries: np.ndarray | None = None) -> Batch:
    """Stack decoded samples into a numpy batch (raw pixels, not yet normalised).

    Parameters
    ----------
    samples : sequence of dict
        Decoded samples (:class:`shards.reader.IndexedShard` dicts).
    symmetries : np.ndarray, optional
        Dihedral index per sample, applied while stacking (see
        :func:`train.preprocess.stack_dihedral`); ``None`` keeps the stamps as they are.

    Returns
    -------
    dict
        ``image`` float32 (B, 3, 64, 64) nanomaggies, ``label`` float32 (B,), ``meta`` float32
        (B, 6) raw catalog values (:data:`shards.schema.SAFE_MODEL_METADATA`), ``key`` and
        ``galaxy_id`` lists of str.
    """
    metas = batch_metadata(samples)
    try:
        catalog = np.array([[m[f] for f in SAFE_MODEL_METADATA] for m in metas], np.float32)
        galaxy_ids = [str(m["galaxy_id"]) for m in metas]
    except (KeyError, TypeError, ValueError):
        for s, m in zip(samples, metas, strict=True):  # find the culprit, name its member
            try:
                np.array([m[f] for f in SAFE_MODEL_METADATA], np.float32), m["galaxy_id"]
            except (KeyError, TypeError, ValueError) as exc:
                raise ShardFormatError(
                    f"{s['__url__']}: {s['__key__']}.json: missing or invalid catalog field "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        raise
    images = [s["image"] for s in samples]
    stacked = np.stack(images) if symmetries is None else stack_dihedral(images, symmetries)
    return {
        "image": stacked.astype(np.float32, copy=False),
        "label": np.array([s["label"] for s in samples], dtype=np.float32),
        "meta": catalog,
        "key": [s["__key__"] for s in samples],
        "galaxy_id": galaxy_ids,
    }


def batch_metadata(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metadata dicts of a batch: decoded ``meta``, or raw ``meta_json`` parsed in one call.

    Joining the members into one JSON array halves the parsing cost per sample; if that fails
    (or a member is not one object), each member goes through the reader's checked decoder so
    the error names the shard and member.
    """
    if all("meta" in s for s in samples):
        return [s["meta"] for s in samples]
    blobs = [s[META_RAW] for s in samples]
    try:
        metas = json.loads(b"[" + b",".join(blobs) + b"]")
        if len(metas) == len(blobs) and all(isinstance(m, dict) for m in metas):
            return metas
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    return [
        decode_member(META_SUFFIX, s[META_RAW], f"{s['__url__']}: {s['__key__']}.json")
        for s in samples
    ]


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
        batch["weight"] = np.ones(len(samples), dtype=np.float32)
        yield batch


make_batches = wds.pipelinefilter(_make_batches)


def to_torch(batch: Batch) -> Batch:
    """Numpy arrays of a batch -> torch tensors (zero-copy); lists stay lists."""
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


# --------------------------------------------------------------------------- building


def shard_list(root: str | Path, split: str) -> tuple[list[tuple[str, int]], int]:
    """``(url, n_samples)`` of each shard of ``split`` and the manifest's expected total."""
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
    shards = [(str(Path(root) / e.path), e.n_samples) for e in manifest.shards_for(split)]
    return shards, manifest.expected(split)


def make_pipeline(
    items: Sequence[WorkItem],
    cfg: DataConfig,
    *,
    epoch: int,
    rank: int,
    world_size: int,
    training: bool,
) -> wds.DataPipeline:
    """The per-rank ``wds.DataPipeline`` over an epoch's planned work items.

    ``items`` is the full plan of :func:`train.partition.plan_work_items` (all ranks); the
    pipeline keeps this rank's and this worker's share at iteration time.
    """
    shuffle = training and cfg.shuffle_buffer > 1
    return wds.DataPipeline(
        WorkItemList(items),
        split_by_rank(rank, world_size),
        wds.split_by_worker,
        check_worker_count(cfg.num_workers),
        expand_items(),
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
                    raise RuntimeError(
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
            raise RuntimeError(
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
    shards, expected = shard_list(root, split)
    items = plan_work_items(shards, world_size, cfg.num_workers, cfg.seed, epoch, shuffle=training)
    dataset = make_pipeline(
        items, cfg, epoch=epoch, rank=rank, world_size=world_size, training=training
    )
    return EpochLoader(dataset, cfg, items, rank=rank, world_size=world_size, expected=expected)


def count_keys(keys_per_rank: Sequence[Sequence[str]]) -> dict[str, int]:
    """Epoch accounting over ranks: samples seen and distinct samples (padding keys ignored).

    Parameters
    ----------
    keys_per_rank : sequence of sequence of str
        The ``key`` lists of every batch, concatenated per rank (e.g. gathered from all ranks).

    Returns
    -------
    dict
        ``samples_seen`` (with repeats) and ``unique_samples``; exactly-once means both equal the
        manifest's expected count.
    """
    real = [k for keys in keys_per_rank for k in keys if k]
    return {"samples_seen": len(real), "unique_samples": len(set(real))}
