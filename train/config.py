"""The training configuration: one validated dataclass tree, resolved from preset + YAML + CLI.

Resolution order (later wins): dataclass defaults, a preset (``train/presets/NAME.yaml``), a
user YAML file, then command-line overrides given as dotted keys (``optim.lr=1e-3``). The
resolved configuration is written to ``RUN_DIR/config.yaml`` and stored in every checkpoint.
Every error is a :class:`common.configio.ConfigError` naming the dotted key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.atomic import atomic_write_text
from common.configio import ConfigError, check, from_mapping, load_yaml, merge, to_dict
from train.data import DataConfig
from train.early_stopping import EarlyStoppingConfig
from train.ema import EmaConfig
from train.losses import LossConfig
from train.model import ModelConfig
from train.optim import OptimConfig

PRESET_DIR = Path(__file__).with_name("presets")
CONFIG_NAME = "config.yaml"

#: Keys that may differ between a run and its resumption: they do not change the trajectory.
RESUME_MUTABLE: frozenset[str] = frozenset({"stop_after_epochs", "progress", "history_plot_every"})


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes
    ----------
    seed : int
        Seed of model initialisation and of dropout / stochastic depth; the torch RNGs are
        re-seeded from ``(seed, epoch, rank)`` at the start of every epoch. Data order and
        augmentation are seeded by ``data.seed`` (and the epoch).
    epochs : int
        Total epochs; the cosine schedule spans all of them.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    precision : str
        ``bf16``: the backbone runs under bfloat16 autocast on CUDA (the head and the loss are
        always float32); ``fp32``: no autocast. CPU always runs float32.
    channels_last : bool
        Use the channels-last memory format on CUDA.
    compile : bool
        ``torch.compile`` the model for training and evaluation.
    deterministic : bool
        On CPU, ``torch.use_deterministic_algorithms(True)`` (bit-identical resume).
    threads : int, optional
        torch intra-op threads per rank; null: the rank's share of the available cores
        (``os.sched_getaffinity``) minus its ``data.num_workers`` (train/runtime.py).
    max_steps_per_epoch : int, optional
        Debug knob: cap the optimiser steps per epoch. The epoch then sees a subset of the split;
        the history records it (``partial_epoch``) and the exactly-once check becomes "no sample
        twice" instead of "every sample once".
    stop_after_epochs : int, optional
        Stop this invocation after this many epochs, as if interrupted (the schedule still spans
        ``epochs``); continue with ``--resume``.
    progress : bool
        tqdm progress bars (rank 0 only).
    history_plot_every : int
        Redraw ``history.png`` every this many epochs (0: only when the run stops); it is
        always drawn when the run stops.
    init_from : str, optional
        Path of another run's checkpoint whose (validated) weights initialise the model, for
        fine-tuning or continuing an early-stopped run with a new config; optimiser, schedule and
        epochs start afresh (``--resume`` instead continues the same run exactly).
    tensorboard : bool
        Mirror the history's scalars to ``RUN/tensorboard/`` when the optional ``tensorboard``
        package is installed (:mod:`train.tensorboard`).
    data, model, optim, loss, ema, early_stopping
        Component configurations.
    """

    seed: int = 0
    epochs: int = 12
    device: str = "auto"
    precision: str = "bf16"
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = True
    threads: int | None = None
    max_steps_per_epoch: int | None = None
    stop_after_epochs: int | None = None
    progress: bool = True
    history_plot_every: int = 1
    tensorboard: bool = True
    init_from: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def validate(self, prefix: str = "") -> None:
        """Check this level and every component; raise :class:`ConfigError` naming the key."""
        p = f"{prefix}." if prefix else ""
        check(self.seed >= 0, f"{p}seed", "must be >= 0")
        check(self.epochs >= 1, f"{p}epochs", "must be >= 1")
        check(self.device in ("auto", "cpu", "cuda"), f"{p}device", "must be auto, cpu or cuda")
        check(self.precision in ("bf16", "fp32"), f"{p}precision", "must be bf16 or fp32")
        check(self.history_plot_every >= 0, f"{p}history_plot_every", "must be >= 0")
        check(self.threads is None or self.threads >= 1, f"{p}threads", "must be >= 1 or null")
        for name in ("max_steps_per_epoch", "stop_after_epochs"):
            value = getattr(self, name)
            check(value is None or value >= 1, f"{p}{name}", "must be >= 1 or null")
        self.data.validate(f"{p}data")
        self.model.validate(f"{p}model")
        self.optim.validate(f"{p}optim")
        self.loss.validate(f"{p}loss")
        self.ema.validate(f"{p}ema")
        self.early_stopping.validate(f"{p}early_stopping")


def preset_names() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The raw mapping of preset ``name``."""
    names = preset_names()
    check(name in names, "preset", f"unknown preset '{name}' (available: {', '.join(names)})")
    return load_yaml(PRESET_DIR / f"{name}.yaml")


def resolve_config(
    *,
    base: Mapping[str, Any] | None = None,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Merge ``base``, a preset, a YAML file and overrides (in that order) and validate.

    Raises
    ------
    ConfigError
        Unknown key, wrong type or invalid value, naming the dotted key.
    """
    data: dict[str, Any] = dict(base or {})
    if preset:
        data = merge(data, load_preset(preset))
    if config_file:
        data = merge(data, load_yaml(config_file))
    if overrides:
        data = merge(data, overrides)
    return from_mapping(TrainConfig, data)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from a plain mapping (e.g. stored in a checkpoint)."""
    return from_mapping(TrainConfig, data)


def save_config(cfg: TrainConfig, run_dir: str | Path) -> Path:
    """Write the resolved config to ``run_dir/config.yaml`` atomically."""
    path = Path(run_dir) / CONFIG_NAME
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return path


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw mapping of ``run_dir/config.yaml``."""
    return load_yaml(Path(run_dir) / CONFIG_NAME)


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config mappings."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            diffs += config_differences(va, vb, f"{name}.")
        elif va != vb:
            diffs.append(name)
    return diffs


def check_resumable(cfg: TrainConfig, stored: Mapping[str, Any]) -> None:
    """Refuse to resume with a config that would change the trajectory.

    Raises
    ------
    ConfigError
        Naming the first differing key (other than :data:`RESUME_MUTABLE`).
    """
    current = to_dict(cfg)
    diffs = [d for d in config_differences(current, stored) if d not in RESUME_MUTABLE]
    if diffs:
        key = diffs[0]
        now, then = current, stored
        for part in key.split("."):
            now, then = now.get(part), then.get(part)
        raise ConfigError(
            key,
            f"differs from the checkpoint ({now!r} now, {then!r} in the run); a resumed run "
            f"must use the run's config (also differing: {', '.join(diffs[1:]) or 'nothing'})",
        )
