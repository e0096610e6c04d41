"""The ``dask`` executor on a real ``distributed.LocalCluster``: same bytes as a local build,
also when a worker is killed with SIGKILL in the middle of writing a shard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.errors import ExecutorError
from builder.executors import make_executor, submit_ordered
from shards.schema import SPLITS
from shards.verify import verify_dataset

distributed = pytest.importorskip("distributed")

OVERRIDES = {
    "input": {"synthetic": {"n_parents": 96, "row_group_size": 40}},
    "output": {"samples_per_shard": 12},
}


def _cfg():
    return load_build_config(None, OVERRIDES)


def dataset_files(root: Path) -> dict[str, bytes]:
    """Every file of a build except hidden ones (the lock, temporaries), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("serial")
    make_shards(_cfg(), out, BuildOptions(executor="serial", progress=False))
    files = dataset_files(out)
    assert sum(name.endswith(".tar") for name in files) >= 8
    return files


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as c:
        yield c


def _worker_pids(executor) -> set[int]:
    return set(executor.client.run(os.getpid).values())


def test_dask_build_is_byte_identical_to_a_serial_build(reference, cluster, tmp_path):
    with make_executor("dask", scheduler=cluster.scheduler_address) as ex:
        pids = _worker_pids(ex)
        assert len(pids) == 2 and os.getpid() not in pids  # really other processes
        manifest = make_shards(_cfg(), tmp_path, BuildOptions(progress=False), executor=ex)
    assert manifest.status == "complete"
    assert dataset_files(tmp_path) == reference


def test_a_worker_killed_mid_shard_is_replaced_and_the_bytes_are_identical(
    reference, cluster, tmp_path
):
    with make_executor("dask", scheduler=cluster.scheduler_address) as ex:
        pids = _worker_pids(ex)
        outcome: dict[str, object] = {}

        def build() -> None:
            try:
                outcome["manifest"] = make_shards(
                    _cfg(), tmp_path, BuildOptions(progress=False), executor=ex
                )
            except BaseException as exc:  # reported by the assertion below
                outcome["error"] = exc

        thread = threading.Thread(target=build)
        thread.start()
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and thread.is_alive() and time.monotonic() < deadline:
            for split in SPLITS:
                for tmp in (tmp_path / split).glob(".*.tar.tmp-*"):
                    pid = int(tmp.name.rpartition(".tmp-")[2])
                    if pid in pids:  # a worker is inside an unfinished shard: kill it there
                        os.kill(pid, signal.SIGKILL)
                        victim = (pid, tmp.name)
                        break
                if victim:
                    break
            time.sleep(0.002)
        thread.join(timeout=180)
        assert victim is not None, "no worker was caught writing a shard"
        assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
        assert victim[0] not in _worker_pids(ex)  # the worker really died (the nanny restarted it)
    assert outcome["manifest"].status == "complete"
    assert dataset_files(tmp_path) == reference
    assert verify_dataset(tmp_path).ok
    assert not list(tmp_path.rglob(".*.tmp-*"))  # the lost worker's partial shard is swept


def test_dask_executor_runs_calls_in_order_and_delivers_errors(cluster):
    with make_executor("dask", scheduler=cluster.scheduler_address) as ex:
        got = list(submit_ordered(ex, pow, ((i, 2) for i in range(9)), window=3))
        assert got == [i * i for i in range(9)]
        with pytest.raises(ZeroDivisionError):
            list(submit_ordered(ex, divmod, [(1, 1), (1, 0)]))


def test_scheduler_is_refused_by_executors_without_one():
    for name in ("serial", "local"):
        with pytest.raises(ExecutorError, match="--scheduler applies to --executor dask"):
            make_executor(name, 1, "tcp://127.0.0.1:8786")


def test_dask_is_imported_only_when_the_dask_executor_is_used():
    code = (
        "import sys, builder.cli, builder.build, builder.executors, builder.scan;"
        "builder.executors.make_executor('local', 1);"
        "bad = [m for m in ('dask', 'distributed') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
