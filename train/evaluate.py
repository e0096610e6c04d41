"""Scoring a split exactly once and writing the evaluation report (``train eval``).

:func:`predict` scores one rank's share of a split through the same loader as training
(``training=False``: fixed order, no augmentation, the same normalisation); :func:`gather`
collects every rank's scores, drops padding and checks that every sample of the manifest was
scored exactly once. :func:`write_report` writes ``metrics.json`` (tie-aware metrics on logits,
:func:`train.metrics.evaluate_scores`; per positive kind, :mod:`train.by_kind`; per control
family at the validation operating points, :mod:`train.families`), ``selection.json`` (recall
binned by lens and source properties, :mod:`train.selection`, with its figures),
``scores.parquet`` (key, galaxy_id, label, float32 logit and the typed metadata columns of
:data:`train.eval_inputs.SAMPLE_COLUMNS`), ``roc.png``, ``score_hist.png`` and cutout grids of the
highest-scoring controls (also per family) and the lowest-scoring positives, read back raw
(nanomaggies) from the shards.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm import tqdm

from common.atomic import atomic_open
from common.jsonio import write_json  # noqa: F401 (re-exported: train.evaluate.write_json)
from train.accounting import accounting, check_exactly_once
from train.checkpoint import eval_weights, load_checkpoint, load_model_weights
from train.config import config_from_dict
from train.data import make_loader
from train.distributed import (
    DistContext,
    broadcast_object,
    cleanup,
    gather_columns,
    gather_keys,
    init_distributed,
)
from train.errors import TrainingError
from train.eval_breakdowns import (
    SELECTION_NAME,
    breakdowns,
    check_selection_edges,
    write_breakdown_figures,
)
from train.eval_inputs import column_arrays, load_raw_samples
from train.metrics import evaluate_scores, flat_summary
from train.model import build_model
from train.plots import cutout_title, plot_cutout_grid, plot_roc, plot_score_hist
from train.thresholds import checkpoint_thresholds

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.json"
SCORES_NAME = "scores.parquet"
ROC_NAME = "roc.png"
HIST_NAME = "score_hist.png"
TOP_CONTROLS_NAME = "top_controls.png"
BOTTOM_POSITIVES_NAME = "bottom_positives.png"


@dataclass
class Predictions:
    """Scores of real (non-padding) samples.

    Attributes
    ----------
    keys, galaxy_ids : list of str
        Sample keys and parent galaxy ids.
    labels : ndarray of int8
        0 control, 1 lens.
    logits : ndarray of float32
        Model logits (never sigmoid probabilities).
    """

    keys: list[str]
    galaxy_ids: list[str]
    labels: np.ndarray
    logits: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def sorted_by_key(self) -> Predictions:
        """A copy ordered by key (independent of rank and worker layout)."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        return Predictions(
            [self.keys[i] for i in order],
            [self.galaxy_ids[i] for i in order],
            self.labels[order],
            self.logits[order],
        )


def move_batch(
    batch: dict[str, Any], device: torch.device, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image, meta, label, weight)`` of a loader batch on ``device``."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    image = batch["image"].to(device, non_blocking=True, memory_format=fmt)
    rest = (batch[k].to(device, non_blocking=True) for k in ("meta", "label", "weight"))
    return (image, *rest)


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    *,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "eval",
) -> Predictions:
    """Score this rank's share of a split; padding (weight 0) is dropped.

    Parameters
    ----------
    model : nn.Module
        Maps ``(image, meta)`` to float32 logits ``(B,)``; put in eval mode here.
    loader : iterable
        Batches from :func:`train.data.make_loader` with ``training=False``.
    device : torch.device
        Where to compute.
    channels_last : bool
        Feed images in channels-last format.
    progress : bool
        Show a tqdm bar.
    desc : str
        Bar label.
    """
    model.eval()
    keys: list[str] = []
    gids: list[str] = []
    labels: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        keep = (batch["weight"] > 0).numpy()
        if not keep.any():
            continue
        image, meta, _, _ = move_batch(batch, device, channels_last)
        out = model(image, meta).float().cpu().numpy()
        keys += [k for k, m in zip(batch["key"], keep, strict=True) if m]
        gids += [g for g, m in zip(batch["galaxy_id"], keep, strict=True) if m]
        labels.append(batch["label"].numpy()[keep].astype(np.int8))
        logits.append(out[keep].astype(np.float32))
    return Predictions(
        keys,
        gids,
        np.concatenate(labels) if labels else np.zeros(0, np.int8),
        np.concatenate(logits) if logits else np.zeros(0, np.float32),
    )


def gather(local: Predictions, expected: int) -> tuple[Predictions, dict[str, int]]:
    """All ranks' predictions (sorted by key) and their accounting (not checked here)."""
    counts = accounting(gather_keys(local.keys), expected)
    cols = gather_columns(
        {
            "keys": local.keys,
            "galaxy_ids": local.galaxy_ids,
            "labels": local.labels,
            "logits": local.logits,
        }
    )
    merged = Predictions(cols["keys"], cols["galaxy_ids"], cols["labels"], cols["logits"])
    return merged.sorted_by_key(), counts


def compute_metrics(pred: Predictions, what: str) -> dict[str, Any]:
    """:func:`train.metrics.evaluate_scores` of gathered predictions.

    Raises
    ------
    TrainingError
        If the metrics cannot be computed (non-finite logits, a split with only one class).
    """
    try:
        return evaluate_scores(pred.logits, pred.labels)
    except ValueError as exc:
        raise TrainingError(f"{what}: cannot compute metrics ({exc})") from None


# ------------------------------------------------------------------------------ the report
def write_scores(
    pred: Predictions, path: str | Path, columns: Mapping[str, Sequence[Any]] | None = None
) -> Path:
    """One Parquet row per sample: key, galaxy_id, label (int8), logit (float32), then the
    typed metadata ``columns`` (:func:`train.eval_inputs.column_arrays`; nulls where absent)."""
    table = pa.table(
        {
            "key": pa.array(pred.keys, pa.string()),
            "galaxy_id": pa.array(pred.galaxy_ids, pa.string()),
            "label": pa.array(pred.labels.astype(np.int8), pa.int8()),
            "logit": pa.array(pred.logits.astype(np.float32), pa.float32()),
            **column_arrays(columns or {}),
        }
    )
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)
    return Path(path)


def _cutout_grid(
    pred: Predictions, idx: np.ndarray, shards_dir: str | Path, split: str, path: Path, title: str
) -> Path | None:
    if len(idx) == 0:
        return None
    keys = [pred.keys[i] for i in idx]
    raw = load_raw_samples(shards_dir, split, keys)
    titles = [
        cutout_title(raw[k]["meta"], float(pred.logits[i])) for k, i in zip(keys, idx, strict=True)
    ]
    images = np.stack([raw[k]["image"] for k in keys])
    return plot_cutout_grid(images, titles, path, suptitle=title)


def write_report(
    pred: Predictions,
    out_dir: str | Path,
    shards_dir: str | Path,
    split: str,
    extra: dict[str, Any] | None = None,
    n_examples: int = 16,
    thresholds: Mapping[str, float | None] | None = None,
    selection_edges: Mapping[str, Sequence[float]] | None = None,
    n_per_family: int = 6,
) -> dict[str, Any]:
    """Write metrics, scores and plots for gathered predictions; return the report.

    The report (also ``metrics.json``) holds ``split``, ``n_samples``, ``extra`` (checkpoint,
    accounting), ``metrics`` (:func:`train.metrics.evaluate_scores`), ``summary``
    (:func:`train.metrics.flat_summary`), ``operating_points`` (the logit thresholds of the
    breakdowns: the checkpoint's validation ``thresholds``, else the split's own, and which),
    ``by_family`` (:func:`train.families.family_fpr`), ``selection`` (a pointer to
    ``selection.json``, :func:`train.selection.selection_function`) and, for a hybrid dataset,
    ``by_kind``. ``selection_edges`` overrides bin edges; ``n_per_family`` is the row length of
    the per-family grid.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(pred, f"{split} split")
    report = {"split": split, "n_samples": len(pred), **(extra or {}), "metrics": metrics}
    report["summary"] = flat_summary(metrics)
    parts = breakdowns(
        pred.keys, pred.labels, pred.logits, shards_dir, split, metrics, thresholds, selection_edges
    )
    report.update(parts.report)
    write_json(report, out / METRICS_NAME)
    write_json(parts.selection, out / SELECTION_NAME)
    write_scores(pred, out / SCORES_NAME, parts.columns)
    plot_roc(pred.logits, pred.labels, out / ROC_NAME, title=f"ROC ({split})")
    plot_score_hist(pred.logits, pred.labels, out / HIST_NAME)
    controls = np.flatnonzero(pred.labels == 0)
    positives = np.flatnonzero(pred.labels == 1)
    top_controls = controls[np.argsort(-pred.logits[controls], kind="stable")][:n_examples]
    low_positives = positives[np.argsort(pred.logits[positives], kind="stable")][:n_examples]
    _cutout_grid(
        pred,
        top_controls,
        shards_dir,
        split,
        out / TOP_CONTROLS_NAME,
        f"{split}: highest-scoring controls (logit)",
    )
    _cutout_grid(
        pred,
        low_positives,
        shards_dir,
        split,
        out / BOTTOM_POSITIVES_NAME,
        f"{split}: lowest-scoring lenses (logit)",
    )
    write_breakdown_figures(
        parts, pred.keys, pred.labels, pred.logits, shards_dir, split, out, n_per_family
    )
    return report


def evaluate_checkpoint(
    checkpoint: str | Path,
    shards_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    ctx: DistContext | None = None,
    progress: bool = False,
    selection_edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Score ``split`` with a checkpoint's validated weights and write the report (rank 0).

    The model, the data configuration (normalisation) and the execution mode come from the
    checkpoint's stored config; only the batch size and worker count may be overridden. The
    per-family FPR and the selection function use the checkpoint's validation thresholds
    (``selection_edges``: bin edges, :func:`train.selection.resolve_edges`).

    Returns
    -------
    dict
        The report written to ``out_dir/metrics.json`` (every rank gets it).
    """
    own_ctx = ctx is None
    ctx = ctx or init_distributed(device)
    try:
        return _evaluate(
            checkpoint,
            shards_dir,
            out_dir,
            split,
            batch_size,
            num_workers,
            ctx,
            progress,
            selection_edges,
        )
    finally:
        if own_ctx:
            cleanup(ctx)


def _evaluate(
    checkpoint: str | Path,
    shards_dir: str | Path,
    out_dir: str | Path,
    split: str,
    batch_size: int | None,
    num_workers: int | None,
    ctx: DistContext,
    progress: bool,
    selection_edges: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    check_selection_edges(selection_edges)
    ckpt = load_checkpoint(checkpoint)  # on CPU; load_state_dict copies to the device
    cfg = config_from_dict(ckpt["config"])
    if batch_size is not None:
        cfg.data.batch_size = batch_size
    if num_workers is not None:
        cfg.data.num_workers = num_workers
    model = build_model(cfg.model)
    load_model_weights(model, eval_weights(ckpt), checkpoint)
    model.place(ctx.device, cfg.precision, cfg.channels_last)
    loader = make_loader(
        shards_dir,
        split,
        cfg.data,
        epoch=0,
        rank=ctx.rank,
        world_size=ctx.world_size,
        training=False,
    )
    local = predict(
        model,
        loader,
        ctx.device,
        channels_last=model.channels_last,
        progress=progress and ctx.is_main,
        desc=split,
    )
    pred, counts = gather(local, loader.expected)
    check_exactly_once(counts, f"{split} split")
    extra = {
        "checkpoint": {"path": str(checkpoint), "epoch": ckpt["epoch"], "step": ckpt["step"]},
        **counts,
    }
    report = None
    if ctx.is_main:
        report = write_report(
            pred,
            out_dir,
            shards_dir,
            split,
            extra,
            thresholds=checkpoint_thresholds(ckpt),
            selection_edges=selection_edges,
        )
        log.info("%s: %d samples scored; metrics in %s", split, len(pred), out_dir)
    return broadcast_object(report)
