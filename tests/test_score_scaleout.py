"""``train score`` at scale: chunks as tasks on a Dask ``LocalCluster``, parents and output on S3
(a real moto server on 127.0.0.1), resumption from what the bucket holds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from builder.parents.base import ParentRecord
from builder.parents.parquet_writer import write_parents_parquet
from common import storage
from tests.datasets import fake_image
from tests.runs import tiny_config
from train.cli import main
from train.trainer import run

distributed = pytest.importorskip("distributed")

N_PARENTS = 30
ROW_GROUP = 7  # 5 chunks
BUCKET = "s3://lensfinder"


@pytest.fixture(scope="module")
def ckpt(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run(tiny_config(epochs=1), dataset, run_dir)
    return run_dir / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(5)
    recs = []
    for i in range(N_PARENTS):
        cat = {"ra": 30.0 + 0.01 * i, "dec": -1.0 + 0.003 * i}
        cat.update({f"psfsize_{b}": 1.3 for b in "grz"} | {f"psfdepth_{b}": 400.0 for b in "grz"})
        recs.append(ParentRecord(f"g{i:03d}", fake_image(rng, int(i % 4 == 0), 1.0), cat, "t"))
    recs[12].catalog["psfsize_r"] = 9.0  # one bad row: rejected, whatever the executor
    path = tmp_path_factory.mktemp("p") / "parents.parquet"
    return write_parents_parquet(path, recs, ROW_GROUP)


def argv(ckpt: Path, parents: str | Path, out: str | Path, *extra: str) -> list[str]:
    return [
        "score", "--checkpoint", str(ckpt), "--parents", str(parents), "--out", str(out),
        "--device", "cpu", "--batch-size", "4", "--no-progress", "--top", "5",
        "--gallery", "3", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(ckpt: Path, parents: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    assert main(argv(ckpt, parents, out)) == 0
    return out


def _same_scores(got: dict, want: dict) -> None:
    """Same rows, columns and rejections; logits equal to float32 rounding of the CPU kernels."""
    assert got.keys() == want.keys()
    for key in want:
        if key in ("logit", "probability"):
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5)
        elif key != "rank":
            assert got[key] == want[key], key
    assert sorted(got["rank"]) == sorted(want["rank"])


def _models_loaded() -> int:
    from train import score_tasks

    return len(score_tasks._MODELS)


@pytest.mark.slow  # a LocalCluster whose workers import torch: ~40 s on 2 cores
def test_dask_scoring_equals_the_default_pass(ckpt, parents, reference, tmp_path) -> None:
    out = tmp_path / "dask"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        rc = main(argv(ckpt, parents, out, "--executor", "dask", "--scheduler",
                       cluster.scheduler_address))  # fmt: skip
        assert rc == 0
        with distributed.Client(cluster) as client:  # the model ran on the workers, not here
            loaded = client.run(_models_loaded)
    assert sum(loaded.values()) >= 1 and _models_loaded() == 0
    got = pq.read_table(out / "scores.parquet").to_pydict()
    want = pq.read_table(reference / "scores.parquet").to_pydict()
    assert got["galaxy_id"] == [f"g{i:03d}" for i in range(N_PARENTS) if i != 12]
    _same_scores(got, want)
    assert (out / "rejects.jsonl").read_text() == (reference / "rejects.jsonl").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_chunks"], summary["chunks_scored"], summary["n_rejected"]) == (5, 5, 1)


def test_scheduler_without_dask_is_a_config_error(ckpt, parents, tmp_path) -> None:
    assert main(argv(ckpt, parents, tmp_path / "x", "--scheduler", "tcp://127.0.0.1:1")) == 2
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from tests.s3server import s3_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with s3_server() as endpoint:
        yield endpoint


def test_score_from_s3_parents_to_s3_output_summary_last_and_resume_from_the_bucket(
    s3, ckpt, parents, reference, tmp_path, monkeypatch
) -> None:
    url_in = f"{BUCKET}/in/parents.parquet"
    storage.put_file(parents, url_in)
    url_out = f"{BUCKET}/scores/v1"
    uploads: list[str] = []
    real_put = storage.put_file

    def recording_put(local, url, *a, **k):
        uploads.append(url)
        return real_put(local, url, *a, **k)

    monkeypatch.setattr(storage, "put_file", recording_put)
    assert main(argv(ckpt, url_in, url_out, "--staging", str(tmp_path / "stage1"))) == 0
    assert uploads[-1] == f"{url_out}/summary.json"  # the commit point goes last
    remote = storage.list_files(url_out)
    assert {"summary.json", "scores.parquet", "candidates.csv", "rejects.jsonl"} <= set(remote)
    assert not any(r.startswith(("inputs/", "parents/")) for r in remote)  # stay local
    storage.get_file(f"{url_out}/scores.parquet", tmp_path / "got.parquet")
    got = pq.read_table(tmp_path / "got.parquet").to_pydict()
    _same_scores(got, pq.read_table(reference / "scores.parquet").to_pydict())

    # another machine (empty staging): the committed chunks come from the bucket, none rescored
    assert main(argv(ckpt, url_in, url_out, "--staging", str(tmp_path / "stage2"))) == 0
    summary = json.loads(storage.read_bytes(f"{url_out}/summary.json"))
    assert (summary["chunks_skipped"], summary["chunks_scored"]) == (5, 0)
    assert summary["n_scored"] == N_PARENTS - 1


def test_staging_without_a_url_output_is_a_config_error(ckpt, parents, tmp_path) -> None:
    assert main(argv(ckpt, parents, tmp_path / "o", "--staging", str(tmp_path / "s"))) == 2
