"""An interrupted-and-resumed CPU run ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.runs import tiny_config, write_dataset
from train.checkpoint import load_checkpoint
from train.cli import main
from train.trainer import run

#: Dropout, stochastic depth, augmentation, shuffling and EMA all on: every RNG stream and every
#: piece of state must be restored for the weights to match.
RESUME_OVERRIDES: dict[str, Any] = {
    "epochs": 4,
    "ema": {"enabled": True, "decay": 0.9},
    "early_stopping": {"enabled": False},
}


def assert_same_state(a: Any, b: Any, where: str = "") -> None:
    """Recursively: tensors torch.equal, containers same keys / lengths, the rest ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, Mapping):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def without_times(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data = write_dataset(tmp_path_factory.mktemp("data"))
    straight = tmp_path_factory.mktemp("straight")
    assert run(tiny_config(**RESUME_OVERRIDES), data, straight).status == "completed"
    resumed = tmp_path_factory.mktemp("resumed")
    first = run(tiny_config(**RESUME_OVERRIDES, stop_after_epochs=2), data, resumed)
    assert first.status == "interrupted" and first.epochs_done == 2
    assert not (resumed / "test_metrics.json").exists()
    # Resume through the CLI, from the run's own config.yaml (stop_after_epochs is allowed to
    # change; it is the only difference).
    rc = main(
        [
            "run",
            "--shards",
            str(data),
            "--out",
            str(resumed),
            "--resume",
            "--set",
            "stop_after_epochs=null",
        ]
    )
    assert rc == 0
    return {"data": data, "straight": straight, "resumed": resumed}


def test_resumed_run_ends_with_bit_identical_state(runs: dict[str, Path]) -> None:
    a = load_checkpoint(runs["straight"] / "checkpoints" / "last.pt")
    b = load_checkpoint(runs["resumed"] / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"]
    for part in ("model", "ema", "optimizer", "scheduler", "early_stopping"):
        assert_same_state(a[part], b[part], part)
    assert_same_state(
        load_checkpoint(runs["straight"] / "checkpoints" / "best.pt")["model"],
        load_checkpoint(runs["resumed"] / "checkpoints" / "best.pt")["model"],
        "best.model",
    )


def test_resumed_history_is_continuous(runs: dict[str, Path]) -> None:
    a = json.loads((runs["straight"] / "history.json").read_text())
    b = json.loads((runs["resumed"] / "history.json").read_text())
    assert [r["epoch"] for r in b] == [0, 1, 2, 3]
    assert [r["step"] for r in b] == [5, 10, 15, 20]
    assert without_times(a) == without_times(b)
    test_a = json.loads((runs["straight"] / "test_metrics.json").read_text())
    test_b = json.loads((runs["resumed"] / "test_metrics.json").read_text())
    assert test_a == test_b


def test_resume_refuses_a_config_that_changes_the_trajectory(
    runs: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    before = (runs["resumed"] / "checkpoints" / "last.pt").read_bytes()
    rc = main(
        [
            "run",
            "--shards",
            str(runs["data"]),
            "--out",
            str(runs["resumed"]),
            "--resume",
            "--set",
            "optim.lr=0.5",
        ]
    )
    assert rc == 2
    assert "train: config error: optim.lr: differs from the checkpoint" in capsys.readouterr().err
    assert (runs["resumed"] / "checkpoints" / "last.pt").read_bytes() == before
