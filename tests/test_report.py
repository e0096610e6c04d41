"""The demo report: counts and intervals for every operating point, clear error on missing input."""

from __future__ import annotations

import json

import numpy as np

from tests.datasets import make_tiny_dataset
from train.metrics import evaluate_scores
from train.report import build_report, main


def _inputs(tmp_path):
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


def test_report_tables_show_counts_and_intervals(tmp_path):
    shards, run, ev = _inputs(tmp_path)
    text = build_report(shards, run, ev)
    assert "| train | 4 | 2 | 2 | 1 |" in text  # data table from the manifest
    assert "| 1 | 0.4000 | 0.8000 | 0.250 | 4 / 4 / 4 |" in text  # training history
    rows = [line for line in text.splitlines() if line.startswith("| TPR at FPR")]
    assert len(rows) == 3
    for row in rows:
        assert "/50 |" in row and "allowed of 50" in row and "[" in row  # counts + interval
    assert "low count" in rows[0]  # 1e-4 x 50 negatives < 10 false positives


def test_report_missing_input_is_a_clear_error(tmp_path, capsys):
    shards, run, ev = _inputs(tmp_path)
    (ev / "metrics.json").unlink()
    code = main(
        [
            "--shards",
            str(shards),
            "--run",
            str(run),
            "--eval",
            str(ev),
            "--out",
            str(tmp_path / "R.md"),
        ]
    )
    assert code == 2
    assert "metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()
