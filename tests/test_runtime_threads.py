"""CPU thread plan: loader workers + intra-op threads never exceed a rank's share of the cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from common.configio import ConfigError, from_mapping
from train.config import TrainConfig
from train.runtime import available_cores, plan_threads

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("workers", "cores", "ranks", "intra", "over"),
    [
        (0, 2, 1, 2, False),  # loading in the main process: every core to intra-op
        (1, 2, 1, 1, False),  # the CPU preset on this machine
        (8, 16, 1, 8, False),  # the GPU preset on a 16-core node
        (3, 16, 4, 1, False),  # 4 ranks on 16 cores: 4 per rank
        (2, 2, 2, 1, True),  # more workers than the rank's one core
        (0, 3, 2, 1, False),  # uneven split rounds down
    ],
)
def test_plan_splits_cores_between_workers_and_intra_op(workers, cores, ranks, intra, over):
    plan = plan_threads(workers, cores=cores, local_ranks=ranks)
    assert plan.cores_per_rank == max(1, cores // ranks)
    assert plan.intra_op_threads == intra
    assert plan.loader_workers == workers
    assert plan.oversubscribed is over
    if not over:
        assert plan.intra_op_threads + plan.loader_workers <= plan.cores_per_rank


def test_explicit_threads_and_local_world_size(monkeypatch):
    assert plan_threads(0, threads=3, cores=8).intra_op_threads == 3
    assert plan_threads(1, threads=8, cores=8).oversubscribed
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert plan_threads(0, cores=8).cores_per_rank == 4
    with pytest.raises(ValueError):
        plan_threads(-1, cores=2)


def test_threads_config_key_is_validated():
    assert from_mapping(TrainConfig, {"threads": 2}).threads == 2
    assert from_mapping(TrainConfig, {}).threads is None
    with pytest.raises(ConfigError, match="threads"):
        from_mapping(TrainConfig, {"threads": 0})


_CHILD = textwrap.dedent(
    """
    import json, os, sys, warnings
    import torch
    from common.configio import from_mapping
    from train.config import TrainConfig
    from train.runtime import available_cores, configure_backends
    out = []
    for case in sys.argv[1:]:
        cpus, workers = case.split(":")
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
        cfg = from_mapping(TrainConfig, {"device": "cpu", "data": {"num_workers": int(workers)}})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            configure_backends(cfg, torch.device("cpu"))
        out.append({"cores": available_cores(), "threads": torch.get_num_threads(),
                    "interop": torch.get_num_interop_threads(),
                    "warned": any("oversubscribe" in str(w.message) for w in caught)})
    print(json.dumps(out))
    """
)


def test_configure_backends_follows_the_affinity_mask():
    """The default comes from os.sched_getaffinity (not os.cpu_count): pinned to one core, one
    intra-op thread; on all cores minus one loader worker, the rest; two workers on one core
    warn."""
    cpus = sorted(os.sched_getaffinity(0))
    every = ",".join(map(str, cpus))
    env = {**os.environ}
    env.pop("LOCAL_WORLD_SIZE", None)
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, f"{cpus[0]}:0", f"{every}:1", f"{cpus[0]}:2"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
        check=True,
    )
    one, all_cores, crowded = json.loads(r.stdout.strip().splitlines()[-1])
    assert one == {"cores": 1, "threads": 1, "interop": 1, "warned": False}
    assert all_cores["cores"] == len(cpus) == available_cores()
    assert all_cores["threads"] == max(1, len(cpus) - 1)
    assert all_cores["warned"] is (len(cpus) < 2)
    assert crowded["threads"] == 1 and crowded["warned"]
