"""Tiny training runs for tests: a learnable dataset, a tiny CPU config, exactly-once checks.

Imported by the trainer, eval, resume, torchrun and scoring tests (and by ``conftest.py``'s
fixtures), so that no test module imports another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from common.configio import merge
from tests.datasets import make_tiny_dataset
from train.config import TrainConfig, resolve_config
from train.metrics import evaluate_scores

#: Odd shard counts everywhere, so the exactly-once partition has to cut shards.
TINY_SIZES = {"train": (14, 13, 13), "val": (9, 8, 7), "test": (6, 5, 5)}

TINY_OVERRIDES: dict[str, Any] = {
    "epochs": 2,
    "device": "cpu",
    "progress": False,
    "history_plot_every": 0,
    "data": {"batch_size": 8, "num_workers": 0, "shuffle_buffer": 16},
    "model": {
        "arch": "convnext_atto",
        "depths": [1, 1, 1, 1],
        "dims": [16, 32, 64, 128],
        "drop_rate": 0.1,
        "drop_path_rate": 0.1,
    },
    "optim": {"lr": 2e-3, "warmup_epochs": 0.5},
    "early_stopping": {"patience": 5},
}


def write_dataset(root: Path, sizes: dict[str, tuple[int, ...]] = TINY_SIZES) -> Path:
    """A tiny dataset whose positives carry a bright ring (learnable in a few steps)."""
    make_tiny_dataset(root, sizes, seed=0, ring_amp=1.0)
    return root


def tiny_overrides(**extra: Any) -> dict[str, Any]:
    """:data:`TINY_OVERRIDES` merged with nested ``extra``."""
    return merge(TINY_OVERRIDES, extra)


def tiny_config(**extra: Any) -> TrainConfig:
    """A validated tiny CPU config (:func:`tiny_overrides`)."""
    return resolve_config(overrides=tiny_overrides(**extra))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    return json.loads((run_dir / "history.json").read_text())


def assert_exactly_once(record: dict[str, Any]) -> None:
    """samples_seen == unique_samples == expected (> 0)."""
    assert record["expected"] > 0
    assert record["samples_seen"] == record["unique_samples"] == record["expected"]


def report_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A tiny dataset, a two-epoch history and an eval ``metrics.json``: the report's inputs."""
    make_tiny_dataset(tmp_path / "shards", {"train": (4,), "val": (4,), "test": (4,)})
    run, ev = tmp_path / "run", tmp_path / "eval"
    run.mkdir()
    ev.mkdir()
    history = [
        {
            "epoch": e,
            "train_loss": 0.5 - 0.1 * e,
            "samples_seen": 4,
            "unique_samples": 4,
            "expected": 4,
            "val": {"auc": 0.7 + 0.1 * e, "tpr@fpr1e-3": 0.25 * e},
        }
        for e in range(2)
    ]
    (run / "history.json").write_text(json.dumps(history))
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    logits = (rng.normal(size=100) + 2.0 * labels).astype(np.float32)
    (ev / "metrics.json").write_text(json.dumps({"metrics": evaluate_scores(logits, labels)}))
    return tmp_path / "shards", run, ev


def dataset_digests(out: Path) -> dict[str, str]:
    """sha256 of every shard, index, summary, manifest and rejects file of a build (not parents)."""
    import hashlib

    files = sorted(
        p
        for p in Path(out).rglob("*")
        if p.is_file() and p.suffix in (".tar", ".json", ".jsonl") and "parents" not in p.parts
    )
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


#: ``train run`` flags of the tiny CPU model (the CLI form of :data:`TINY_OVERRIDES`'s model).
TINY_RUN_FLAGS: list[str] = [
    "--device",
    "cpu",
    "--arch",
    "convnext_atto",
    "--set",
    "model.depths=[1,1,1,1]",
    "--set",
    "model.dims=[16,32,64,128]",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--no-progress",
]
