"""Tamper suite (issue 16, data path): edited indexes, bit rot, lying manifests, hostile inputs.

Every test here is an attack that succeeded before the fix (wrong image or label read with exit
0, samples silently dropped, a file outside the dataset read, a traceback or a blow-up) and must
now end in a clear error naming the file, or a recorded rejection. ``ATTACKS`` counts them for
docs/reliability.md (parametrised cases and hypothesis properties count once per class).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.errors import SourceError
from builder.parents.base import Rejection
from builder.parents.fits import FitsSource
from builder.parents.npz import decode_stamp_npz
from builder.parents.parquet import ParquetSource
from builder.validate import BadRecord, Limits, check_catalog, check_stamp
from common.files import NotRegularFileError, not_regular_reason, require_regular_file
from shards.errors import ManifestError
from shards.manifest import Manifest
from shards.reader import IndexedShard, ShardFormatError, decode_member
from shards.schema import index_name
from shards.verify import verify_dataset
from tests.datasets import make_tiny_dataset
from train.data import DataConfig, make_loader

SETTINGS = settings(
    max_examples=int(os.environ.get("TAMPER_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SIZES = {"train": (6, 6), "val": (4,)}
SHARD = "train/train-000000.tar"


def _pristine() -> Path:
    """A tiny dataset written once per session; tests work on copies."""
    global _PRISTINE
    if _PRISTINE is None:
        _PRISTINE = Path(tempfile.mkdtemp(prefix="tamper-")) / "data"
        make_tiny_dataset(_PRISTINE, SIZES)
    return _PRISTINE


_PRISTINE: Path | None = None


def _copy(dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(_pristine(), dst)
    return dst


def _load_index(root: Path, shard: str = SHARD) -> dict:
    return json.loads(Path(index_name(str(root / shard))).read_text())


def _save_index(root: Path, index: dict, shard: str = SHARD) -> None:
    Path(index_name(str(root / shard))).write_text(json.dumps(index))


def _read_all(root: Path, split: str = "train") -> list[dict]:
    """Everything the training loader hands out for ``split`` (keys, labels)."""
    cfg = DataConfig(batch_size=4)
    loader = make_loader(root, split, cfg, epoch=0, rank=0, world_size=1, training=False)
    return list(loader)


def _reference(root: Path, split: str = "train") -> list[tuple[str, float, float]]:
    out = []
    for batch in _read_all(root, split):
        for k, label, img in zip(batch["key"], batch["label"], batch["image"], strict=True):
            out.append((k, float(label), float(img.double().sum())))
    return out


def _new_verify_errors(root: Path) -> list[str]:
    """Problems ``builder verify`` reports for ``root`` beyond those of the pristine copy (the
    toy positives of tests.datasets carry no injection metadata, which verify flags)."""
    baseline = set(verify_dataset(_pristine()).errors)
    return [e.replace(str(root), "ROOT") for e in verify_dataset(root).errors if e not in baseline]


def _assert_refused(root: Path, fragment: str, split: str = "train") -> None:
    """The loader raises naming the shard, and verify reports it."""
    with pytest.raises((ShardFormatError, ManifestError)) as err:
        _read_all(root, split)
    assert fragment in str(err.value), str(err.value)
    new = _new_verify_errors(root)
    assert any(fragment in e for e in new), new


# ============================================================== 1. the offset index
def test_swapped_npy_data_offsets_are_refused(tmp_path):
    root = _copy(tmp_path / "d")
    index = _load_index(root)
    a, b = index["samples"][0]["members"]["npy"], index["samples"][1]["members"]["npy"]
    a[1:], b[1:] = b[1:], a[1:]  # data offset, size (and checksum) swapped, headers kept
    _save_index(root, index)
    _assert_refused(root, "train-000000")


def test_control_cls_pointing_at_a_positive_is_refused(tmp_path):
    root = _copy(tmp_path / "d")
    index = _load_index(root)
    s0, s1 = index["samples"][0], index["samples"][1]  # labels alternate: 0, 1
    s0["members"]["cls"] = list(s1["members"]["cls"])  # whole entry, header included
    _save_index(root, index)
    _assert_refused(root, "train-000000")
    s0["members"]["cls"][1:] = s1["members"]["cls"][1:]  # data only
    _save_index(root, index)
    _assert_refused(root, "train-000000")


@pytest.mark.parametrize("damage", ["delete", "garbage", "other_tar_sha", "drop_sample"])
def test_missing_or_wrong_index_fails_verify(tmp_path, damage):
    root = _copy(tmp_path / "d")
    ipath = Path(index_name(str(root / SHARD)))
    if damage == "delete":
        ipath.unlink()
    elif damage == "garbage":
        ipath.write_text("{not json")
    elif damage == "other_tar_sha":
        index = _load_index(root)
        index["tar_sha256"] = "0" * 64
        _save_index(root, index)
    else:  # the index (and the manifest) forget a sample that is still in the tar
        index = _load_index(root)
        del index["samples"][2]
        index["n_samples"] -= 1
        _save_index(root, index)
        m = Manifest.load(root)
        m.shards[[s.path for s in m.shards].index(SHARD)].n_samples -= 1
        m.recompute_splits()
        m.save(root)
    new = _new_verify_errors(root)
    assert any("train-000000" in e for e in new), new
    with pytest.raises(ShardFormatError, match="train-000000"):
        _read_all(root)


_ENTRY = st.tuples(
    st.integers(0, 5),  # sample
    st.sampled_from(["npy", "json", "cls"]),
    st.integers(0, 3),  # field: header offset, data offset, size, crc32
    st.integers(-2000, 2000).filter(bool),
)


@SETTINGS
@given(edit=_ENTRY)
def test_any_single_index_edit_is_detected(tmp_path, edit):
    """Property: changing one integer of one index entry never yields data: it is refused."""
    root = _copy(tmp_path / "d")
    sample, suffix, fld, delta = edit
    index = _load_index(root)
    entry = index["samples"][sample]["members"][suffix]
    entry[fld] = max(0, entry[fld] + delta)
    if entry == _load_index(_pristine())["samples"][sample]["members"][suffix]:
        return  # clamped back to the original value
    _save_index(root, index)
    with pytest.raises(ShardFormatError, match="train-000000"):
        list(IndexedShard(root / SHARD).iter_samples())
    assert any("train-000000" in e for e in _new_verify_errors(root))


def test_resume_rebuilds_a_shard_whose_index_is_missing_or_wrong(tmp_path):
    parents = tmp_path / "parents.parquet"
    _good_parquet(parents, 40)
    cfg = load_build_config(
        None,
        {"input": {"kind": "parquet", "path": str(parents)}, "output": {"samples_per_shard": 8}},
    )
    out = tmp_path / "out"
    make_shards(cfg, out, BuildOptions(progress=False))
    first = sorted(out.glob("train/*.idx.json"))
    want = {p.name: p.read_bytes() for p in first}
    first[0].unlink()
    first[1].write_text(first[1].read_text().replace('"samples":[', '"samples":[', 1)[:-40])
    index2 = json.loads(want[first[2].name])
    index2["samples"][0]["members"]["npy"][3] ^= 1  # a wrong checksum
    first[2].write_text(json.dumps(index2))
    make_shards(cfg, out, BuildOptions(progress=False))
    assert {p.name: p.read_bytes() for p in sorted(out.glob("train/*.idx.json"))} == want
    report = verify_dataset(out)
    assert report.ok, report.format()


# ============================================================== 2. bit rot
def _member_offset(root: Path, sample: int, suffix: str) -> int:
    return _load_index(root)["samples"][sample]["members"][suffix][1]


def _flip(path: Path, pos: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= mask
    path.write_bytes(bytes(data))


def test_flipped_label_bit_is_refused(tmp_path):
    root = _copy(tmp_path / "d")
    # sample 0 is a control: ASCII '0' (0x30) -> '1' (0x31) is one flipped bit
    _flip(root / SHARD, _member_offset(root, 0, "cls"), 0x01)
    _assert_refused(root, "train-000000")
    with pytest.raises(ShardFormatError, match="CRC32"):
        list(IndexedShard(root / SHARD).iter_samples())


def test_flipped_pixel_bit_is_refused(tmp_path):
    root = _copy(tmp_path / "d")
    _flip(root / SHARD, _member_offset(root, 3, "npy") + 128 + 4 * 1000 + 1, 0x10)
    with pytest.raises(ShardFormatError, match="CRC32"):
        _read_all(root)


@SETTINGS
@given(pos=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused_or_harmless(tmp_path, pos, mask):
    """Property: a flipped byte anywhere in a shard is an error, or changes nothing read."""
    root = _copy(tmp_path / "d")
    path = root / SHARD
    _flip(path, pos % path.stat().st_size, mask)
    ref = [
        (s["__key__"], s["label"], s["image"].tobytes(), s["meta"]) for s in _samples(_pristine())
    ]
    try:
        got = [(s["__key__"], s["label"], s["image"].tobytes(), s["meta"]) for s in _samples(root)]
    except ShardFormatError as exc:
        assert "train-000000" in str(exc)
        return
    assert got == ref  # the flip hit tar padding, which holds no data


def _samples(root: Path) -> list[dict]:
    return list(IndexedShard(root / SHARD).iter_samples())


@pytest.mark.parametrize("value", [b"2", b" 1", b"1\n", b"01", b"", b"\x00"])
def test_labels_other_than_0_or_1_are_refused(value):
    with pytest.raises(ShardFormatError, match="label"):
        decode_member("cls", value, "x.tar: k.cls")


# ============================================================== 3. the manifest
def test_undercounting_manifest_is_refused_by_the_loader(tmp_path):
    root = _copy(tmp_path / "d")
    m = Manifest.load(root)
    m.shards[[s.path for s in m.shards].index(SHARD)].n_samples = 2  # the shard holds 6
    m.recompute_splits()
    m.save(root)
    _assert_refused(root, "train-000000")


def test_manifest_shard_of_another_dataset_is_refused(tmp_path):
    root = _copy(tmp_path / "d")
    other = tmp_path / "other"
    make_tiny_dataset(other, SIZES, seed=5)
    for name in (SHARD, SHARD.replace(".tar", ".idx.json")):
        shutil.copy(other / name, root / name)  # consistent tar + index, same sample count
    _assert_refused(root, "train-000000")


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_manifest_paths_outside_the_root_are_refused(tmp_path, where):
    root = _copy(tmp_path / "d")
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in (SHARD, SHARD.replace(".tar", ".idx.json")):
        shutil.copy(root / name, outside / Path(name).name)
    m = Manifest.load(root)
    entry = m.shards[[s.path for s in m.shards].index(SHARD)]
    if where == "dotdot":
        entry.path = "../outside/train-000000.tar"
    elif where == "absolute":
        entry.path = str(outside / "train-000000.tar")
    else:
        (root / SHARD).unlink()
        (root / SHARD).symlink_to(outside / "train-000000.tar")
    m.save(root)
    _assert_refused(root, "outside")


# ============================================================== 6. npz zip bombs
def _npz_bytes(planes: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in planes.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _good_planes() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {f"image_{b}.npy": _npy(rng.normal(1, 0.1, (64, 64)).astype(np.float32)) for b in "grz"}


def _peak_bytes(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
    except BadRecord:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("kind", ["huge_array", "forged_header", "huge_member"])
def test_npz_bombs_are_rejected_before_inflating(kind):
    planes = _good_planes()
    if kind == "huge_array":  # 128 MB of zeros, ~130 kB compressed
        planes["image_r.npy"] = _npy(np.zeros((4096, 8192), np.float32))
    elif kind == "forged_header":  # a header declaring 4e4 x 4e4 float64 over 16 kB of data
        good = planes["image_r.npy"]
        head = b"{'descr': '<f8', 'fortran_order': False, 'shape': (40000, 40000), }"
        head = head + b" " * (117 - len(head)) + b"\n"
        planes["image_r.npy"] = b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head
        planes["image_r.npy"] += good[128:]
    else:  # a member that is not even .npy, 64 MB of one byte
        planes["image_r.npy"] = b"\x93" * (64 << 20)
    data = _npz_bytes(planes)
    assert len(data) < 2 << 20
    with pytest.raises(BadRecord) as err:
        decode_stamp_npz(data)
    assert err.value.reason in ("bad_shape", "corrupt_stamp")
    assert "image_r" in err.value.detail
    peak = _peak_bytes(lambda: decode_stamp_npz(data))
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB while rejecting a {len(data)} B bomb"
    good = _npz_bytes(_good_planes())
    assert decode_stamp_npz(good).shape == (3, 64, 64)  # and a good stamp still decodes


# ============================================================== 7, 8. values
def test_float16_overflow_is_a_per_row_rejection(tmp_path):
    parents = tmp_path / "parents.parquet"
    _good_parquet(parents, 40, bright={"hot0": 7.0e4})
    cfg = load_build_config(
        None,
        {
            "input": {"kind": "parquet", "path": str(parents)},
            "output": {"samples_per_shard": 8, "dtype": "float16"},
            "rejects": {"max_reject_fraction": 0.5},
        },
    )
    manifest = make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    assert manifest.status == "complete"
    assert manifest.rejections["by_reason"].get("float16_overflow") == 1
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text()
    assert '"galaxy_id": "hot0"' in rejects and "float16_overflow" in rejects
    assert verify_dataset(tmp_path / "out").ok


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


@pytest.mark.parametrize(
    "field,value,reason",
    [
        ("ra", -1003.0, "bad_radec"),
        ("ra", 360.5, "bad_radec"),
        ("dec", 91.0, "bad_radec"),
        ("psfsize_r", True, "nonfinite_catalog"),
        ("psfdepth_g", False, "nonfinite_catalog"),
    ],
)
def test_implausible_catalog_values_are_rejected(field, value, reason):
    with pytest.raises(BadRecord) as err:
        check_catalog({**GOOD_CATALOG, field: value})
    assert err.value.reason == reason and field in err.value.detail


def test_boolean_catalog_column_is_refused(tmp_path):
    path = tmp_path / "p.parquet"
    _good_parquet(path, 5)
    table = pq.read_table(path)
    i = table.column_names.index("psfsize_r")
    table = table.set_column(i, "psfsize_r", pa.array([True] * table.num_rows))
    pq.write_table(table, path)
    with pytest.raises(SourceError, match="psfsize_r.*bool"):
        ParquetSource(path)


@pytest.mark.parametrize("value", [3e38, -2e5, 1.5e5])
def test_implausible_pixels_are_rejected_and_verify_flags_them(tmp_path, value):
    stamp = np.ones((3, 64, 64), np.float32)
    stamp[1, 10, 10] = value
    with pytest.raises(BadRecord) as err:
        check_stamp(stamp, Limits())
    assert err.value.reason == "implausible_pixels"
    assert check_stamp(stamp, Limits(max_abs_pixel_nmgy=1e39)).shape == (3, 64, 64)
    # a dataset holding such a pixel fails verify
    root = tmp_path / "d"
    make_tiny_dataset(root, {"train": (2,)})
    from shards.writer import Sample, write_shard

    m = Manifest.load(root)
    first = next(iter(IndexedShard(root / SHARD).iter_samples()))
    img = np.array(first["image"])
    img[0, 5, 5] = value
    info = write_shard(root / SHARD, [Sample(first["__key__"], img, first["meta"], first["label"])])
    entry = m.shards[0]
    entry.sha256, entry.bytes, entry.n_samples = info.sha256, info.bytes, 1
    entry.n_pos, entry.n_neg = info.n_pos, info.n_neg
    m.recompute_splits()
    m.save(root)
    report = verify_dataset(root)
    assert any("max_abs_pixel_nmgy" in e for e in report.errors), report.format()


# ============================================================== 9, 13. files
def _fits_dir(tmp_path: Path, n: int = 3) -> Path:
    from astropy.io import fits

    d = tmp_path / "fits"
    d.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64] - 31.5
    gal = np.exp(-np.hypot(xx, yy) / 3.0)
    for i in range(n):
        cube = np.stack([gal * f + rng.normal(0, 0.03, (64, 64)) for f in (0.5, 1.0, 1.6)])
        hdu = fits.PrimaryHDU(cube.astype(np.float32))
        hdu.header["RA"], hdu.header["DEC"] = 150.0 + i * 0.01, 2.0
        hdu.writeto(d / f"gal{i}.fits")
    return d


def test_dangling_and_looping_fits_symlinks_are_rejected(tmp_path):
    d = _fits_dir(tmp_path)
    (d / "dangling.fits").symlink_to(d / "nowhere.fits")
    (d / "loop.fits").symlink_to(d / "loop.fits")
    os.mkfifo(d / "pipe.fits")
    src = FitsSource(d)
    out = [r for c in range(src.n_chunks()) for r in src.read_chunk(c)]
    rejected = {r.galaxy_id: r for r in out if isinstance(r, Rejection)}
    assert set(rejected) == {"dangling", "loop", "pipe"}
    assert all(r.reason == "unreadable_file" for r in rejected.values())
    assert "dangling symlink" in rejected["dangling"].detail
    assert "symlink loop" in rejected["loop"].detail
    assert "FIFO" in rejected["pipe"].detail
    assert len(out) == 6  # counted among the parents


def test_fits_symlink_rejects_are_counted_in_the_build(tmp_path):
    d = _fits_dir(tmp_path, 20)
    (d / "dangling.fits").symlink_to(d / "nowhere.fits")
    cfg = load_build_config(
        None,
        {
            "input": {"kind": "fits", "path": str(d)},
            "output": {"samples_per_shard": 8},
            "rejects": {"max_reject_fraction": 1.0},  # (injections into these toy cubes fail)
        },
    )
    m = make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
    assert m.rejections["n_parents"] == 21
    assert m.rejections["by_reason"].get("unreadable_file") == 1
    assert "dangling" in (tmp_path / "out" / "rejects.jsonl").read_text()


def _within(seconds: float, fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn`` in a daemon thread; fail the test if it blocks (a FIFO open would)."""
    result: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            result.append(None)
        except BaseException as exc:  # handed back to the test
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"blocked for more than {seconds} s"
    return result[0]


def test_fifo_parents_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "parents.parquet"
    os.mkfifo(fifo)
    assert "FIFO" in not_regular_reason(fifo)
    with pytest.raises(NotRegularFileError, match="FIFO"):
        require_regular_file(fifo, "parent file")
    exc = _within(20, lambda: ParquetSource(fifo))
    assert isinstance(exc, SourceError) and "FIFO" in str(exc), exc
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(fifo)}})
    exc = _within(20, lambda: make_shards(cfg, tmp_path / "out", BuildOptions(progress=False)))
    assert isinstance(exc, SourceError) and "FIFO" in str(exc), exc


# ============================================================== 15. fingerprint
def test_relative_and_absolute_input_paths_fingerprint_alike(tmp_path, monkeypatch):
    parents = tmp_path / "parents.parquet"
    _good_parquet(parents, 24)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "link.parquet").symlink_to(parents)
    fingerprints = []
    for given_path in ("parents.parquet", str(parents), "./x/../parents.parquet", "link.parquet"):
        cfg = load_build_config(
            None,
            {"input": {"kind": "parquet", "path": given_path}, "output": {"samples_per_shard": 8}},
        )
        m = make_shards(cfg, tmp_path / "out", BuildOptions(progress=False))
        fingerprints.append(m.config_sha256)
    assert len(set(fingerprints)) == 1


# ============================================================== helpers
def _good_parquet(path: Path, n: int, bright: dict[str, float] | None = None) -> None:
    """Seed-layout Parquet of ``n`` clean galaxies; ``bright`` ids get one pixel of that flux."""
    from builder.parents.npz import encode_stamp_npz

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:64, :64] - 31.5
    gal = np.exp(-np.hypot(xx, yy) / 3.0)
    rows = []
    ids = [f"ok{i}" for i in range(n)] + list(bright or {})
    for i, gid in enumerate(ids):
        stamp = np.stack([gal * f + rng.normal(0, 0.03, (64, 64)) for f in (0.5, 1.0, 1.6)]).astype(
            np.float32
        )
        if bright and gid in bright:
            stamp[1, 40, 40] = bright[gid]
        rows.append(
            {
                "galaxy_id": gid,
                "stamp_npz": encode_stamp_npz(stamp),
                **GOOD_CATALOG,
                "ra": 150.0 + 0.001 * i,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=16)


ATTACKS = {
    "index: swapped data offsets": test_swapped_npy_data_offsets_are_refused,
    "index: control label pointing at a positive's": (
        test_control_cls_pointing_at_a_positive_is_refused
    ),
    "index: deleted, garbage, other tar's sha, sample dropped": (
        test_missing_or_wrong_index_fails_verify
    ),
    "index: any single integer edited (hypothesis)": test_any_single_index_edit_is_detected,
    "index: missing or wrong index on resume": (
        test_resume_rebuilds_a_shard_whose_index_is_missing_or_wrong
    ),
    "bit rot: label bit": test_flipped_label_bit_is_refused,
    "bit rot: pixel bit": test_flipped_pixel_bit_is_refused,
    "bit rot: any byte (hypothesis)": test_any_flipped_byte_is_refused_or_harmless,
    "label values other than 0/1": test_labels_other_than_0_or_1_are_refused,
    "manifest: undercount": test_undercounting_manifest_is_refused_by_the_loader,
    "manifest: shard of another dataset": test_manifest_shard_of_another_dataset_is_refused,
    "manifest: path outside the root": test_manifest_paths_outside_the_root_are_refused,
    "npz bombs": test_npz_bombs_are_rejected_before_inflating,
    "float16 overflow": test_float16_overflow_is_a_per_row_rejection,
    "implausible catalog values": test_implausible_catalog_values_are_rejected,
    "boolean catalog column": test_boolean_catalog_column_is_refused,
    "implausible pixels": test_implausible_pixels_are_rejected_and_verify_flags_them,
    "FITS symlinks and FIFOs": test_dangling_and_looping_fits_symlinks_are_rejected,
    "FITS symlink rejects counted": test_fits_symlink_rejects_are_counted_in_the_build,
    "FIFO parents": test_fifo_parents_are_refused_without_blocking,
    "relative vs absolute input path": test_relative_and_absolute_input_paths_fingerprint_alike,
}


def test_attack_table_lists_every_test():
    tests = {
        name
        for name, obj in globals().items()
        if name.startswith("test_")
        and callable(obj)
        and name != "test_attack_table_lists_every_test"
    }
    assert tests == {f.__name__ for f in ATTACKS.values()}
