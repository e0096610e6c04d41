"""``--init-from CKPT``: a new run starting from another run's validated weights (fine-tuning)."""

from __future__ import annotations

import pytest
import torch

from common.configio import ConfigError
from tests.runs import read_history, tiny_config
from train.checkpoint import eval_weights, load_checkpoint
from train.cli import main
from train.errors import CheckpointError
from train.model import build_model
from train.trainer import init_weights, run


@pytest.fixture(scope="module")
def first_run(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("first")
    run(tiny_config(epochs=1), dataset, run_dir)
    return run_dir


def test_init_weights_loads_the_validated_weights(first_run) -> None:
    best = first_run / "checkpoints" / "best.pt"
    model = build_model(tiny_config().model)
    init_weights(model, best)
    want = eval_weights(load_checkpoint(best))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, want[name]), name


def test_bad_init_from_is_one_clear_error(first_run, tmp_path) -> None:
    with pytest.raises(ConfigError, match="init_from: checkpoint not found"):
        init_weights(build_model(tiny_config().model), tmp_path / "nope.pt")
    other = tiny_config(model={"dims": [8, 16, 32, 64]}).model
    with pytest.raises(CheckpointError, match="do not fit"):
        init_weights(build_model(other), first_run / "checkpoints" / "best.pt")


def test_cli_init_from_starts_a_new_run_with_another_config(dataset, first_run, tmp_path) -> None:
    out = tmp_path / "finetune"
    best = first_run / "checkpoints" / "best.pt"
    args = ["run", "--shards", str(dataset), "--out", str(out), "--init-from", str(best)]
    args += ["--epochs", "1", "--device", "cpu", "--no-progress", "--set", "optim.lr=5e-4"]
    args += ["--set", "model.arch=convnext_atto", "--set", "model.depths=[1,1,1,1]"]
    args += ["--set", "model.dims=[16,32,64,128]", "--set", "data.num_workers=0"]
    args += ["--set", "data.batch_size=8", "--set", "history_plot_every=0"]
    assert main(args) == 0
    history = read_history(out)
    assert [r["epoch"] for r in history] == [0]  # a new run: epochs start afresh
