"""What a run keeps in its directory: start, resume, checkpoints, history, the final test.

:class:`RunState` is the persistence half of :class:`train.trainer.Trainer` (which inherits it;
the epoch loop is in :mod:`train.trainer`):

* :meth:`RunState.start_fresh` refuses a directory that already holds a run and writes
  ``config.yaml``;
* :meth:`RunState.resume` restores model, optimiser, scheduler, EMA, early stopping, history,
  step counter and this rank's RNG states from ``checkpoints/last.pt``;
* :meth:`RunState.save` writes ``checkpoints/best.pt`` (when the monitored metric improved) and
  ``checkpoints/last.pt`` atomically, then ``history.json`` (and ``history.png``);
* :meth:`RunState.test_best` evaluates the best checkpoint on the test split (``test/``,
  ``test_metrics.json``);
* the two ways an epoch stops a run: samples not seen exactly once (recorded in
  ``history.json`` first) and a non-finite loss (nothing saved).

:func:`init_weights` starts a run from another run's validated weights (``init_from``). Rank 0
writes; every rank computes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from common.configio import ConfigError, to_dict
from train.accounting import check_exactly_once
from train.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    capture_rng,
    collect_state,
    copy_checkpoint,
    eval_weights,
    load_checkpoint,
    load_model_weights,
    restore_rank_rng,
    restore_state,
    save_checkpoint,
)
from train.config import TrainConfig, check_resumable, save_config
from train.distributed import DistContext, all_gather_object, barrier
from train.early_stopping import EarlyStopping
from train.errors import NonFiniteLossError, TrainingError
from train.evaluate import evaluate_checkpoint, write_json
from train.history import TEST_DIR_NAME, TEST_METRICS_NAME, test_summary, write_history
from train.rundir import HISTORY_KEY as DATASET_CHANGE_KEY
from train.rundir import check_same_dataset, last_checkpoint_note
from train.tensorboard import mirror_history

__all__ = ["RunState", "init_weights"]

# the run's one log channel (the epoch loop's, :mod:`train.trainer`)
log = logging.getLogger("train.trainer")


def init_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Start from the validated weights of another run's checkpoint (``init_from``, fine-tuning).

    Only the weights are taken (the EMA copy when that run kept one); optimiser, schedule, epoch
    and early stopping start afresh. The checkpoint's digest is verified; weights that do not fit
    this run's ``model`` config are a one-line :class:`~train.errors.CheckpointError`.
    """
    if not Path(path).is_file():
        raise ConfigError("init_from", f"checkpoint not found: {path}")
    load_model_weights(model, eval_weights(load_checkpoint(path)), path)
    log.info("model weights initialised from %s", path)


class RunState:
    """Run-directory persistence of a :class:`train.trainer.Trainer` (a mixin: no state of its own).

    Uses the trainer's configuration, directories, model, optimiser, scheduler, EMA, early
    stopping, history and step counter (the attributes annotated below).
    """

    cfg: TrainConfig
    shards_dir: Path
    run_dir: Path
    ctx: DistContext
    dataset: dict[str, Any]
    allow_dataset_change: bool
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: Any
    early: EarlyStopping
    history: list[dict[str, Any]]
    start_epoch: int
    step: int

    # ------------------------------------------------------------------ start / resume
    def start_fresh(self) -> None:
        """Begin a new run; refuse a directory that already holds one."""
        if (self.run_dir / LAST_NAME).exists():
            raise ConfigError(
                "out",
                f"{self.run_dir} already holds a run ({LAST_NAME}); pass --resume to continue "
                "it or choose a new output directory",
            )
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir)
        barrier()

    def resume(self) -> None:
        """Restore everything from ``checkpoints/last.pt`` and continue after its epoch."""
        path = self.run_dir / LAST_NAME
        if not path.is_file():
            raise ConfigError("resume", f"no checkpoint to resume: {path} does not exist")
        # Loaded on CPU: RNG states must stay CPU tensors; load_state_dict moves the rest.
        ckpt = load_checkpoint(path)
        check_resumable(self.cfg, ckpt["config"])
        changed = check_same_dataset(
            ckpt.get("dataset"), self.dataset, path, self.allow_dataset_change
        )
        restore_state(
            ckpt,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            ema=self.ema,
            early_stopping=self.early,
            scaler=None,
        )
        restore_rank_rng(ckpt["rng"], self.ctx.rank, self.ctx.world_size)
        self.history = list(ckpt["history"])
        if changed is not None and self.history:
            self.history[-1][DATASET_CHANGE_KEY] = changed
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.step = int(ckpt["step"])
        if self.ctx.is_main:
            save_config(self.cfg, self.run_dir)
            self._write_history()
            log.info("resumed from %s: epoch %d done, step %d", path, ckpt["epoch"], self.step)

    # -------------------------------------------------------------------- stopping
    def _check_counts(
        self,
        epoch: int,
        counts: dict[str, int],
        split: str,
        subset: bool,
        stats: dict[str, Any] | None = None,
    ) -> None:
        """Stop (after recording the counts in history.json) unless exactly-once holds."""
        try:
            check_exactly_once(counts, f"epoch {epoch}: {split} split", subset=subset)
        except TrainingError as exc:
            if self.ctx.is_main:
                failed = {"epoch": epoch, "split": split, **(stats or counts), "error": str(exc)}
                self._write_history([*self.history, failed], plot=True)
            raise

    def _non_finite(self, loss: torch.Tensor, epoch: int, index: int) -> None:
        last = self.run_dir / LAST_NAME
        kept = last_checkpoint_note(last, self.history)
        raise NonFiniteLossError(
            f"non-finite training loss ({float(loss.detach())}) at epoch {epoch}, batch {index} (global "
            f"step {self.step}); stopping without saving - {kept}. Lower optim.lr or check the "
            "data."
        )

    # ---------------------------------------------------------------------- output
    def save(self, epoch: int, improved: bool) -> None:
        """Write best.pt (if improved) then last.pt atomically, history.json and its plot."""
        rng = all_gather_object(capture_rng())
        if self.ctx.is_main:
            state = collect_state(
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                ema=self.ema,
                early_stopping=self.early,
                scaler=None,
                epoch=epoch,
                step=self.step,
                history=self.history,
                config=to_dict(self.cfg),
                rng=rng,
            )
            state["dataset"] = self.dataset
            # best first: a crash in between leaves last.pt one epoch behind, and the resumed
            # run redoes that epoch identically.
            if improved:
                save_checkpoint(state, self.run_dir / BEST_NAME)
                copy_checkpoint(self.run_dir / BEST_NAME, self.run_dir / LAST_NAME)
            else:
                save_checkpoint(state, self.run_dir / LAST_NAME)
            every = self.cfg.history_plot_every
            self._write_history(plot=every > 0 and (epoch + 1) % every == 0)
        barrier()

    def _write_history(
        self, history: list[dict[str, Any]] | None = None, plot: bool = False
    ) -> None:
        """Write ``history.json`` (and ``history.png`` when ``plot``); rank 0 only."""
        records = self.history if history is None else history
        write_history(records, self.run_dir, plot)
        if self.cfg.tensorboard:
            mirror_history(records, self.run_dir)

    def test_best(self) -> dict[str, float]:
        """Evaluate ``checkpoints/best.pt`` on the test split; write ``test/`` and ``test_metrics.json``."""
        best = self.run_dir / BEST_NAME
        report = evaluate_checkpoint(
            best,
            self.shards_dir,
            self.run_dir / TEST_DIR_NAME,
            split="test",
            ctx=self.ctx,
            progress=self.cfg.progress,
        )
        if self.ctx.is_main:
            summary = test_summary(report, BEST_NAME, self.early.monitor, self.early.best)
            write_json(summary, self.run_dir / TEST_METRICS_NAME)
        return report["summary"]
