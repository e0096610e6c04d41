"""TensorBoard scalars beside history.json: every epoch once, read back with TensorBoard itself."""

from __future__ import annotations

import json

import pytest

from tests.runs import read_history, tiny_config
from train.tensorboard import TENSORBOARD_DIR, available, mirror_history
from train.trainer import run

pytestmark = pytest.mark.skipif(not available(), reason="tensorboard is not installed")


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_run_mirrors_history_and_a_second_mirror_writes_nothing(dataset, tmp_path) -> None:
    run_dir = tmp_path / "run"
    run(tiny_config(epochs=2), dataset, run_dir)
    history = read_history(run_dir)
    events = _events(run_dir / TENSORBOARD_DIR)
    assert [step for step, _ in events["val/auc"]] == [0, 1]
    for record in history:
        step = record["epoch"]
        assert dict(events["train_loss"])[step] == pytest.approx(record["train_loss"], rel=1e-6)
        assert dict(events["val/auc"])[step] == pytest.approx(record["val"]["auc"], rel=1e-6)
    assert mirror_history(history, run_dir) == 0  # as after a resume: nothing written twice
    assert json.loads((run_dir / TENSORBOARD_DIR / "epochs.json").read_text()) == [0, 1]
    assert len(_events(run_dir / TENSORBOARD_DIR)["val/auc"]) == 2


def test_disabled_by_config(dataset, tmp_path) -> None:
    run(tiny_config(epochs=1, tensorboard=False), dataset, tmp_path / "run")
    assert not (tmp_path / "run" / TENSORBOARD_DIR).exists()
