"""The validation record of an epoch: loss and every registered metric on gathered logits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from train.evaluate import Predictions, compute_metrics
from train.metrics import flat_summary
from train.thresholds import operating_thresholds

__all__ = ["validation_record"]


def validation_record(
    pred: Predictions,
    counts: dict[str, int],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    what: str,
) -> dict[str, Any]:
    """``{"loss", <flat summary>, "thresholds", <accounting counts>}`` of one validation pass.

    ``thresholds`` holds the logit of every operating point (:mod:`train.thresholds`).

    Parameters
    ----------
    pred : Predictions
        Logits of every validation sample, gathered from all ranks.
    counts : dict
        Exactly-once accounting of the pass (:func:`train.accounting.accounting`), already
        checked.
    loss_fn : callable
        The training loss, evaluated with unit weights.
    what : str
        Context for error messages (e.g. ``"epoch 3: validation"``).

    Raises
    ------
    TrainingError
        If the metrics cannot be computed (a class missing, non-finite logits).
    """
    logits = torch.from_numpy(pred.logits)
    labels = torch.from_numpy(pred.labels.astype(np.float32))
    loss = float(loss_fn(logits, labels, torch.ones_like(labels)))
    metrics = compute_metrics(pred, what)
    # The operating points' logit thresholds travel with the checkpoint (train score --threshold).
    thresholds = {"thresholds": operating_thresholds(metrics)}
    return {"loss": loss, **flat_summary(metrics), **thresholds, **counts}
