"""A real 2-process ``torchrun`` CPU (gloo) run sees every sample exactly once per epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from shards.manifest import Manifest
from tests.runs import assert_exactly_once, tiny_overrides, write_dataset

REPO = Path(__file__).resolve().parents[1]

#: 3 + 3 + 3 shards with odd sizes: 2 ranks x 2 workers = 4 slots cannot get whole shards.
SIZES = {"train": (9, 7, 5), "val": (7, 5, 3), "test": (5, 3, 3)}


def test_two_process_gloo_run_is_exactly_once(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", SIZES)
    cfg = tiny_overrides(data={"num_workers": 2, "batch_size": 4})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "train.cli",
            "run",
            "--shards",
            str(data),
            "--out",
            str(run_dir),
            "--config",
            str(tmp_path / "cfg.yaml"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest = Manifest.load(data)
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0, 1]
    for record in history:
        assert_exactly_once(record)
        assert record["expected"] == manifest.expected("train") == 21
        assert_exactly_once(record["val"])
        assert record["val"]["expected"] == manifest.expected("val") == 15
    test = json.loads((run_dir / "test_metrics.json").read_text())
    assert_exactly_once(test)
    scores = pq.read_table(run_dir / "test" / "scores.parquet").to_pydict()
    assert len(scores["key"]) == len(set(scores["key"])) == manifest.expected("test")
    # rank 0 alone logs: one line per epoch, not two
    assert proc.stderr.count("epoch 0 (1 of 2):") == 1, proc.stderr[-4000:]
