"""AdamW without weight decay on norms, biases and other 1-D parameters; per-step warmup + cosine.

The learning-rate schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` driven by a picklable
:class:`WarmupCosine` and stepped after **every optimiser step** (Gen-2 stepped a cosine per epoch
with no warmup). Its state (``last_epoch`` = steps taken) is part of the checkpoint, so a resumed
run continues the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from timm.optim import param_groups_weight_decay
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from common.configio import check


@dataclass
class OptimConfig:
    """Optimiser, schedule and gradient clipping.

    Attributes
    ----------
    lr : float
        Peak learning rate (reached at the end of warmup).
    weight_decay : float
        AdamW decoupled weight decay, applied to weights with ndim >= 2 only.
    betas : list of float
        AdamW betas.
    eps : float
        AdamW epsilon.
    warmup_epochs : float
        Linear warmup length in epochs (converted to optimiser steps; may be fractional).
    min_lr_ratio : float
        Final learning rate of the cosine as a fraction of ``lr``.
    grad_clip_norm : float
        Clip the global gradient L2 norm to this value; 0 disables clipping.
    """

    lr: float = 3e-4
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip_norm: float = 1.0

    def validate(self, prefix: str = "optim") -> None:
        """Check values; raise :class:`~common.configio.ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        check(math.isfinite(self.lr) and self.lr > 0, f"{p}lr", "must be a positive number")
        check(self.weight_decay >= 0, f"{p}weight_decay", "must be >= 0")
        check(
            len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
            f"{p}betas",
            "expected two numbers in [0, 1)",
        )
        check(self.eps > 0, f"{p}eps", "must be > 0")
        check(self.warmup_epochs >= 0, f"{p}warmup_epochs", "must be >= 0")
        check(0.0 <= self.min_lr_ratio <= 1.0, f"{p}min_lr_ratio", "must be in [0, 1]")
        check(self.grad_clip_norm >= 0, f"{p}grad_clip_norm", "must be >= 0 (0 disables)")


class WarmupCosine:
    """LR multiplier for optimiser step ``t``: linear warmup, then cosine down to ``min_ratio``.

    ``factor(t) = (t + 1) / warmup`` for ``t < warmup``, then
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` with
    ``p = min(1, (t - warmup) / (total - warmup))``.

    A plain object with numeric attributes, so :class:`LambdaLR` stores it in its state dict and
    checkpoints stay loadable with ``weights_only=True``.
    """

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float):
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW; parameters with ndim <= 1 (norm weights, biases, layer scales) get no decay."""
    groups = param_groups_weight_decay(model, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int
) -> LambdaLR:
    """Per-step warmup + cosine over ``epochs * steps_per_epoch`` optimiser steps."""
    total = max(1, int(steps_per_epoch) * int(epochs))
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    return LambdaLR(optimizer, WarmupCosine(total, warmup, cfg.min_lr_ratio))


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor | None:
    """Clip the global gradient norm to ``max_norm`` (no-op when 0).

    Returns the norm before clipping as a tensor (no host sync), or None when disabled.
    """
    if max_norm <= 0:
        return None
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
