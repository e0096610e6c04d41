"""``train eval``: metrics.json, one scores row per sample, plots, same preprocessing as training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from shards.manifest import Manifest
from shards.reader import IndexedShard
from tests.runs import tiny_config, write_dataset
from train.checkpoint import eval_weights, load_checkpoint
from train.cli import main
from train.config import config_from_dict
from train.model import build_model
from train.preprocess import normalize
from train.trainer import run

PLOTS = ("roc.png", "score_hist.png", "top_controls.png", "bottom_positives.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = write_dataset(tmp_path_factory.mktemp("data"))
    run_dir = tmp_path_factory.mktemp("run")
    run(tiny_config(epochs=1, ema={"enabled": True, "decay": 0.5}), data, run_dir)
    return data, run_dir / "checkpoints" / "best.pt"


def raw_split(data: Path, split: str) -> dict[str, tuple[np.ndarray, dict, int]]:
    """key -> (raw image, meta, label) for every sample of the split, straight from the shards."""
    out = {}
    for entry in Manifest.load(data).shards_for(split):
        for s in IndexedShard(data / entry.path).iter_samples():
            out[s["__key__"]] = (np.array(s["image"]), s["meta"], s["label"])
    return out


def test_eval_writes_metrics_scores_and_plots(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = trained
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--checkpoint",
        str(ckpt),
        "--shards",
        str(data),
        "--split",
        "val",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--batch-size",
        "5",
        "--no-progress",
    ]
    assert main(argv) == 0
    truth = raw_split(data, "val")
    report = json.loads((out / "metrics.json").read_text())
    assert report["samples_seen"] == report["unique_samples"] == report["expected"] == len(truth)
    assert report["metrics"]["n_pos"] + report["metrics"]["n_neg"] == len(truth)
    assert report["checkpoint"]["epoch"] == 0 and 0.0 <= report["summary"]["auc"] <= 1.0
    table = pq.read_table(out / "scores.parquet")
    assert str(table.schema.field("logit").type) == "float"  # float32
    scores = table.to_pydict()
    assert sorted(scores["key"]) == sorted(truth)  # one row per sample, none twice
    for key, gid, label in zip(scores["key"], scores["galaxy_id"], scores["label"], strict=True):
        assert label == truth[key][2] and gid == truth[key][1]["galaxy_id"]
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_eval_scores_equal_the_model_on_training_preprocessing(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    data, ckpt_path = trained
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ckpt_path),
                "--shards",
                str(data),
                "--out",
                str(tmp_path),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    scores = pq.read_table(tmp_path / "scores.parquet").to_pydict()
    ckpt = torch.load(ckpt_path, weights_only=True)  # plain weights_only load works
    cfg = config_from_dict(ckpt["config"])
    model = build_model(cfg.model).eval()
    model.load_state_dict(eval_weights(ckpt))  # the EMA weights that were validated
    assert ckpt["ema"] is not None
    truth = raw_split(data, "test")
    images = np.stack([truth[k][0] for k in scores["key"]])
    with torch.no_grad():
        logits = model(torch.from_numpy(normalize(images, cfg.data.preprocess)))
    np.testing.assert_allclose(scores["logit"], logits.numpy(), rtol=1e-4, atol=1e-4)
    raw_model = build_model(cfg.model).eval()
    raw_model.load_state_dict(ckpt["model"])
    with torch.no_grad():
        raw_logits = raw_model(torch.from_numpy(normalize(images, cfg.data.preprocess)))
    assert not np.allclose(scores["logit"], raw_logits.numpy(), atol=1e-4)


def test_eval_refuses_missing_inputs_cleanly(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, ckpt = trained
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(tmp_path / "nope.pt"),
                "--shards",
                str(data),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "train: config error: checkpoint: file not found" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ckpt),
                "--shards",
                str(tmp_path / "nodata"),
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "train: config error: shards: directory not found" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert (
        main(["eval", "--checkpoint", str(bad), "--shards", str(data), "--out", str(tmp_path)]) == 1
    )
    err = capsys.readouterr().err  # no digest sidecar: refused before torch.load reads it
    assert "bad.pt" in err and "refusing to load it" in err and len(err.splitlines()) == 1
    assert load_checkpoint(ckpt)["version"] == 1
