"""Two "nodes" on loopback: two ``torchrun --nnodes 2`` launchers meet through a c10d
rendezvous on 127.0.0.1 (gloo, CPU), and every sample is still seen exactly once per epoch.

This is the launch a SLURM job makes with ``srun torchrun --nnodes $SLURM_NNODES
--rdzv-backend c10d --rdzv-endpoint $HEAD:29500 ...`` (docs/scale-out.md), with both nodes on
this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shards.manifest import Manifest
from tests.runs import assert_exactly_once, tiny_overrides, write_dataset
from tests.s3server import free_port

REPO = Path(__file__).resolve().parents[1]

#: Odd shard sizes: 2 nodes x 1 rank x 2 loader workers = 4 slots cannot get whole shards.
SIZES = {"train": (9, 7, 5), "val": (7, 5, 3), "test": (5, 3, 3)}


@pytest.mark.slow  # two torchrun launchers: ~30 s idle, the single-node test stays in the default run
def test_two_node_c10d_rendezvous_run_is_exactly_once(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", SIZES)
    cfg = tiny_overrides(epochs=1, data={"num_workers": 2, "batch_size": 4})
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "GLOO_SOCKET_IFNAME": "lo",
    }
    port = free_port()
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "multinode-test",
        "--local-addr",
        "127.0.0.1",
        "-m",
        "train.cli",
        "run",
        "--shards",
        str(data),
        "--out",
        str(run_dir),
        "--config",
        str(tmp_path / "cfg.yaml"),
    ]
    nodes = [
        subprocess.Popen(
            launcher,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for node in nodes:
            out, err = node.communicate(timeout=300)
            outputs.append((node.returncode, err))
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    for rc, err in outputs:
        assert rc == 0, err[-4000:]
    manifest = Manifest.load(data)
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0]
    record = history[0]
    assert_exactly_once(record)
    assert record["expected"] == manifest.expected("train") == 21
    assert_exactly_once(record["val"])
    assert record["val"]["expected"] == manifest.expected("val") == 15
    assert_exactly_once(json.loads((run_dir / "test_metrics.json").read_text()))
    # The two launchers really formed one world of 2: exactly one of them logs (global rank 0).
    logs = [err for _, err in outputs]
    assert sum("epoch 0 (1 of 1):" in err for err in logs) == 1, [e[-2000:] for e in logs]
