"""TensorBoard scalars beside ``history.json`` (optional: only when ``tensorboard`` is installed).

``RUN/tensorboard/`` receives, per epoch, every numeric history field under its flat name
(``train_loss``, ``lr``, ``val/auc``, ``val/tpr@fpr1e-3``, ...; the same flattening as the history
plot, :func:`train.plots.history_panels`), with the epoch as the step. ``history.json`` stays the
record; this is a mirror for people who watch runs in TensorBoard::

    tensorboard --logdir RUN/tensorboard

Mirroring is idempotent: ``RUN/tensorboard/epochs.json`` lists the epochs already written, so a
resumed run (a new process) adds only the new ones (a crash between the event write and that list
can repeat one epoch's points at the same step, which TensorBoard shows as one).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text

TENSORBOARD_DIR = "tensorboard"
_WRITTEN = "epochs.json"


def available() -> bool:
    """Whether the ``tensorboard`` package (needed by ``torch.utils.tensorboard``) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def _scalars(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_scalars(value, f"{name}/"))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and key not in ("epoch", "best_epoch"):
            out[name] = float(value)
    return out


def mirror_history(history: Sequence[Mapping[str, Any]], run_dir: Path) -> int:
    """Write the scalars of every epoch of ``history`` not yet in ``RUN/tensorboard``.

    Returns the number of epochs written (0 when TensorBoard is not installed).
    """
    if not available() or not history:
        return 0
    from torch.utils.tensorboard import SummaryWriter

    log_dir = Path(run_dir) / TENSORBOARD_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    done_file = log_dir / _WRITTEN
    done = set(json.loads(done_file.read_text())) if done_file.is_file() else set()
    new = [r for r in history if isinstance(r.get("epoch"), int) and r["epoch"] not in done]
    if not new:
        return 0
    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for record in new:
            for name, value in _scalars(record).items():
                writer.add_scalar(name, value, global_step=record["epoch"])
        writer.flush()
    finally:
        writer.close()
    atomic_write_text(done_file, json.dumps(sorted(done | {r["epoch"] for r in new})))
    return len(new)
