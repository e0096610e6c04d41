"""The training loop on a tiny real dataset: outputs, accounting, early stopping, failures, CLI.

The tiny-run helpers live in :mod:`tests.runs`; the ``dataset`` fixture in ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from common.configio import to_dict
from tests.runs import (
    TINY_SIZES,
    assert_exactly_once,
    read_history,
    tiny_config,
)
from train import trainer as trainer_mod
from train.checkpoint import load_checkpoint
from train.cli import main
from train.config import load_run_config, resolve_config
from train.errors import NonFiniteLossError, SampleAccountingError
from train.evaluate import evaluate_checkpoint
from train.losses import build_loss
from train.trainer import run


@pytest.fixture(scope="module")
def finished_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    summary = run(tiny_config(), dataset, run_dir)
    assert summary.status == "completed" and summary.epochs_done == 2
    return run_dir


def test_run_writes_history_checkpoints_and_test_metrics(finished_run: Path) -> None:
    history = read_history(finished_run)
    assert [r["epoch"] for r in history] == [0, 1]
    for record in history:
        assert_exactly_once(record)
        assert record["expected"] == sum(TINY_SIZES["train"])
        assert_exactly_once(record["val"])
        assert record["val"]["expected"] == sum(TINY_SIZES["val"])
        for key in (
            "tpr@fpr1e-4",
            "tpr@fpr1e-3",
            "tpr@fpr1e-2",
            "fpr@tpr0.50",
            "fpr@tpr0.70",
            "fpr@tpr0.85",
            "auc",
            "top_tie_size",
            "loss",
        ):
            assert isinstance(record["val"][key], float), key
        assert record["train_loss"] > 0 and record["lr"] > 0 and record["epoch_time_s"] > 0
    assert history[1]["step"] == 2 * history[0]["step"]  # 40 samples / 8 = 5 steps per epoch
    for name in ("best.pt", "last.pt"):
        raw = torch.load(
            finished_run / "checkpoints" / name, weights_only=True
        )  # never unpickles code
        assert raw["epoch"] in (0, 1) and "optimizer" in raw and "rng" in raw
    last = load_checkpoint(finished_run / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and last["history"] == history
    test = json.loads((finished_run / "test_metrics.json").read_text())
    assert_exactly_once(test)
    assert test["expected"] == sum(TINY_SIZES["test"])
    assert test["epoch"] == last["early_stopping"]["best_epoch"]
    assert (finished_run / "history.png").stat().st_size > 0
    assert (finished_run / "test" / "scores.parquet").is_file()
    stored = resolve_config(base=load_run_config(finished_run))
    assert to_dict(stored) == to_dict(tiny_config())


def test_the_model_learns_the_ring(finished_run: Path) -> None:
    history = read_history(finished_run)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(r["val"]["auc"] for r in history) > 0.8


def test_early_stopping_stops_and_the_best_checkpoint_is_the_one_tested(
    dataset: Path, tmp_path: Path
) -> None:
    # min_delta 1 makes any AUC after the first epoch "no improvement": with patience 1 the run
    # must stop after epoch 1, keeping epoch 0 as best although epoch 1 trained further.
    cfg = tiny_config(
        epochs=5,
        early_stopping={"monitor": "auc", "mode": "max", "patience": 1, "min_delta": 1.0},
    )
    summary = run(cfg, dataset, tmp_path)
    assert summary.status == "early_stopped" and summary.best_epoch == 0
    assert [r["epoch"] for r in read_history(tmp_path)] == [0, 1]
    best, last = (
        load_checkpoint(tmp_path / "checkpoints" / "best.pt"),
        load_checkpoint(tmp_path / "checkpoints" / "last.pt"),
    )
    assert (best["epoch"], last["epoch"]) == (0, 1)
    assert not torch.equal(best["model"]["head.weight"], last["model"]["head.weight"])
    test = json.loads((tmp_path / "test_metrics.json").read_text())
    assert test["epoch"] == 0 and test["checkpoint"] == "checkpoints/best.pt"
    tested = pq.read_table(tmp_path / "test" / "scores.parquet").to_pydict()
    from_last = evaluate_checkpoint(
        tmp_path / "checkpoints" / "last.pt", dataset, tmp_path / "last_eval"
    )
    last_scores = pq.read_table(tmp_path / "last_eval" / "scores.parquet").to_pydict()
    assert from_last["checkpoint"]["epoch"] == 1
    assert tested["key"] == last_scores["key"]
    assert tested["logit"] != last_scores["logit"]
    evaluate_checkpoint(tmp_path / "checkpoints" / "best.pt", dataset, tmp_path / "best_eval")
    best_scores = pq.read_table(tmp_path / "best_eval" / "scores.parquet").to_pydict()
    assert tested["logit"] == best_scores["logit"]


class NanAfter(torch.nn.Module):
    """The real loss, but NaN from call ``n`` on (simulates a diverging run)."""

    def __init__(self, cfg: Any, n: int):
        super().__init__()
        self.real, self.n, self.calls = build_loss(cfg), n, 0

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor):
        self.calls += 1
        loss = self.real(logits, labels, weights)
        return loss * float("nan") if self.calls > self.n else loss


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(trainer_mod, "build_loss", lambda cfg: NanAfter(cfg, n=7))  # epoch 1
    rc = main(
        [
            "run",
            "--shards",
            str(dataset),
            "--out",
            str(tmp_path),
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--batch-size",
            "8",
            "--no-progress",
            "--set",
            "model.depths=[1,1,1,1]",
            "--set",
            "model.dims=[16,32,64,128]",
            "--arch",
            "convnext_atto",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert "train: error: non-finite training loss (nan) at epoch 1" in err
    assert "last good checkpoint" in err and "Traceback" not in err
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 0
    assert [r["epoch"] for r in read_history(tmp_path)] == [0]
    with pytest.raises(NonFiniteLossError):
        monkeypatch.setattr(trainer_mod, "build_loss", lambda cfg: NanAfter(cfg, n=0))
        run(tiny_config(), dataset, tmp_path / "again")


def test_a_repeated_batch_stops_the_run_and_is_recorded(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_make_loader = trainer_mod.make_loader

    class RepeatFirst:
        def __init__(self, loader: Any):
            self.loader, self.expected = loader, loader.expected

        def __len__(self) -> int:
            return len(self.loader) + 1

        def __iter__(self):
            batches = iter(self.loader)
            first = next(batches)
            yield first
            yield first
            yield from batches

    def make_loader(root, split, cfg, **kw):
        loader = real_make_loader(root, split, cfg, **kw)
        return RepeatFirst(loader) if split == "train" else loader

    monkeypatch.setattr(trainer_mod, "make_loader", make_loader)
    with pytest.raises(SampleAccountingError, match="samples_seen=48, unique_samples=40"):
        run(tiny_config(), dataset, tmp_path)
    (failed,) = read_history(tmp_path)
    assert (failed["samples_seen"], failed["unique_samples"], failed["expected"]) == (48, 40, 40)
    assert "exactly once" in failed["error"]
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "{missing}"], "train: config error: shards: directory not found"),
        (["--set", "optim.lr=-1"], "train: config error: optim.lr: must be a positive number"),
        (
            ["--set", "model.meta_fields=[psfsize_r,arc_snr]"],
            "train: config error: model.meta_fields[1]: metadata field 'arc_snr' leaks the label",
        ),
        (
            ["--set", "optim.learning_rate=1"],
            "train: config error: optim.learning_rate: unknown key",
        ),
        (["--arch", "convnext_nope"], "train: config error: model.arch: unknown timm model"),
        (["--config", "{missing}/x.yaml"], "train: config error: config file not found"),
    ],
)
def test_cli_config_errors_are_one_line_and_exit_2(
    args: list[str], message: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = {"--shards": str(dataset), "--out": str(tmp_path / "run"), "--device": "cpu"}
    argv = ["run"]
    for flag, value in base.items():
        if flag not in args:
            argv += [flag, value]
    argv += [a.format(missing=tmp_path / "missing") for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_without_cuda_is_a_one_line_error(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["run", "--shards", str(dataset), "--out", str(tmp_path / "r"), "--device", "cuda"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("train: config error: device: 'cuda' requested") and "Traceback" not in err
    )


def test_an_existing_run_is_not_overwritten_without_resume(
    finished_run: Path, dataset: Path, capsys: pytest.CaptureFixture
) -> None:
    before = (finished_run / "checkpoints" / "last.pt").read_bytes()
    assert (
        main(["run", "--shards", str(dataset), "--out", str(finished_run), "--device", "cpu"]) == 2
    )
    assert "already holds a run" in capsys.readouterr().err
    assert (finished_run / "checkpoints" / "last.pt").read_bytes() == before


def test_history_is_strict_json(finished_run: Path) -> None:
    text = (finished_run / "history.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert np.isfinite(read_history(finished_run)[0]["train_loss"])
