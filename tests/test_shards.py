"""The shard format: writer, both readers, offset index, manifest, and outside tools."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
import webdataset as wds

from shards.manifest import Manifest, ManifestError
from shards.reader import IndexedShard, ShardFormatError, decode_member, iter_tar_samples
from shards.schema import make_key
from shards.writer import Sample, npy_bytes, write_shard
from tests.datasets import make_tiny_dataset


def _samples(n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [
        Sample(
            make_key(f"gal{i}"),
            rng.normal(size=(3, 64, 64)).astype(np.float32),
            {"galaxy_id": f"gal{i}", "label": i % 2, "x": float(i)},
            i % 2,
        )
        for i in range(n)
    ]


def test_same_samples_give_byte_identical_shards(tmp_path):
    a = write_shard(tmp_path / "a" / "s-000000.tar", _samples(5))
    b = write_shard(tmp_path / "b" / "s-000000.tar", _samples(5))
    assert a.sha256 == b.sha256
    assert (tmp_path / "a" / "s-000000.tar").read_bytes() == (
        tmp_path / "b" / "s-000000.tar"
    ).read_bytes()
    c = write_shard(tmp_path / "c" / "s-000000.tar", _samples(5, seed=1))
    assert c.sha256 != a.sha256


def test_members_are_plain_tar_with_fixed_headers(tmp_path):
    path = tmp_path / "s-000000.tar"
    write_shard(path, _samples(3))
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names[:3] == ["ggal0.cls", "ggal0.json", "ggal0.npy"]
    assert {m.mtime for m in members} == {946684800}
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    assert all(m.isfile() for m in members)


@pytest.mark.skipif(shutil.which("tar") is None, reason="no tar binary")
def test_tar_tvf_and_xOf(tmp_path):
    path = tmp_path / "s-000000.tar"
    write_shard(path, _samples(2))
    listing = subprocess.run(
        ["tar", "tvf", path], capture_output=True, text=True, check=True
    ).stdout
    for suffix in (".npy", ".json", ".cls"):
        assert f"ggal1{suffix}" in listing
    meta = subprocess.run(
        ["tar", "xOf", path, "ggal1.json"], capture_output=True, check=True
    ).stdout
    assert json.loads(meta)["galaxy_id"] == "gal1"
    raw = subprocess.run(["tar", "xOf", path, "ggal1.npy"], capture_output=True, check=True).stdout
    assert np.load(io.BytesIO(raw)).shape == (3, 64, 64)


def test_readers_agree_and_round_trip(tmp_path):
    samples = _samples(7)
    path = tmp_path / "s-000000.tar"
    write_shard(path, samples)
    slow = list(iter_tar_samples(str(path)))
    fast = list(IndexedShard(path).iter_samples())
    assert [s["__key__"] for s in slow] == [s.key for s in samples] == [s["__key__"] for s in fast]
    for want, a, b in zip(samples, slow, fast, strict=True):
        np.testing.assert_array_equal(a["image"], want.image_nmgy)
        np.testing.assert_array_equal(b["image"], want.image_nmgy)
        assert a["meta"] == b["meta"] == want.meta
        assert a["label"] == b["label"] == want.label
    assert [s["__key__"] for s in IndexedShard(path).iter_samples(2, 4)] == ["ggal2", "ggal3"]


def test_stock_webdataset_reads_shards(tmp_path):
    path = tmp_path / "s-000000.tar"
    write_shard(path, _samples(4))
    ds = wds.WebDataset(str(path), shardshuffle=False).decode()
    got = list(ds)
    assert [g["__key__"] for g in got] == [f"ggal{i}" for i in range(4)]
    assert got[1]["npy"].shape == (3, 64, 64) and got[1]["cls"] == 1


def test_huggingface_datasets_webdataset_loader(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "train-000000.tar"
    write_shard(path, _samples(4))
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": str(path)}, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert len(ds) == 4
    row = ds[1]
    assert np.asarray(row["npy"]).shape == (3, 64, 64)
    assert row["json"]["galaxy_id"] == "gal1"


def test_float16_storage_halves_image_bytes(tmp_path):
    a = write_shard(tmp_path / "a-000000.tar", _samples(4))
    b = write_shard(tmp_path / "b-000000.tar", _samples(4), dtype="float16")
    assert b.bytes < 0.6 * a.bytes
    img = next(iter(IndexedShard(tmp_path / "b-000000.tar").iter_samples()))["image"]
    assert img.dtype == np.float16


def test_writer_refuses_bad_samples_and_leaves_nothing(tmp_path):
    bad = _samples(2)
    bad[1].image_nmgy[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        write_shard(tmp_path / "s-000000.tar", bad)
    assert list(tmp_path.iterdir()) == []
    dup = _samples(2)
    dup[1].key = dup[0].key
    with pytest.raises(ValueError, match="duplicate key"):
        write_shard(tmp_path / "s-000000.tar", dup)
    with pytest.raises(ValueError, match="invalid sample key"):
        write_shard(tmp_path / "s-000000.tar", [Sample("a.b", np.zeros((3, 64, 64)), {}, 0)])
    assert list(tmp_path.iterdir()) == []


def test_decoder_refuses_pickles_and_unknown_members():
    obj = np.array([{"a": 1}], dtype=object)
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    with pytest.raises(ShardFormatError, match="safely"):
        decode_member("npy", buf.getvalue(), "x.npy")
    for suffix in ("pickle", "pyd", "pth"):
        with pytest.raises(ShardFormatError, match="not allowed"):
            decode_member(suffix, b"\x80\x04K\x01.", "x")
    with pytest.raises(ShardFormatError, match="cls"):
        decode_member("cls", b"2", "x")
    assert decode_member("npy", npy_bytes(np.ones(3, np.float32)), "x").sum() == 3


def test_indexed_reader_detects_truncation_and_stale_index(tmp_path):
    path = tmp_path / "s-000000.tar"
    write_shard(path, _samples(3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])  # cut inside a member
    with pytest.raises(ShardFormatError, match="truncated"):
        IndexedShard(path)
    with pytest.raises(ShardFormatError, match="s-000000.tar"):
        list(iter_tar_samples(str(path)))
    # same length, members shifted: header name check catches it
    path.write_bytes(data[512:] + b"\0" * 512)
    with pytest.raises(ShardFormatError, match="not found at its indexed offset"):
        list(IndexedShard(path).iter_samples())


def test_manifest_round_trip_and_errors(tmp_path):
    m = make_tiny_dataset(tmp_path / "ds", {"train": (3, 2), "val": (2,), "test": (1,)})
    loaded = Manifest.load(tmp_path / "ds")
    assert loaded.to_json() == m.to_json()
    assert loaded.expected("train") == 5
    assert [s.index for s in loaded.shards_for("train")] == [0, 1]
    with pytest.raises(ManifestError, match="unknown split"):
        loaded.shards_for("bogus")
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path / "nowhere")
    (tmp_path / "ds" / "manifest.json").write_text("{broken")
    with pytest.raises(ManifestError, match="unreadable"):
        Manifest.load(tmp_path / "ds")


def test_make_key_rules():
    assert make_key("1234") == "g1234"
    k1, k2 = make_key("a.b"), make_key("a_b")
    assert "." not in k1 and k1 != k2
    long = make_key("x" * 300)
    assert len(long) < 90
    assert make_key("x" * 300) != make_key("x" * 299)
    with pytest.raises(ValueError):
        make_key("")


def test_indexed_reader_handles_pax_headers(tmp_path):
    """Tars written by other tools may carry PAX headers (e.g. float mtimes): still indexable."""
    import hashlib

    from shards.schema import index_name
    from shards.writer import build_index, encode_sample

    path = tmp_path / "pax-000000.tar"
    with open(path, "wb") as fh, wds.TarWriter(fh, encoder=False, mtime=1234.5) as tw:
        for s in _samples(3):
            tw.write(encode_sample(s))
    with tarfile.open(path) as tf:
        assert any(m.pax_headers for m in tf.getmembers())
    index = build_index(path, hashlib.sha256(path.read_bytes()).hexdigest())
    (tmp_path / "pax-000000.idx.json").write_text(json.dumps(index))
    assert index_name(str(path)).endswith("pax-000000.idx.json")
    got = list(IndexedShard(path).iter_samples())
    assert [g["__key__"] for g in got] == ["ggal0", "ggal1", "ggal2"]


def test_index_written_while_writing_equals_tarfile_index(tmp_path):
    import hashlib

    from shards.writer import build_index

    samples = _samples(5)
    samples[2].arc_nmgy = np.ones((3, 64, 64), np.float32)  # an optional member too
    samples[3].meta = {"label": 1, "long": "x" * 777}  # a member not a multiple of 512 bytes
    path = tmp_path / "s-000000.tar"
    write_shard(path, samples)
    written = json.loads((tmp_path / "s-000000.idx.json").read_text())
    parsed = build_index(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert written == parsed
