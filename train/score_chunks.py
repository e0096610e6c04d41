"""The chunk stage of ``train score``: read, preprocess, score and commit one chunk at a time.

``--workers`` DataLoader processes each read whole chunks of the parent source
(:class:`ChunkBatches`) and turn their valid records into batches through the training stage
itself (:func:`train.stages.make_batches`, augmentation off); the main process runs the model.
A chunk is committed by writing its rejections (``parts/chunk-NNNNNN.rejects.jsonl``) and then
its scores (``parts/chunk-NNNNNN.parquet``), each atomically: a scores part is the commit record
of its chunk, so a killed run resumes by skipping the chunks that have one. ``progress.json``
holds the fingerprint of what is being scored (checkpoint sha256, input, preprocessing) and the
count of committed chunks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from builder.faults import crash_point
from builder.parents.base import ParentRecord, Rejection
from builder.parents.open import SourceSpec, open_source
from common.atomic import atomic_open, atomic_write_text, remove_stale_tmp
from common.checksum import file_sha256
from common.configio import ConfigError, to_dict
from shards.schema import CATALOG_FIELDS
from train.checkpoint import eval_weights, load_checkpoint
from train.config import config_from_dict
from train.distributed import resolve_device
from train.eval_inputs import SAMPLE_COLUMNS, typed_array
from train.evaluate import move_batch
from train.model import LensClassifier, build_model
from train.preprocess import PreprocessConfig
from train.runtime import apply_thread_plan, plan_threads
from train.score_outputs import display_probability
from train.stages import make_batches, to_torch

log = logging.getLogger(__name__)

__all__ = [
    "PARTS_DIR",
    "PROGRESS_NAME",
    "ChunkBatches",
    "ScoreOptions",
    "load_scoring_model",
    "part_path",
    "score_chunks",
]

PARTS_DIR = "parts"
PROGRESS_NAME = "progress.json"
CRASH_POINT = "score_chunks"  # BUILDER_CRASH_AFTER_SCORE_CHUNKS=N kills after N committed chunks

#: Columns of a part file (and of ``scores.parquet``, which adds ``rank``), in order.
PART_SCHEMA = pa.schema(
    [
        ("galaxy_id", pa.string()),
        *[(f, pa.float64()) for f in CATALOG_FIELDS[:2]],
        ("logit", pa.float32()),
        ("probability", pa.float32()),
        *[(f, pa.float64()) for f in CATALOG_FIELDS[2:]],
        ("source_location", pa.string()),
        ("source_chunk", pa.int32()),
        ("source_row", pa.int32()),
    ]
)


@dataclass
class ScoreOptions:
    """How to run ``train score`` (none of these changes a score).

    Attributes
    ----------
    batch_size : int, optional
        Galaxies per forward pass (default: the checkpoint's ``data.batch_size``).
    workers : int
        DataLoader processes reading and preprocessing chunks (0: in the main process).
    device : str
        ``auto``, ``cpu`` or ``cuda``. On CUDA the backbone runs under bfloat16 autocast when the
        checkpoint's ``precision`` is ``bf16``; the head is always float32.
    progress : bool
        Show a tqdm bar over chunks.
    overwrite : bool
        Discard an existing output made from another checkpoint or input instead of refusing.
    executor : str, optional
        Score one chunk per task on this executor of :data:`builder.executors.EXECUTORS`
        (``dask``, ``local``, ``serial``; :mod:`train.score_tasks`) instead of DataLoader workers
        feeding the model in this process; ``workers`` is then the executor's worker count.
    scheduler : str, optional
        Address or scheduler file of a running Dask scheduler (``executor="dask"``).
    """

    batch_size: int | None = None
    workers: int = 0
    device: str = "auto"
    progress: bool = True
    overwrite: bool = False
    executor: str | None = None
    scheduler: str | None = None


def part_path(out_dir: Path, chunk: int, rejects: bool = False) -> Path:
    """``parts/chunk-NNNNNN.parquet`` (or its ``.rejects.jsonl``)."""
    suffix = ".rejects.jsonl" if rejects else ".parquet"
    return Path(out_dir) / PARTS_DIR / f"chunk-{chunk:06d}{suffix}"


# ------------------------------------------------------------------------------ the model
def load_scoring_model(
    checkpoint: str | Path, device: torch.device
) -> tuple[LensClassifier, Any, dict[str, Any]]:
    """``(model in eval mode on device, TrainConfig, checkpoint dict)`` with validated weights."""
    ckpt = load_checkpoint(checkpoint)
    cfg = config_from_dict(ckpt["config"])
    model = build_model(cfg.model)
    model.load_state_dict(eval_weights(ckpt))
    model.place(device, cfg.precision, cfg.channels_last)
    model.eval()
    return model, cfg, ckpt


# --------------------------------------------------------------------------- the reading
def _sample(rec: ParentRecord) -> dict[str, Any]:
    """A parent record as the decoded shard sample the training collation expects."""
    return {
        "__key__": rec.galaxy_id,
        "image": rec.stamp_nmgy,
        "label": 0,
        "meta": {"galaxy_id": rec.galaxy_id, **rec.catalog},
    }


def _batch(chunk: int, records: list[ParentRecord], preprocess: PreprocessConfig) -> dict:
    # The training stage itself (augmentation off): collate, then normalise the batch.
    (batch,) = make_batches(preprocess, False, 0, 0, 0)(iter([[_sample(r) for r in records]]))
    item = to_torch(batch)
    item.update(
        kind="batch",
        chunk=chunk,
        catalog={f: np.array([r.catalog[f] for r in records], np.float64) for f in CATALOG_FIELDS},
        location=[r.location for r in records],
        row=np.array([r.row for r in records], np.int32),
        parent_meta=[dict(getattr(r, "meta", None) or {}) for r in records],
    )
    return item


def chunk_items(
    source: Any, chunk: int, batch_size: int, preprocess: PreprocessConfig
) -> Iterator[dict[str, Any]]:
    """Batches of one chunk's valid records, then ``{"kind": "end", "rejects": [...]}``."""
    rejects: list[dict[str, Any]] = []
    pending: list[ParentRecord] = []
    for item in source.read_chunk(chunk):
        if isinstance(item, Rejection):
            rejects.append({**item.to_json(), "chunk": chunk})
            continue
        pending.append(item)
        if len(pending) == batch_size:
            yield _batch(chunk, pending, preprocess)
            pending = []
    if pending:
        yield _batch(chunk, pending, preprocess)
    yield {"kind": "end", "chunk": chunk, "rejects": rejects}


class ChunkBatches(IterableDataset):
    """The chunks still to score, split over DataLoader workers (``chunks[worker::n]``).

    Each worker opens the source itself (a :class:`SourceSpec` pickles) and yields the items of
    :func:`chunk_items`, one whole chunk after another.
    """

    def __init__(
        self, spec: SourceSpec, chunks: list[int], batch_size: int, preprocess: PreprocessConfig
    ):
        super().__init__()
        self.spec, self.chunks = spec, list(chunks)
        self.batch_size, self.preprocess = batch_size, preprocess

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        mine = self.chunks if info is None else self.chunks[info.id :: info.num_workers]
        source = open_source(self.spec)
        for chunk in mine:
            yield from chunk_items(source, chunk, self.batch_size, self.preprocess)


def _identity(item: Any) -> Any:
    return item


# ------------------------------------------------------------------------------ progress
def fingerprint(checkpoint: Path, spec: SourceSpec, cfg: Any, n_chunks: int) -> dict[str, Any]:
    """What a score output is made from; a resumed run must match it exactly."""
    from builder.build import source_description

    return {
        "checkpoint_sha256": file_sha256(checkpoint),
        "source": source_description(spec),
        "source_config": to_dict(spec.config),
        "limits": to_dict(spec.context.limits),
        "model": to_dict(cfg.model),
        "preprocess": to_dict(cfg.data.preprocess),
        "n_chunks": n_chunks,
    }


def open_progress(out_dir: Path, want: dict[str, Any], overwrite: bool) -> None:
    """Start or continue the output in ``out_dir``; refuse one made from something else."""
    path = out_dir / PROGRESS_NAME
    if path.is_file():
        have = json.loads(path.read_text()).get("fingerprint")
        if have != json.loads(json.dumps(want)):
            if not overwrite:
                diff = sorted(k for k in want if (have or {}).get(k) != want[k])
                raise ConfigError(
                    "out",
                    f"{out_dir} holds scores made from a different {', '.join(diff) or 'run'}; "
                    "use a new --out or pass --overwrite to discard them",
                )
            for p in sorted((out_dir / PARTS_DIR).glob("chunk-*")):
                p.unlink()
    remove_stale_tmp(out_dir)
    write_progress(out_dir, want, done=None)


def write_progress(out_dir: Path, want: dict[str, Any], done: int | None) -> None:
    """``progress.json``: the fingerprint and how many chunks have a part file."""
    if done is None:
        done = len(list((out_dir / PARTS_DIR).glob("chunk-*.parquet")))
    body = {"fingerprint": want, "chunks_done": done, "n_chunks": want["n_chunks"]}
    atomic_write_text(out_dir / PROGRESS_NAME, json.dumps(body, indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------ scoring
def _column(key: str, values: list[Any], default: pa.Array) -> pa.Array:
    """A selection column (theta_e_arcsec, visible, ...; :data:`SAMPLE_COLUMNS`) in the type
    ``train eval`` writes it with, so that parts and eval outputs agree; others as ``default``."""
    if key not in SAMPLE_COLUMNS:
        return default
    try:
        return typed_array(key, values)
    except ValueError as exc:
        raise ConfigError("input.extra_columns", f"parent column {exc}") from None


def _write_part(out_dir: Path, chunk: int, batches: list[dict], rejects: list[dict]) -> int:
    with atomic_open(part_path(out_dir, chunk, rejects=True), "w") as fh:
        for r in rejects:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    cols: dict[str, Any] = {
        "galaxy_id": [g for b in batches for g in b["galaxy_id"]],
        "logit": np.concatenate([b["logit"] for b in batches]) if batches else np.zeros(0, "f4"),
        "source_location": [loc for b in batches for loc in b["location"]],
        "source_chunk": np.full(sum(len(b["row"]) for b in batches), chunk, np.int32),
        "source_row": np.concatenate([b["row"] for b in batches]) if batches else np.zeros(0, "i4"),
    }
    for f in CATALOG_FIELDS:
        cols[f] = np.concatenate([b["catalog"][f] for b in batches]) if batches else np.zeros(0)
    cols["logit"] = cols["logit"].astype(np.float32)
    cols["probability"] = display_probability(cols["logit"])  # display only; rank on logits
    table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in PART_SCHEMA}, PART_SCHEMA)
    metas = [m for b in batches for m in b["parent_meta"]]
    for key in sorted({k for m in metas for k in m} - {"extra"}):  # descriptive (family, ...)
        name = f"parent_{key}" if key in PART_SCHEMA.names else key
        values = [None if m.get(key) is None else str(m[key]) for m in metas]
        table = table.append_column(name, _column(key, values, pa.array(values, pa.string())))
    extras = [m.get("extra") or {} for m in metas]  # input.<kind>.extra_columns, typed as read
    for key in sorted({k for e in extras for k in e}):
        name = f"parent_{key}" if key in table.column_names else key
        values = [e.get(key) for e in extras]
        table = table.append_column(name, _column(key, values, pa.array(values)))
    with atomic_open(part_path(out_dir, chunk), "wb") as fh:
        pq.write_table(table, fh)
    return table.num_rows


def score_chunks(
    checkpoint: str | Path, spec: SourceSpec, out_dir: str | Path, options: ScoreOptions
) -> dict[str, Any]:
    """Score every chunk of ``spec`` that has no part file in ``out_dir`` yet.

    Returns
    -------
    dict
        ``{"checkpoint": {...}, "n_chunks", "chunks_scored", "chunks_skipped", "galaxies_scored",
        "device", "thresholds_stored"}``; the checkpoint dict is under ``"_ckpt"`` for the caller.
    """
    out = Path(out_dir)
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    checkpoint = Path(checkpoint)
    if options.workers < 0:
        raise ConfigError("workers", f"must be >= 0 (got {options.workers})")
    device = resolve_device(options.device)
    if device.type == "cpu":  # the cores shared as in training; same threads, same logits
        apply_thread_plan(plan_threads(options.workers))
    model, cfg, ckpt = load_scoring_model(checkpoint, device)
    batch_size = options.batch_size or cfg.data.batch_size
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1 (got {batch_size})")
    n_chunks = open_source(spec).n_chunks()
    want = fingerprint(checkpoint, spec, cfg, n_chunks)
    open_progress(out, want, options.overwrite)
    todo = [c for c in range(n_chunks) if not part_path(out, c).is_file()]
    log.info(
        "scoring %d of %d chunk(s) of %s on %s (%d already done)",
        len(todo), n_chunks, spec.path, device, n_chunks - len(todo),
    )  # fmt: skip
    n_rows = done = 0
    bar = tqdm(total=len(todo), unit="chunk", desc="score", disable=not options.progress)

    def commit(chunk: int, batches: list[dict], rejects: list[dict]) -> None:
        nonlocal n_rows, done
        n_rows += _write_part(out, chunk, batches, rejects)
        done += 1
        crash_point(CRASH_POINT)
        write_progress(out, want, done=n_chunks - len(todo) + done)
        bar.update()
        bar.set_postfix(galaxies=n_rows)

    pending: dict[int, list[dict]] = {}
    if options.executor is not None:  # one task per chunk on an executor (train/score_tasks.py)
        from train.score_tasks import score_on_executor

        for res in score_on_executor(
            checkpoint, spec, todo, batch_size, options.device, options.executor,
            options.workers, options.scheduler,
        ):  # fmt: skip
            commit(res["chunk"], res["batches"], res["rejects"])
    in_loader = todo if options.executor is None else []
    loader = DataLoader(
        ChunkBatches(spec, in_loader, batch_size, cfg.data.preprocess),
        batch_size=None,
        num_workers=options.workers if in_loader else 0,
        collate_fn=_identity,
        prefetch_factor=cfg.data.prefetch_factor if options.workers and in_loader else None,
    )
    with torch.inference_mode():
        for item in loader:
            chunk = item["chunk"]
            if item["kind"] == "batch":
                image, meta, _, _ = move_batch(item, device, model.channels_last)
                logit = model(image, meta).float().cpu().numpy()
                keep = {k: item[k] for k in ("galaxy_id", "catalog", "location", "row")}
                keep["parent_meta"] = item["parent_meta"]
                pending.setdefault(chunk, []).append({**keep, "logit": logit})
                continue
            commit(chunk, pending.pop(chunk, []), item["rejects"])
    bar.close()
    if pending:  # a chunk without its end marker: never commit half a chunk
        raise RuntimeError(f"chunks {sorted(pending)} ended without their end marker")
    return {
        "checkpoint": {"path": str(checkpoint), "epoch": ckpt["epoch"], "step": ckpt["step"]},
        "n_chunks": n_chunks,
        "chunks_scored": done,
        "chunks_skipped": n_chunks - len(todo),
        "galaxies_scored_now": n_rows,
        "device": str(device),
        "_ckpt": ckpt,
    }
