"""The training loop: exactly-once epochs, per-step schedule, early stopping, exact resume.

:func:`run` is the entry point (``train run``). Per epoch it

1. re-seeds the torch / numpy / python RNGs from ``(seed, epoch, rank)`` and trains over
   :func:`train.data.make_loader` (data order from ``(data.seed, epoch)`` only), stepping the
   warmup + cosine schedule after every optimiser step, clipping gradients, updating the EMA;
   a non-finite loss on any rank stops the run at once (nothing is saved, the last good
   checkpoint stays);
2. gathers the keys of every real sample from all ranks and stops unless ``samples_seen ==
   unique_samples == expected`` (the manifest count);
3. scores the whole validation split exactly once (logits gathered from all ranks) and computes
   the tie-aware metrics on logits;
4. appends a record to the history, updates early stopping, writes ``checkpoints/best.pt`` (when the
   monitored metric improved) and ``checkpoints/last.pt`` atomically, then ``history.json`` and
   ``history.png``.

At the end the **best** checkpoint is evaluated on the test split (``RUN_DIR/test/`` and
``RUN_DIR/test_metrics.json``). ``resume=True`` restores model, optimiser, scheduler, EMA,
early stopping, history, step counter and RNG states from ``checkpoints/last.pt``; since data order and RNG
streams depend only on ``(seed, epoch, rank)``, a resumed CPU run ends bit-identical to an
uninterrupted one. Rank 0 logs and writes; every rank computes.

This module holds the epoch loop (:class:`Trainer`) and :func:`run`; starting, resuming,
checkpointing, the history files, the exactly-once stop and the final test are the run-directory
half, :class:`train.run_state.RunState`, which :class:`Trainer` inherits.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from train.accounting import accounting, real_keys
from train.config import TrainConfig
from train.data import make_loader
from train.distributed import (
    DistContext,
    all_gather_object,
    all_ranks_true,
    broadcast_object,
    cleanup,
    gather_keys,
    init_distributed,
)
from train.early_stopping import EarlyStopping
from train.ema import build_ema
from train.errors import TrainingError
from train.evaluate import gather, move_batch, predict
from train.history import RunSummary, epoch_message
from train.losses import build_loss
from train.model import build_model
from train.optim import build_optimizer, build_scheduler, clip_gradients
from train.run_state import RunState, init_weights
from train.rundir import dataset_fingerprint, lock_run_dir
from train.runtime import check_shards, configure_backends, seed_epoch, validation_controls
from train.validation import validation_record

__all__ = ["Trainer", "check_shards", "init_weights", "run"]

log = logging.getLogger(__name__)


class Trainer(RunState):
    """One training run in ``run_dir`` on the data in ``shards_dir`` (see the module docstring).

    Parameters
    ----------
    cfg : TrainConfig
        Validated configuration.
    shards_dir, run_dir : Path
        Dataset root (with ``manifest.json``) and output directory.
    ctx : DistContext
        This process's place in the job.
    """

    def __init__(self, cfg: TrainConfig, shards_dir: Path, run_dir: Path, ctx: DistContext):
        self.cfg, self.shards_dir, self.run_dir, self.ctx = cfg, shards_dir, run_dir, ctx
        self.dataset = dataset_fingerprint(shards_dir)  # recorded in every checkpoint
        self.allow_dataset_change = False
        configure_backends(cfg, ctx.device)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model).place(ctx.device, cfg.precision, cfg.channels_last)
        if cfg.init_from is not None:
            init_weights(self.model, cfg.init_from)
        self.ema = build_ema(self.model, cfg.ema)
        self.train_forward: torch.nn.Module = self.model
        if ctx.distributed:
            device_ids = [ctx.device] if ctx.device.type == "cuda" else None
            self.train_forward = DistributedDataParallel(self.model, device_ids=device_ids)
        eval_module = self.ema.module if self.ema is not None else self.model
        self.eval_forward: torch.nn.Module = eval_module
        if cfg.compile:
            self.train_forward = torch.compile(self.train_forward)
            self.eval_forward = torch.compile(eval_module)
        self.loss_fn = build_loss(cfg.loss)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = build_scheduler(
            self.optimizer, cfg.optim, self.steps_per_epoch, cfg.epochs
        )
        self.early = EarlyStopping(cfg.early_stopping, n_val_neg=validation_controls(shards_dir))
        if self.early.warning and ctx.is_main:
            log.warning(self.early.warning)
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.step = 0

    # ------------------------------------------------------------------------ set-up
    def _loader(self, split: str, epoch: int, training: bool) -> Any:
        return make_loader(
            self.shards_dir,
            split,
            self.cfg.data,
            epoch=epoch,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            training=training,
        )

    def _steps_per_epoch(self) -> int:
        steps = len(self._loader("train", 0, training=True))
        if self.cfg.max_steps_per_epoch is not None:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        if steps < 1:
            raise TrainingError("the train split is empty")
        return steps

    # ----------------------------------------------------------------------- the loop
    def fit(self) -> RunSummary:
        """Train until the last epoch, early stopping or ``stop_after_epochs``; then test."""
        ran = 0
        status = "completed"
        for epoch in range(self.start_epoch, self.cfg.epochs):
            if self.early.should_stop:
                break
            if self.cfg.stop_after_epochs is not None and ran >= self.cfg.stop_after_epochs:
                status = "interrupted"
                break
            self.run_epoch(epoch)
            ran += 1
        if self.early.should_stop:
            status = "early_stopped"
            log.info(self.early.stop_message())
        summary = RunSummary(status, len(self.history), self.early.best_epoch, self.early.best)
        if self.ctx.is_main:
            self._write_history(plot=True)
        if status == "interrupted":
            log.info("stopped after %d epoch(s) as requested; continue with --resume", ran)
            return summary
        summary.test = self.test_best()
        return summary

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """Train, check, validate, record and checkpoint one epoch; return its history record."""
        t0 = time.perf_counter()
        seed_epoch(self.cfg.seed, epoch, self.ctx.rank)
        record: dict[str, Any] = {"epoch": epoch, **self.train_one_epoch(epoch)}
        record["val"] = self.validate(epoch)
        improved = self.early.update(epoch, record["val"])
        record["best_epoch"] = self.early.best_epoch
        record["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        self.history.append(record)
        self.save(epoch, improved)
        log.info(epoch_message(record, self.cfg.epochs, self.early.monitor, improved))
        return record

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        """Optimise over the train split once; return loss, lr and sample accounting."""
        cfg, ctx = self.cfg, self.ctx
        loader = self._loader("train", epoch, training=True)
        n_steps = len(loader)
        partial = cfg.max_steps_per_epoch is not None and cfg.max_steps_per_epoch < n_steps
        n_steps = min(n_steps, cfg.max_steps_per_epoch or n_steps)
        self.train_forward.train()
        loss_sum = torch.zeros((), device=ctx.device)
        weight_sum = torch.zeros((), device=ctx.device)
        keys: list[str] = []
        bar = tqdm(
            total=n_steps,
            desc=f"epoch {epoch} ({epoch + 1} of {cfg.epochs})",
            leave=False,
            disable=not (cfg.progress and ctx.is_main),
        )
        for i, batch in enumerate(loader):
            if i >= n_steps:
                break
            image, meta, label, weight = move_batch(batch, ctx.device, self.model.channels_last)
            logits = self.train_forward(image, meta)
            loss = self.loss_fn(logits, label, weight)
            if not all_ranks_true(torch.isfinite(loss)):
                self._non_finite(loss, epoch, i)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(self.model.parameters(), cfg.optim.grad_clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            w = weight.sum().detach()
            loss_sum += loss.detach() * w
            weight_sum += w
            keys += real_keys(batch["key"], batch["weight"].tolist())
            bar.update()
        bar.close()
        counts = accounting(gather_keys(keys), loader.expected)
        totals = all_gather_object((float(loss_sum), float(weight_sum)))
        stats = {
            "step": self.step,
            "train_loss": sum(s for s, _ in totals) / max(sum(w for _, w in totals), 1e-12),
            "lr": self.scheduler.get_last_lr()[0],
            **counts,
        }
        if partial:
            stats["partial_epoch"] = True
        self._check_counts(epoch, counts, "train", subset=partial, stats=stats)
        return stats

    def validate(self, epoch: int) -> dict[str, Any]:
        """Score every validation sample exactly once; metrics on the gathered logits."""
        loader = self._loader("val", epoch, training=False)
        local = predict(
            self.eval_forward,
            loader,
            self.ctx.device,
            channels_last=self.model.channels_last,
        )
        pred, counts = gather(local, loader.expected)
        self._check_counts(epoch, counts, "val", subset=False)
        return validation_record(pred, counts, self.loss_fn, f"epoch {epoch}: validation")


def run(
    cfg: TrainConfig,
    shards_dir: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    allow_dataset_change: bool = False,
) -> RunSummary:
    """Train (or resume) a run; see the module docstring.

    Parameters
    ----------
    cfg : TrainConfig
        Resolved configuration (validated again here).
    shards_dir : str or Path
        Dataset root with ``manifest.json``.
    run_dir : str or Path
        Output directory: ``config.yaml``, ``checkpoints/best.pt``, ``checkpoints/last.pt``, ``history.json``,
        ``history.png``, ``test/``, ``test_metrics.json``.
    resume : bool
        Continue the run in ``run_dir`` from ``checkpoints/last.pt``.
    allow_dataset_change : bool
        Let a resume continue on a dataset other than the one the run recorded (the change is
        recorded in history); otherwise that is refused (:mod:`train.rundir`).

    Raises
    ------
    ConfigError
        Invalid configuration, missing dataset, or an unusable ``run_dir``.
    TrainingError
        A failed invariant: non-finite loss, samples not seen exactly once.
    """
    cfg.validate()
    shards_dir, run_dir = Path(shards_dir), Path(run_dir)
    check_shards(shards_dir)
    ctx = init_distributed(cfg.device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    lock = None
    try:
        lock = lock_run_dir(run_dir, ctx)  # one run per directory (train/rundir.py)
        trainer = Trainer(cfg, shards_dir, run_dir, ctx)
        trainer.allow_dataset_change = allow_dataset_change
        if resume:
            trainer.resume()
        else:
            trainer.start_fresh()
        summary = trainer.fit()
        return broadcast_object(summary)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        if lock is not None:
            lock.release()
        cleanup(ctx)
