"""Per-sample weighted binary losses on float32 logits (BCE by default, focal optional).

Both losses are computed in float32 from float32 logits. Samples with weight 0 (the padding
batches that keep every rank's step count equal) contribute exactly nothing, not even a NaN: their
per-sample loss is replaced by 0 before the reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from common.configio import check

LOSS_KINDS = ("bce", "focal")


@dataclass
class LossConfig:
    """Training loss.

    Attributes
    ----------
    kind : str
        ``"bce"`` (binary cross-entropy with logits) or ``"focal"`` (sigmoid focal loss).
    focal_alpha : float
        Focal loss weight of the positive class in [0, 1]; a negative value disables it.
    focal_gamma : float
        Focal loss focusing exponent (>= 0).
    label_smoothing : float
        Targets become ``y * (1 - s) + s / 2``.
    """

    kind: str = "bce"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0

    def validate(self, prefix: str = "loss") -> None:
        """Check values; raise :class:`~common.configio.ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        check(self.kind in LOSS_KINDS, f"{p}kind", f"must be one of {', '.join(LOSS_KINDS)}")
        check(self.focal_alpha <= 1.0, f"{p}focal_alpha", "must be <= 1 (negative disables)")
        check(self.focal_gamma >= 0.0, f"{p}focal_gamma", "must be >= 0")
        check(0.0 <= self.label_smoothing < 0.5, f"{p}label_smoothing", "must be in [0, 0.5)")


class WeightedBinaryLoss(nn.Module):
    """``sum(w_i * loss_i) / sum(w_i)`` over samples with ``w_i > 0`` (0 if there are none).

    Parameters
    ----------
    cfg : LossConfig
        Loss configuration.
    """

    def __init__(self, cfg: LossConfig):
        super().__init__()
        cfg.validate("loss")
        self.cfg = cfg

    def per_sample(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Unreduced float32 loss ``(B,)`` for float32 logits and {0, 1} labels."""
        if logits.dtype != torch.float32:
            raise TypeError(f"losses need float32 logits, got {logits.dtype}")
        targets = labels.float()
        s = self.cfg.label_smoothing
        if s > 0:
            targets = targets * (1.0 - s) + 0.5 * s
        if self.cfg.kind == "focal":
            return sigmoid_focal_loss(
                logits,
                targets,
                alpha=self.cfg.focal_alpha,
                gamma=self.cfg.focal_gamma,
                reduction="none",
            )
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Weighted mean loss (scalar float32).

        Parameters
        ----------
        logits : Tensor
            float32 ``(B,)``.
        labels : Tensor
            ``(B,)`` in {0, 1}.
        weights : Tensor
            ``(B,)`` non-negative; 0 marks padding.
        """
        weights = weights.float()
        real = weights > 0
        per_sample = torch.where(real, self.per_sample(logits, labels) * weights, 0.0)
        return per_sample.sum() / weights.sum().clamp_min(torch.finfo(torch.float32).tiny)


def build_loss(cfg: LossConfig) -> WeightedBinaryLoss:
    """The training loss described by ``cfg``."""
    return WeightedBinaryLoss(cfg)
