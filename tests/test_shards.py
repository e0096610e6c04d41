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

from shards.codecs import NPY_ARRAY
from shards.errors import MemberTableError, SampleEncodeError, ShardError
from shards.manifest import Manifest, ManifestError, ShardEntry
from shards.reader import (
    IndexedShard,
    ShardFormatError,
    decode_member,
    decode_sample,
    iter_tar_samples,
)
from shards.schema import MEMBERS, MemberSpec, make_key
from shards.verify import verify_dataset
from shards.writer import Sample, encode_sample, npy_bytes, write_shard
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
    with pytest.raises(ShardFormatError, match="x.cls: label must be ASCII 0 or 1"):
        decode_member("cls", b"2", "x.cls")
    stamp = np.ones((3, 64, 64), np.float32)
    assert decode_member("npy", npy_bytes(stamp), "x").sum() == stamp.size
    # the member row's shape and dtype rules are applied on read
    with pytest.raises(ShardFormatError, match=r"x.npy: shape \(3,\), expected \(3, 64, 64\)"):
        decode_member("npy", npy_bytes(np.ones(3, np.float32)), "x.npy")
    with pytest.raises(ShardFormatError, match="x.npy: dtype float64, expected one of float32"):
        decode_member("npy", npy_bytes(stamp.astype(np.float64)), "x.npy")


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


# A member defined here, not in the library: a toy bad-pixel mask, one row in a copy of the table.
MASK_ROW = MemberSpec(
    "mask.npy",
    "mask",
    NPY_ARRAY,
    required=False,
    shape=(64, 64),
    dtype="uint8",
    description="toy bad-pixel mask",
)


def _masked_dataset(root, table) -> list[Sample]:
    """One train shard of 4 samples (two with a mask) written with ``table``, plus a manifest."""
    rng = np.random.default_rng(3)
    samples = []
    for i in range(4):
        label = i % 2
        meta = {"galaxy_id": f"m{i}", "split": "train", "label": label}
        meta.update({"role": "host", "injection": {}} if label else {"role": "control"})
        mask = (rng.random((64, 64)) < 0.1).astype(np.uint8) if i % 2 == 0 else None
        fields = {"image": rng.normal(size=(3, 64, 64)), "meta": meta, "label": label}
        samples.append(Sample.from_fields(make_key(f"m{i}"), {**fields, "mask": mask}))
    info = write_shard(root / "train" / "train-000000.tar", samples, members=table)
    manifest = Manifest(schema_version=table.schema_version, status="complete")
    manifest.shards.append(ShardEntry.from_info(info, "train", 0, root))
    manifest.recompute_splits()
    manifest.save(root)
    return samples


def test_new_optional_member_is_one_row_and_a_version_bump(tmp_path):
    with pytest.raises(MemberTableError, match="needs a schema version above"):
        MEMBERS.with_member(MASK_ROW, schema_version=MEMBERS.schema_version)
    table = MEMBERS.with_member(MASK_ROW, schema_version=MEMBERS.schema_version + 1)
    assert "mask.npy" in table and "mask.npy" not in MEMBERS  # the library's table is untouched
    samples = _masked_dataset(tmp_path, table)
    path = tmp_path / "train" / "train-000000.tar"
    with tarfile.open(path) as tf:
        assert tf.getnames()[:4] == ["gm0.cls", "gm0.json", "gm0.mask.npy", "gm0.npy"]
    index = json.loads((tmp_path / "train" / "train-000000.idx.json").read_text())
    assert index["schema_version"] == MEMBERS.schema_version + 1
    for got in (
        list(iter_tar_samples(str(path), table)),
        list(IndexedShard(path, table).iter_samples()),
    ):
        assert [g["__key__"] for g in got] == [s.key for s in samples]
        for want, g in zip(samples, got, strict=True):
            np.testing.assert_array_equal(g["image"], want.image_nmgy.astype(np.float32))
            assert g["meta"] == want.meta and g["label"] == want.label
            if want.extra["mask"] is None:
                assert "mask" not in g  # optional: absent, not an empty placeholder
            else:
                assert g["mask"].dtype == np.uint8
                np.testing.assert_array_equal(g["mask"], want.extra["mask"])
    report = verify_dataset(tmp_path, table)
    assert report.ok, report.format()
    assert report.n_samples == 4
    # Code that knows only the library's table refuses the new format instead of misreading it.
    with pytest.raises(ShardFormatError, match=r"gm0.mask.npy: member type '.mask.npy' is not"):
        list(iter_tar_samples(str(path)))
    with pytest.raises(
        ShardFormatError, match=f"schema version {MEMBERS.schema_version + 1} unsupported"
    ):
        IndexedShard(path)
    assert not verify_dataset(tmp_path).ok
    with pytest.raises(SampleEncodeError, match=r"no member row for field\(s\) \['mask'\]"):
        write_shard(tmp_path / "x-000000.tar", samples)


def test_member_rows_are_enforced_on_write_and_read(tmp_path):
    table = MEMBERS.with_member(MASK_ROW, schema_version=MEMBERS.schema_version + 1)
    image = np.zeros((3, 64, 64))
    bad_shape = Sample("gk", image, {"label": 0}, 0, extra={"mask": np.zeros((32, 32))})
    with pytest.raises(SampleEncodeError, match=r"gk.mask.npy: shape \(32, 32\) != \(64, 64\)"):
        write_shard(tmp_path / "a-000000.tar", [bad_shape], members=table)
    with pytest.raises(SampleEncodeError, match=r"gk.npy: required member \(image\) has no value"):
        write_shard(tmp_path / "a-000000.tar", [Sample("gk", None, {"label": 0}, 0)])
    with pytest.raises(SampleEncodeError, match="gk.arc.npy: non-finite values"):
        write_shard(
            tmp_path / "a-000000.tar", [Sample("gk", image, {}, 0, np.full_like(image, np.inf))]
        )
    assert list(tmp_path.iterdir()) == []
    # a float mask on disk is refused by the row's fixed dtype, naming shard and member
    raw = {"__key__": "gk", "__url__": "s.tar", **encode_sample(Sample("gk", image, {}, 0))}
    raw["mask.npy"] = npy_bytes(np.zeros((64, 64), np.float32))
    with pytest.raises(
        ShardFormatError, match="s.tar: gk.mask.npy: dtype float32, expected one of uint8"
    ):
        decode_sample(raw, table)
    with pytest.raises(MemberTableError, match="defined twice"):
        table.with_member(MASK_ROW, schema_version=table.schema_version + 1)
    with pytest.raises(MemberTableError, match="member suffix 'Mask'"):
        MEMBERS.with_member(MemberSpec("Mask", "mask2", NPY_ARRAY, required=False), 9)


def test_shard_errors_share_one_base():
    for exc in (ShardFormatError, ManifestError, SampleEncodeError, MemberTableError):
        assert issubclass(exc, ShardError) and issubclass(exc, ValueError)
