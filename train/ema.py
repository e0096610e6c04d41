"""Optional exponential moving average of the model weights (torch's ``AveragedModel``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from common.configio import check


@dataclass
class EmaConfig:
    """EMA of the weights, updated after every optimiser step.

    Attributes
    ----------
    enabled : bool
        Keep an EMA copy; validation, checkpoint selection and test use it when enabled.
    decay : float
        EMA decay per optimiser step, in (0, 1).
    """

    enabled: bool = False
    decay: float = 0.999

    def validate(self, prefix: str = "ema") -> None:
        """Check values; raise :class:`~common.configio.ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        check(0.0 < self.decay < 1.0, f"{p}decay", "must be in (0, 1)")


def build_ema(model: nn.Module, cfg: EmaConfig) -> AveragedModel | None:
    """An EMA copy of ``model`` (parameters and buffers), or None when disabled."""
    if not cfg.enabled:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.decay), use_buffers=True)


def ema_module_state(ema_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wrapped model's state dict from an ``AveragedModel`` state dict."""
    prefix = "module."
    return {k[len(prefix) :]: v for k, v in ema_state.items() if k.startswith(prefix)}
