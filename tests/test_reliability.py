"""Crash safety, bad input and `builder verify` (the reliability issue's acceptance tests)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.build import BuildError, BuildOptions, make_shards
from builder.config import load_build_config
from shards.manifest import Manifest
from shards.verify import verify_dataset
from tests.runs import dataset_digests

ROOT = Path(__file__).resolve().parents[1]
N = 90
ARGS = ["--n", str(N), "--samples-per-shard", "12", "--seed", "3", "--quiet"]


def _build_cli(
    out: Path, env_extra: dict[str, str] | None = None, *extra: str
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "builder.cli", "make-shards", "--out", str(out), *ARGS, *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    r = _build_cli(out)
    assert r.returncode == 0, r.stderr
    return out, dataset_digests(out)


@pytest.mark.parametrize(
    "env",
    [
        {"BUILDER_CRASH_AFTER_SAMPLES": "5"},  # inside the first shard
        {"BUILDER_CRASH_AFTER_SAMPLES": "30"},  # inside the third shard
        {"BUILDER_CRASH_AFTER_SHARDS": "1"},  # between shards, right after a manifest update
        {"BUILDER_CRASH_AFTER_SHARDS": "4"},
    ],
)
def test_sigkill_then_rerun_is_byte_identical(reference, tmp_path, env):
    ref_dir, ref = reference
    r = _build_cli(tmp_path, env)
    assert r.returncode == -9, f"expected SIGKILL, got {r.returncode}: {r.stderr[-500:]}"
    partial = Manifest.load(tmp_path)
    assert partial.status == "building"
    recorded = {s.path for s in partial.shards}
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*.tar")}
    assert recorded <= on_disk  # the manifest never lists a shard that is not complete on disk
    r = _build_cli(tmp_path)
    assert r.returncode == 0, r.stderr
    assert dataset_digests(tmp_path) == ref
    assert not list(tmp_path.rglob(".*.tmp-*")), "stale temporaries left behind"
    assert verify_dataset(tmp_path).ok


def test_resume_rebuilds_a_damaged_finished_shard(reference, tmp_path):
    _, ref = reference
    assert _build_cli(tmp_path).returncode == 0
    shard = tmp_path / "train" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0xFF
    shard.write_bytes(bytes(data))
    r = _build_cli(tmp_path)
    assert r.returncode == 0, r.stderr
    assert dataset_digests(tmp_path) == ref


# ----------------------------------------------------------------------------- bad input
def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _good_stamp(rng) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:64, :64] - 31.5
    gal = np.exp(-np.hypot(xx, yy) / 3.0)
    return {
        f"image_{b}": (gal * f + rng.normal(0, 0.03, (64, 64))).astype(np.float32)
        for b, f in zip("grz", (0.5, 1.0, 1.6), strict=True)
    }


GOOD_CATALOG = {
    "ra": 150.0,
    "dec": 2.0,
    "psfsize_g": 1.4,
    "psfsize_r": 1.3,
    "psfsize_z": 1.2,
    "psfdepth_g": 1500.0,
    "psfdepth_r": 600.0,
    "psfdepth_z": 120.0,
}


def _bad_parquet(path: Path, n_good: int = 60) -> dict[str, str]:
    """Seed-layout Parquet with good rows and one row per kind of bad input; id -> expected reason."""
    rng = np.random.default_rng(0)
    rows, expect = [], {}

    def add(gid, stamp_bytes, reason=None, **cat):
        rows.append({"galaxy_id": gid, "stamp_npz": stamp_bytes, **GOOD_CATALOG, **cat})
        if reason:
            expect[gid] = reason

    def stamp_with(edit) -> bytes:
        s = _good_stamp(rng)
        edit(s)
        return _npz(s)

    for i in range(n_good):
        add(f"ok{i}", _npz(_good_stamp(rng)))
    good = _npz(_good_stamp(rng))
    add("corrupt", good[: len(good) // 2], "corrupt_stamp")
    add("garbage", b"not an npz at all", "corrupt_stamp")
    add("shape", stamp_with(lambda s: s.update(image_r=s["image_r"][:32])), "bad_shape")
    add("noband", stamp_with(lambda s: s.pop("image_z")), "missing_band")
    add(
        "hasnan", stamp_with(lambda s: s["image_g"].__setitem__((3, 3), np.nan)), "nonfinite_pixels"
    )
    add("hasinf", stamp_with(lambda s: s["image_r"].__setitem__(10, np.inf)), "nonfinite_pixels")
    add("zero", stamp_with(lambda s: s["image_z"].fill(0)), "zero_band")
    add("psf", good, "bad_psfsize", psfsize_r=25.0)
    add("depth", good, "bad_psfdepth", psfdepth_g=-3.0)
    add("nullcat", good, "missing_catalog", ra=None)
    add("ok3", good)  # duplicate of an earlier id
    expect["ok3#dup"] = "duplicate_galaxy_id"
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, row_group_size=25)
    return expect


def test_bad_input_is_rejected_with_reasons(tmp_path):
    parents = tmp_path / "parents.parquet"
    expect = _bad_parquet(parents)
    out = tmp_path / "out"
    cfg = load_build_config(
        None,
        {
            "input": {"kind": "parquet", "path": str(parents)},
            "output": {"samples_per_shard": 16},
            "rejects": {"max_reject_fraction": 0.5},
        },
    )
    manifest = make_shards(cfg, out, BuildOptions(progress=False))
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    by_id: dict[str, list[str]] = {}
    for r in rejects:
        by_id.setdefault(r["galaxy_id"], []).append(r["reason"])
        assert r["location"].startswith("parents.parquet"), r
    for gid, reason in expect.items():
        gid = gid.split("#")[0]
        assert reason in by_id.get(gid, []), (gid, reason, by_id.get(gid))
    assert manifest.rejections["total"] == len(rejects)
    assert manifest.rejections["by_reason"]["duplicate_galaxy_id"] == 1
    written = sum(s.n_samples for s in manifest.shards)
    assert written + len(rejects) == 60 + len(expect)
    report = verify_dataset(out)
    assert report.ok, report.format()


def test_too_many_rejections_abort_with_summary(tmp_path):
    parents = tmp_path / "parents.parquet"
    _bad_parquet(parents, n_good=5)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(parents)}})
    # catalog-level problems abort right after the scan, before any shard is built
    with pytest.raises(BuildError, match=r"rejected .*bad_psfsize"):
        make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    assert (tmp_path / "out" / "rejects.jsonl").is_file()
    assert not list((tmp_path / "out").glob("*/*.tar"))


def test_too_many_bad_stamps_abort_after_the_tasks(tmp_path):
    rng = np.random.default_rng(1)
    rows = [
        {
            "galaxy_id": f"g{i}",
            "stamp_npz": _npz(_good_stamp(rng)) if i % 3 else b"junk",
            **GOOD_CATALOG,
        }
        for i in range(30)
    ]
    parents = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parents)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(parents)}})
    with pytest.raises(BuildError, match=r"10 of 30 parent rows rejected .*corrupt_stamp: 10"):
        make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    lines = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all('"corrupt_stamp"' in line for line in lines)
    assert Manifest.load(tmp_path / "out").status == "aborted"
    assert not verify_dataset(tmp_path / "out").ok


def test_missing_stamp_column_is_a_clear_error(tmp_path):
    parents = tmp_path / "p.parquet"
    pq.write_table(pa.table({"galaxy_id": ["a"], "ra": [1.0]}), parents)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder.cli",
            "make-shards",
            "--parents",
            str(parents),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 2 and "stamp_npz" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- verify
def test_verify_reports_flipped_byte_truncation_and_duplicate_key(reference, tmp_path):
    ref_dir, _ = reference
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(ref_dir, out)
    m = Manifest.load(out)
    train = m.shards_for("train")
    # 1. flip one byte inside a shard (in an image payload)
    p0 = out / train[0].path
    data = bytearray(p0.read_bytes())
    data[3000] ^= 0x01
    p0.write_bytes(bytes(data))
    # 2. truncate another
    p1 = out / train[1].path
    p1.write_bytes(p1.read_bytes()[:20000])
    # 3. add a duplicate key: rewrite shard 2 with an extra copy of a sample from shard 3
    p2, p3 = out / train[2].path, out / train[3].path
    with tarfile.open(p3) as tf:
        first = tf.getmembers()[:3]
        extra = [(mem, tf.extractfile(mem).read()) for mem in first]
    with tarfile.open(p2, "a") as tf:
        for mem, payload in extra:
            tf.addfile(mem, io.BytesIO(payload))
    report = verify_dataset(out)
    text = report.format()
    assert not report.ok
    assert f"{train[0].path}: sha256 differs" in text
    assert any(
        train[1].path in e and ("unreadable" in e or "truncated" in e or "bytes" in e)
        for e in report.errors
    ), text
    assert any("duplicate key" in e for e in report.errors), text
    r = subprocess.run(
        [sys.executable, "-m", "builder.cli", "verify", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 1 and "FAILED" in r.stdout


def test_verify_passes_on_reference_and_flags_label_mismatch(reference, tmp_path):
    ref_dir, _ = reference
    assert verify_dataset(ref_dir).ok
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(ref_dir, out)
    m = Manifest.load(out)
    path = out / m.shards_for("val")[0].path
    with tarfile.open(path) as tf:
        members = [(mem, tf.extractfile(mem).read()) for mem in tf.getmembers()]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for mem, payload in members:
            if mem.name.endswith(".cls"):
                payload = b"0" if payload.strip() == b"1" else b"1"
            tf.addfile(mem, io.BytesIO(payload))
    report = verify_dataset(out)
    assert any("label" in e and ".cls" in e for e in report.errors), report.format()


def test_configured_limits_reach_the_readers(tmp_path):
    parents = tmp_path / "parents.parquet"
    _bad_parquet(parents, n_good=40)
    cfg = load_build_config(
        None,
        {
            "input": {"kind": "parquet", "path": str(parents)},
            "rejects": {"max_reject_fraction": 0.5, "psfsize_arcsec": [0.5, 30.0]},
        },
    )
    manifest = make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    assert "bad_psfsize" not in manifest.rejections["by_reason"]  # psfsize_r=25 now accepted
    assert manifest.rejections["by_reason"]["bad_psfdepth"] == 1
