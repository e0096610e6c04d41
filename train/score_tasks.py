"""``train score --executor NAME``: one executor task per chunk (Dask, a process pool, serially).

The default scoring pass (:func:`train.score_chunks.score_chunks` without an executor) reads
chunks in DataLoader workers and runs the model in the main process. With an executor from
:data:`builder.executors.EXECUTORS` (``dask`` on a cluster, ``local`` for a process pool,
``serial``) every chunk still to score is one task, :func:`score_chunk_task`: the worker opens the
parent source, reads the chunk, runs the training preprocessing and the model (loaded once per
worker process and checked against the checkpoint's sha256), and returns the chunk's logits and
columns, never images. The main process commits each returned chunk exactly as the default pass
does (rejections, then the scores part, atomically, in chunk order), so resumption, the output
files and the assembly are the same; a task lost with its worker is rerun by the executor and
its result replaces nothing (a chunk is committed once, when its result arrives).

Workers run one intra-op thread each (the parallelism is over worker processes, as with
``dask worker --nthreads 1``). Logits agree with the default pass to float32 rounding of the
CPU kernels (the same model, preprocessing and batch composition; only the thread count of the
convolutions differs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from builder.parents.open import SourceSpec, open_source
from common.checksum import file_sha256
from train.distributed import resolve_device
from train.evaluate import move_batch

__all__ = ["WORKER_THREADS", "score_chunk_task", "score_on_executor"]

#: Intra-op threads of each scoring worker process.
WORKER_THREADS = 1

# (checkpoint path, sha256, device) -> (model, config, device): one model per worker process.
_MODELS: dict[tuple[str, str, str], tuple[Any, Any, torch.device]] = {}


def _worker_model(checkpoint: str, sha256: str, device: str) -> tuple[Any, Any, torch.device]:
    from train.score_chunks import load_scoring_model

    key = (checkpoint, sha256, device)
    if key not in _MODELS:
        dev = resolve_device(device)
        if dev.type == "cpu":
            torch.set_num_threads(WORKER_THREADS)
        if file_sha256(Path(checkpoint)) != sha256:
            raise RuntimeError(
                f"{checkpoint} on this worker is not the checkpoint being scored (sha256 differs);"
                " the checkpoint must be on a file system every worker sees"
            )
        _MODELS.clear()  # a worker scores one checkpoint at a time
        model, cfg, _ = load_scoring_model(checkpoint, dev)
        _MODELS[key] = (model, cfg, dev)
    return _MODELS[key]


def score_chunk_task(
    checkpoint: str, sha256: str, spec: SourceSpec, chunk: int, batch_size: int, device: str
) -> dict[str, Any]:
    """Score one chunk on a worker: ``{"chunk", "batches": [...], "rejects": [...]}``.

    Each batch holds ``galaxy_id``, ``catalog``, ``location``, ``row``, ``parent_meta`` and
    ``logit`` (float32), as the default pass keeps them for :func:`train.score_chunks._write_part`.
    """
    from train.score_chunks import chunk_items

    model, cfg, dev = _worker_model(checkpoint, sha256, device)
    batches: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    with torch.inference_mode():
        for item in chunk_items(open_source(spec), chunk, batch_size, cfg.data.preprocess):
            if item["kind"] != "batch":
                rejects = item["rejects"]
                continue
            image, meta, _, _ = move_batch(item, dev, model.channels_last)
            logit = model(image, meta).float().cpu().numpy().astype(np.float32)
            keep = {k: item[k] for k in ("galaxy_id", "catalog", "location", "row", "parent_meta")}
            batches.append({**keep, "logit": logit})
    return {"chunk": chunk, "batches": batches, "rejects": rejects}


def score_on_executor(
    checkpoint: Path,
    spec: SourceSpec,
    todo: list[int],
    batch_size: int,
    device: str,
    executor_name: str,
    workers: int,
    scheduler: str | None,
) -> Iterator[dict[str, Any]]:
    """Results of :func:`score_chunk_task` for every chunk of ``todo``, in chunk order.

    At most ``max(64, 4 x workers)`` chunks are outstanding, so finished results waiting for an earlier
    chunk stay bounded.
    """
    from builder.executors import make_executor, submit_ordered

    sha = file_sha256(checkpoint)
    args = ((str(checkpoint.resolve()), sha, spec, c, batch_size, device) for c in todo)
    with make_executor(executor_name, max(1, workers), scheduler) as executor:
        yield from submit_ordered(executor, score_chunk_task, args, window=max(64, 4 * workers))
