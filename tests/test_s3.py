"""Builds, verify and training against a real S3 endpoint (moto's server on 127.0.0.1).

The endpoint and the (dummy) credentials reach the code only through the standard AWS
environment set by :func:`tests.s3server.s3_server`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from builder.build import BuildOptions, make_shards
from builder.cli import main as builder_main
from builder.config import load_build_config
from builder.parents.synthetic import write_synthetic_parquet
from common import storage
from shards.manifest import Manifest
from shards.remote import mirror_dataset, publish_dataset, verify_remote
from tests.runs import assert_exactly_once, tiny_overrides, write_dataset
from tests.s3server import s3_server
from train.cli import main as train_main

pytest.importorskip("s3fs")
pytest.importorskip("moto")

BUCKET = "s3://lensfinder"
N_PARENTS = 96


@pytest.fixture(scope="module")
def s3():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    with s3_server() as endpoint:
        yield endpoint


def _cfg(parents: str):
    return load_build_config(
        None,
        {
            "input": {"kind": "parquet", "path": parents},
            "output": {"samples_per_shard": 12},
        },
    )


@pytest.fixture(scope="module")
def parents(s3, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same parent Parquet file locally and on S3."""
    cfg = load_build_config(None, {})
    local = write_synthetic_parquet(
        tmp_path_factory.mktemp("parents") / "parents.parquet",
        N_PARENTS,
        cfg.seed,
        cfg.input.section("synthetic"),
        row_group_size=32,
    )
    url = f"{BUCKET}/inputs/parents.parquet"
    storage.put_file(local, url)
    return Path(local), url


@pytest.fixture(scope="module")
def local_build(parents, tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    out = tmp_path_factory.mktemp("local")
    return make_shards(_cfg(str(parents[0])), out, BuildOptions(progress=False))


def _shards(m: Manifest) -> list[tuple[str, str, int]]:
    return sorted((s.path, s.sha256, s.n_samples) for s in m.shards)


def test_build_from_s3_parents_to_s3_passes_verify_and_matches_a_local_build(
    parents, local_build, tmp_path, capsys
):
    out = f"{BUCKET}/datasets/a"
    rc = builder_main(
        [
            "make-shards",
            "--parents",
            parents[1],
            "--out",
            out,
            "--samples-per-shard",
            "12",
            "--staging",
            str(tmp_path / "staging"),
            "--quiet",
        ]
    )
    assert rc == 0
    remote = Manifest.load(mirror_dataset(out, tmp_path / "mirror"))
    assert remote.status == "complete"
    assert remote.config["input"]["path"] == parents[1]  # the URL, not the local copy
    assert _shards(remote) == _shards(local_build) and len(remote.shards) >= 6
    capsys.readouterr()
    assert builder_main(["verify", out]) == 0
    assert "OK: every check passed" in capsys.readouterr().out


def test_resume_trusts_only_listed_shards_with_matching_sha256(parents, local_build, tmp_path):
    out = f"{BUCKET}/datasets/b"
    staging = tmp_path / "staging"
    opts = BuildOptions(progress=False, staging=str(staging))
    make_shards(_cfg(parents[1]), out, opts)
    first = Manifest.load(staging)
    tampered, dropped = first.shards[0].path, first.shards[1].path
    # Damage the store: one shard's bytes changed, one deleted; a stray unlisted shard appears.
    storage.write_bytes(f"{out}/{tampered}", b"not a tar")
    fs, root = storage.filesystem(f"{out}/{dropped}")
    fs.rm_file(root)
    storage.write_bytes(f"{out}/train/train-999999.tar", b"stray")
    report = verify_remote(out)
    assert not report.ok
    text = "\n".join(report.errors)
    assert tampered in text and dropped in text and "train-999999.tar" in text
    assert "/tmp" not in text  # problems are named by URL, not by the temporary copy

    # A rerun on another machine (empty staging) fetches only the intact listed shards,
    # rebuilds the other two, and publishes with the manifest last.
    rerun_staging = tmp_path / "staging2"
    make_shards(_cfg(parents[1]), out, BuildOptions(progress=False, staging=str(rerun_staging)))
    again = Manifest.load(mirror_dataset(out, tmp_path / "mirror"))
    assert _shards(again) == _shards(first) == _shards(local_build)
    assert verify_remote(out).ok
    assert not storage.exists(f"{out}/train/train-999999.tar")


def test_publish_uploads_the_manifest_last(s3, tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data")
    url = f"{BUCKET}/datasets/order"
    calls: list[str] = []
    real = storage.put_file

    def recording(local, target, storage_options=None):  # records, then really uploads
        calls.append(target.rsplit("/", 1)[-1])
        real(local, target, storage_options)

    monkeypatch.setattr(storage, "put_file", recording)
    publish_dataset(data, url)
    assert calls[-1] == "manifest.json" and calls.count("manifest.json") == 1
    assert sum(c.endswith(".tar") for c in calls) == len(Manifest.load(data).shards)


def test_one_epoch_cpu_training_reads_shards_from_s3(s3, tmp_path, monkeypatch, capfd, caplog):
    data = write_dataset(tmp_path / "data")
    url = f"{BUCKET}/datasets/train"
    publish_dataset(data, url)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(tiny_overrides(epochs=1)))
    monkeypatch.setenv("LENSFINDER_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    caplog.set_level(logging.DEBUG)
    rc = train_main(
        ["run", "--shards", url, "--out", str(run_dir), "--config", str(tmp_path / "cfg.yaml")]
    )
    assert rc == 0
    out = capfd.readouterr()
    logged = out.out + out.err + caplog.text
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in logged  # credentials are never logged
    manifest = Manifest.load(data)
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [0]
    assert_exactly_once(history[0])
    assert history[0]["expected"] == manifest.expected("train")
    mirrored = list((tmp_path / "cache").rglob("*.tar"))
    assert len(mirrored) == len(manifest.shards)


def test_run_and_eval_directories_at_a_url_publish_last_and_resume_from_the_bucket(
    s3, tmp_path, monkeypatch
):
    data = write_dataset(tmp_path / "data")
    url = f"{BUCKET}/datasets/run-url"
    publish_dataset(data, url)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(tiny_overrides(epochs=2)))
    monkeypatch.setenv("LENSFINDER_CACHE", str(tmp_path / "cache"))
    run_url = f"{BUCKET}/runs/r1"
    calls: list[str] = []
    real = storage.put_file

    def recording(local, target, storage_options=None):
        calls.append(target[len(run_url) + 1 :])
        real(local, target, storage_options)

    monkeypatch.setattr(storage, "put_file", recording)
    argv = ["run", "--shards", url, "--out", run_url, "--config", str(tmp_path / "cfg.yaml")]
    first = [*argv, "--stop-after-epochs", "1", "--staging", str(tmp_path / "stage1")]
    assert train_main(first) == 0
    assert calls[-1] == "history.json" and calls.count("history.json") == 1  # commit point last
    remote = set(storage.list_files(run_url))
    assert {"config.yaml", "history.json", "checkpoints/best.pt", "checkpoints/last.pt"} <= remote
    assert ".lock" not in remote
    # another machine, empty staging: --resume continues from what the bucket holds
    resume = [*argv, "--resume", "--staging", str(tmp_path / "stage2")]
    assert train_main(resume) == 0
    history = json.loads(storage.read_bytes(f"{run_url}/history.json"))
    assert [r["epoch"] for r in history] == [0, 1]
    # train eval to a URL: metrics.json last
    calls.clear()
    stage1_best = tmp_path / "stage2" / "checkpoints" / "best.pt"
    ev = ["eval", "--checkpoint", str(stage1_best), "--shards", url, "--out", f"{run_url}/eval",
          "--no-progress"]  # fmt: skip
    assert train_main(ev) == 0
    assert calls[-1] == "eval/metrics.json"
    assert json.loads(storage.read_bytes(f"{run_url}/eval/metrics.json"))["n_samples"] > 0


def test_storage_errors_name_the_url_but_never_the_credentials(s3, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-value-123")
    import fsspec

    fsspec.AbstractFileSystem.clear_instance_cache()
    with pytest.raises(FileNotFoundError) as missing:
        storage.read_bytes(f"{BUCKET}/no/such/object")
    assert "s3://lensfinder/no/such/object" in str(missing.value)
    monkeypatch.setenv(storage.OPTIONS_ENV, '{"key": "AKIA-sekrit-value-123"')  # bad JSON
    with pytest.raises(storage.StorageError) as bad:
        storage.read_bytes(f"{BUCKET}/x")
    assert "sekrit" not in str(bad.value)
    fsspec.AbstractFileSystem.clear_instance_cache()
