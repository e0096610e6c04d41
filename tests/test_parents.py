"""Tests of the Parquet and FITS parent readers on files generated here."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from builder.parents.base import ParentRecord, Rejection
from builder.parents.config import FitsConfig, ParquetConfig
from builder.parents.fits import FitsSource
from builder.parents.parquet import (
    ParquetSource,
    SourceError,
    encode_stamp_npz,
    radec_id,
    write_parents_parquet,
)
from builder.photometry import moffat_nea_pix, psfdepth_from_sigma_pix
from common.configio import ConfigError, from_mapping
from shards.schema import BANDS, CATALOG_FIELDS

SIGMA = (0.004, 0.006, 0.015)  # per-band sky noise of the test stamps, nmgy
PSFSIZE = (1.45, 1.3, 1.2)


def make_stamp(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A (3, size, size) float32 stamp: a Gaussian blob at the centre on white noise."""
    y, x = np.mgrid[:size, :size]
    c = (size - 1) / 2
    blob = np.exp(-((x - c) ** 2 + (y - c) ** 2) / (2 * 3.0**2))
    noise = rng.normal(size=(3, size, size)) * np.array(SIGMA)[:, None, None]
    return (blob[None] * np.array([0.5, 1.0, 2.0])[:, None, None] + noise).astype(np.float32)


def true_depth(b: int) -> float:
    return float(psfdepth_from_sigma_pix(SIGMA[b], moffat_nea_pix(PSFSIZE[b], 3.5)))


def make_catalog(i: int) -> dict[str, float]:
    cat = {"ra": 150.0 + 0.01 * i, "dec": 2.0 - 0.003 * i}
    for b, band in enumerate(BANDS):
        cat[f"psfsize_{band}"] = PSFSIZE[b]
        cat[f"psfdepth_{band}"] = 100.0 * (b + 1) + i
    return cat


def make_records(n: int, seed: int = 0) -> list[ParentRecord]:
    rng = np.random.default_rng(seed)
    return [
        ParentRecord(f"gal{i:03d}", make_stamp(rng), make_catalog(i), location="test")
        for i in range(n)
    ]


def split(items) -> tuple[list[ParentRecord], list[Rejection]]:
    items = list(items)
    recs = [x for x in items if isinstance(x, ParentRecord)]
    rejs = [x for x in items if isinstance(x, Rejection)]
    assert len(recs) + len(rejs) == len(items)
    return recs, rejs


def write_table(path: Path, columns: dict[str, list], row_group_size: int | None = None) -> Path:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


# --------------------------------------------------------------------------- Parquet


def test_written_file_round_trips_over_row_groups(tmp_path: Path) -> None:
    records = make_records(10)
    path = write_parents_parquet(tmp_path / "parents.parquet", iter(records), row_group_size=4)
    assert not (tmp_path / "parents.parquet.tmp").exists()
    assert pq.ParquetFile(path).num_row_groups == 3
    src = ParquetSource(path, ParquetConfig())
    assert src.n_chunks() == 3 and src.info().n_chunks == 3
    assert src.info().extra["estimated_columns"] == []
    got: list[ParentRecord] = []
    for c in range(src.n_chunks()):
        recs, rejs = split(src.read_chunk(c))
        assert rejs == []
        got += recs
    assert [r.galaxy_id for r in got] == [r.galaxy_id for r in records]
    for want, have in zip(records, got, strict=True):
        np.testing.assert_array_equal(have.stamp_nmgy, want.stamp_nmgy)
        assert have.stamp_nmgy.dtype == np.float32 and have.stamp_nmgy.shape == (3, 64, 64)
        assert have.catalog == pytest.approx(want.catalog)
        assert list(have.catalog) == list(CATALOG_FIELDS)
    assert (got[5].chunk, got[5].row, got[5].location) == (1, 1, "parents.parquet:rg=1:row=1")
    clone = pickle.loads(pickle.dumps(src))  # sources travel to worker processes
    assert [r.galaxy_id for r in clone.read(2, [1, 0])] == ["gal009", "gal008"]


def test_read_returns_exactly_the_requested_rows_in_order(tmp_path: Path) -> None:
    records = make_records(10)
    path = write_parents_parquet(tmp_path / "p.parquet", records, row_group_size=4)
    src = ParquetSource(path, ParquetConfig())
    recs, _ = split(src.read(1, [3, 0, 2]))
    assert [r.galaxy_id for r in recs] == ["gal007", "gal004", "gal006"]
    assert [r.row for r in recs] == [3, 0, 2]
    assert recs[0].location == "p.parquet:rg=1:row=3"
    np.testing.assert_array_equal(recs[1].stamp_nmgy, records[4].stamp_nmgy)
    recs, _ = split(src.read(2, [1]))
    assert [r.galaxy_id for r in recs] == ["gal009"]
    with pytest.raises(IndexError):
        list(src.read(2, [2]))
    with pytest.raises(IndexError):
        list(src.read_chunk(3))


def test_writer_extra_columns_and_bad_arguments(tmp_path: Path) -> None:
    path = write_parents_parquet(
        tmp_path / "x.parquet",
        make_records(3),
        row_group_size=2,
        extra_columns={"brickname": lambda r: "0001p000", "objid": lambda r: int(r.galaxy_id[3:])},
    )
    table = pq.read_table(path)
    assert table.column("objid").to_pylist() == [0, 1, 2]
    assert {"galaxy_id", "stamp_npz", *CATALOG_FIELDS} <= set(table.column_names)
    with pytest.raises(ValueError):
        write_parents_parquet(tmp_path / "y.parquet", make_records(1), row_group_size=0)
    with pytest.raises(ValueError):
        write_parents_parquet(
            tmp_path / "y.parquet", make_records(1), 1, extra_columns={"ra": lambda r: 0.0}
        )


def test_writer_leaves_nothing_behind_when_records_fail(tmp_path: Path) -> None:
    def records():
        yield from make_records(3)
        raise RuntimeError("upstream failure")

    with pytest.raises(RuntimeError):
        write_parents_parquet(tmp_path / "z.parquet", records(), row_group_size=2)
    assert list(tmp_path.iterdir()) == []


def seed_layout_columns(n: int, rng: np.random.Generator) -> dict[str, list]:
    """The seed's real layout: no id column, only psfdepth_r, an extra ebv column."""
    cats = [make_catalog(i) for i in range(n)]
    return {
        "brickname": ["1500p020"] * n,
        "ra": [c["ra"] for c in cats],
        "dec": [c["dec"] for c in cats],
        "psfsize_g": [c["psfsize_g"] for c in cats],
        "psfsize_r": [c["psfsize_r"] for c in cats],
        "psfsize_z": [c["psfsize_z"] for c in cats],
        "psfdepth_r": [c["psfdepth_r"] for c in cats],
        "ebv": [0.03] * n,
        "stamp_npz": [encode_stamp_npz(make_stamp(rng)) for _ in range(n)],
    }


def test_seed_layout_ids_from_radec_and_depths_estimated(tmp_path: Path) -> None:
    cols = seed_layout_columns(6, np.random.default_rng(5))
    path = write_table(tmp_path / "seed.parquet", cols, row_group_size=4)
    src = ParquetSource(path, ParquetConfig())
    extra = src.info().extra
    assert extra["estimated_columns"] == ["psfdepth_g", "psfdepth_z"]
    assert extra["id_from"] == "radec"
    recs, rejs = split(r for c in range(src.n_chunks()) for r in src.read_chunk(c))
    assert rejs == [] and len(recs) == 6
    for i, rec in enumerate(recs):
        assert rec.galaxy_id == f"J{cols['ra'][i]:.6f}{cols['dec'][i]:+.6f}"
        assert rec.catalog["psfdepth_r"] == cols["psfdepth_r"][i]  # given, not estimated
        assert rec.catalog["psfdepth_g"] == pytest.approx(true_depth(0), rel=0.12)
        assert rec.catalog["psfdepth_z"] == pytest.approx(true_depth(2), rel=0.12)
    assert radec_id(1.5, -2.25) == "J1.500000-2.250000"


def test_seed_layout_with_reject_policy_rejects_missing_depths(tmp_path: Path) -> None:
    path = write_table(tmp_path / "seed.parquet", seed_layout_columns(3, np.random.default_rng(6)))
    src = ParquetSource(path, ParquetConfig(missing_depth="reject"))
    assert src.info().extra["missing_columns"] == ["psfdepth_g", "psfdepth_z"]
    recs, rejs = split(src.read_chunk(0))
    assert recs == []
    assert [r.reason for r in rejs] == ["missing_catalog"] * 3
    assert all(r.galaxy_id.startswith("J") and r.stage == "read" for r in rejs)


def test_null_depth_value_is_estimated(tmp_path: Path) -> None:
    records = make_records(2, seed=4)
    path = write_parents_parquet(tmp_path / "p.parquet", records, row_group_size=2)
    table = pq.read_table(path)
    table = table.set_column(
        table.column_names.index("psfdepth_z"), "psfdepth_z", pa.array([None, 321.0], pa.float64())
    )
    pq.write_table(table, path)
    recs, rejs = split(ParquetSource(path, ParquetConfig()).read_chunk(0))
    assert rejs == []
    assert recs[0].catalog["psfdepth_z"] == pytest.approx(true_depth(2), rel=0.12)
    assert recs[1].catalog["psfdepth_z"] == 321.0


def test_ids_from_brickname_and_objid(tmp_path: Path) -> None:
    cols = seed_layout_columns(2, np.random.default_rng(7))
    cols["objid"] = [17, 4242]
    path = write_table(tmp_path / "b.parquet", cols)
    src = ParquetSource(path, ParquetConfig())
    recs, _ = split(src.read_chunk(0))
    assert [r.galaxy_id for r in recs] == ["1500p020_17", "1500p020_4242"]
    assert src.info().extra["id_from"] == "brickname+objid"


def test_configurable_column_and_key_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    stamps = [make_stamp(rng) for _ in range(3)]
    cats = [make_catalog(i) for i in range(3)]
    column_map = {"ra": "RA_DEG", "dec": "DEC_DEG", "psfdepth_g": "depth_g_ivar"}
    cols = {
        "objname": ["a", "b", "c"],
        "cutout": [encode_stamp_npz(s, ("G", "R", "Z")) for s in stamps],
    }
    for f in CATALOG_FIELDS:
        cols[column_map.get(f, f)] = [c[f] for c in cats]
    path = write_table(tmp_path / "custom.parquet", cols)
    cfg = from_mapping(
        ParquetConfig,
        {
            "id_column": "objname",
            "stamp_column": "cutout",
            "band_keys": ["G", "R", "Z"],
            "column_map": column_map,
        },
        "parquet",
    )
    recs, rejs = split(ParquetSource(path, cfg).read_chunk(0))
    assert rejs == []
    assert [r.galaxy_id for r in recs] == ["a", "b", "c"]
    for rec, stamp, cat in zip(recs, stamps, cats, strict=True):
        np.testing.assert_array_equal(rec.stamp_nmgy, stamp)
        assert rec.catalog == pytest.approx(cat)
    # With the default names the same file is unusable, and the error names file and column.
    with pytest.raises(SourceError, match=r"custom\.parquet.*stamp_npz"):
        ParquetSource(path, ParquetConfig())


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_every_bad_row_kind_is_rejected_with_its_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    good = make_stamp(rng)
    keys = ("image_g", "image_r", "image_z")
    good_bytes = encode_stamp_npz(good)
    npy = io.BytesIO()
    np.save(npy, good)
    nan_stamp = good.copy()
    nan_stamp[1, 5, 5] = np.nan
    inf_stamp = good.copy()
    inf_stamp[2, 0, 0] = np.inf
    zero_stamp = good.copy()
    zero_stamp[0] = 0.0
    rows = [  # (id, stamp bytes, catalog overrides, expected reason or None)
        ("ok1", good_bytes, {}, None),
        ("trunc", good_bytes[: len(good_bytes) // 2], {}, "corrupt_stamp"),
        ("garbage", b"\x00\x01not a zip at all", {}, "corrupt_stamp"),
        ("npy", npy.getvalue(), {}, "corrupt_stamp"),
        ("null_stamp", None, {}, "corrupt_stamp"),
        ("shape", _npz(**{k: np.ones((32, 32), np.float32) for k in keys}), {}, "bad_shape"),
        ("nokey", _npz(image_g=good[0], image_r=good[1]), {}, "missing_band"),
        ("nanpix", encode_stamp_npz(nan_stamp), {}, "nonfinite_pixels"),
        ("infpix", encode_stamp_npz(inf_stamp), {}, "nonfinite_pixels"),
        ("zero", encode_stamp_npz(zero_stamp), {}, "zero_band"),
        ("intpix", _npz(**{k: np.ones((64, 64), np.int16) for k in keys}), {}, "corrupt_stamp"),
        ("nullsize", good_bytes, {"psfsize_r": None}, "missing_catalog"),
        ("nullra", good_bytes, {"ra": None}, "missing_catalog"),
        ("nandec", good_bytes, {"dec": float("nan")}, "nonfinite_catalog"),
        ("hugesize", good_bytes, {"psfsize_g": 10.0}, "bad_psfsize"),
        ("hugedepth", good_bytes, {"psfdepth_r": 1e9}, "bad_psfdepth"),
        ("tinydepth", good_bytes, {"psfdepth_z": 0.01}, "bad_psfdepth"),
        (None, good_bytes, {}, "bad_galaxy_id"),
        ("ok2", good_bytes, {}, None),
    ]
    cols: dict[str, list] = {"galaxy_id": [r[0] for r in rows], "stamp_npz": [r[1] for r in rows]}
    for f in CATALOG_FIELDS:
        cols[f] = [r[2].get(f, make_catalog(0)[f]) for r in rows]
    cols["galaxy_id"] = pa.array(cols["galaxy_id"], pa.string())
    cols["stamp_npz"] = pa.array(cols["stamp_npz"], pa.binary())
    path = write_table(tmp_path / "bad.parquet", cols, row_group_size=7)
    src = ParquetSource(path, ParquetConfig())
    out = [x for c in range(src.n_chunks()) for x in src.read_chunk(c)]
    assert len(out) == len(rows)
    for (gid, _, _, reason), item in zip(rows, out, strict=True):
        if reason is None:
            assert isinstance(item, ParentRecord) and item.galaxy_id == gid
        else:
            assert isinstance(item, Rejection), gid
            assert item.reason == reason, (gid, item)
            assert item.galaxy_id == (gid or "") and item.stage == "read" and item.detail
            assert item.location.startswith("bad.parquet:rg=")


def test_missing_catalog_column_rejects_every_row(tmp_path: Path) -> None:
    records = make_records(3)
    path = write_parents_parquet(tmp_path / "p.parquet", records, row_group_size=3)
    pq.write_table(pq.read_table(path).drop_columns(["psfsize_z"]), path)
    src = ParquetSource(path, ParquetConfig())
    assert src.info().extra["missing_columns"] == ["psfsize_z"]
    recs, rejs = split(src.read_chunk(0))
    assert recs == [] and {r.reason for r in rejs} == {"missing_catalog"}
    assert all("psfsize_z" in r.detail for r in rejs)


def test_unusable_files_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.parquet"):
        ParquetSource(tmp_path / "nope.parquet", ParquetConfig())
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"definitely not parquet")
    with pytest.raises(SourceError, match="junk.parquet"):
        ParquetSource(junk, ParquetConfig())
    as_text = write_table(tmp_path / "text.parquet", {"galaxy_id": ["a"], "stamp_npz": ["abc"]})
    with pytest.raises(SourceError, match="expected binary"):
        ParquetSource(as_text, ParquetConfig())
    no_id = write_table(tmp_path / "noid.parquet", {"stamp_npz": [b"x"], "psfsize_g": [1.0]})
    with pytest.raises(SourceError, match="galaxy ids"):
        ParquetSource(no_id, ParquetConfig())


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"missing_depth": "guess"}, "parquet.missing_depth"),
        ({"band_keys": ["a", "b"]}, "parquet.band_keys"),
        ({"column_map": {"redshift": "z"}}, "parquet.column_map.redshift"),
        ({"psf_beta": 3.5}, "parquet.psf_beta"),  # one PSF beta for the build: psf.moffat_beta
        ({"annulus_inner_pix": 40}, "parquet.annulus_inner_pix"),
        ({"id_colum": "x"}, "parquet.id_colum"),
    ],
)
def test_parquet_config_errors_name_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(ParquetConfig, mapping, "parquet")
    assert info.value.key == key


# --------------------------------------------------------------------------- FITS


def write_cube(
    path: Path, cube: np.ndarray, header: dict | None = None, radec: tuple | None = (150.1, 2.2)
) -> Path:
    hdr = fits.Header()
    if radec is not None:
        hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
        hdr["CRVAL1"], hdr["CRVAL2"] = radec
    for k, v in (header or {}).items():
        hdr[k] = v
    fits.PrimaryHDU(cube, header=hdr).writeto(path)
    return path


def marked_cube(rng: np.random.Generator, size: int) -> np.ndarray:
    cube = make_stamp(rng, size)
    c = (size - 1) // 2 if size % 2 else size // 2
    for b in range(3):
        cube[b, c, c] = 100.0 + b
    return cube


@pytest.mark.parametrize("size", [64, 65, 101])
def test_fits_cubes_are_centre_cropped(tmp_path: Path, size: int) -> None:
    cube = marked_cube(np.random.default_rng(size), size)
    write_cube(tmp_path / "g1.fits", cube)
    recs, rejs = split(FitsSource(tmp_path, FitsConfig()).read_chunk(0))
    assert rejs == [] and len(recs) == 1
    stamp = recs[0].stamp_nmgy
    assert stamp.shape == (3, 64, 64) and stamp.dtype == np.float32
    for b in range(3):
        assert stamp[b, 32, 32] == 100.0 + b
    off = (size - 64) // 2
    np.testing.assert_array_equal(stamp, cube[:, off : off + 64, off : off + 64])


def test_fits_defaults_and_header_position(tmp_path: Path) -> None:
    write_cube(tmp_path / "obj_7.fits", make_stamp(np.random.default_rng(1), 80))
    write_cube(
        tmp_path / "obj_8.fits",
        make_stamp(np.random.default_rng(2), 64),
        header={"RA": 10.5, "DEC": -3.25},
        radec=(1.0, 1.0),
    )
    src = FitsSource(tmp_path, FitsConfig())
    recs, rejs = split(src.read_chunk(0))
    assert rejs == []
    assert [r.galaxy_id for r in recs] == ["obj_7", "obj_8"]
    cat = recs[0].catalog
    assert (cat["ra"], cat["dec"]) == (150.1, 2.2)
    assert (recs[1].catalog["ra"], recs[1].catalog["dec"]) == (10.5, -3.25)  # RA/DEC keys win
    assert [cat[f"psfsize_{b}"] for b in BANDS] == [1.3, 1.2, 1.1]
    for b, band in enumerate(BANDS):  # estimated with the default FWHM
        want = psfdepth_from_sigma_pix(
            SIGMA[b], moffat_nea_pix(FitsConfig().psfsize_arcsec[b], 3.5)
        )
        assert cat[f"psfdepth_{band}"] == pytest.approx(want, rel=0.12)
    assert recs[0].location == "obj_7.fits:chunk=0:row=0"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_fits_side_table_values_are_used(tmp_path: Path, kind: str) -> None:
    cut = tmp_path / "cutouts"
    cut.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        write_cube(cut / f"{name}.fits", make_stamp(rng, 64))
    side = {"psfsize_g": [1.55], "psfdepth_r": [444.0], "ra": [33.3], "dec": [-4.4]}
    if kind == "csv":
        side_path = tmp_path / "side.csv"
        lines = ["galaxy_id," + ",".join(side)] + [
            "a," + ",".join(str(v[0]) for v in side.values())
        ]
        side_path.write_text("\n".join(lines) + "\n")
    else:
        side_path = write_table(tmp_path / "side.parquet", {"filename": ["a.fits"], **side})
    src = FitsSource(cut, FitsConfig(side_table=str(side_path)))
    recs, rejs = split(src.read_chunk(0))
    assert rejs == []
    a, b = recs
    assert (a.catalog["psfsize_g"], a.catalog["psfdepth_r"]) == (1.55, 444.0)
    assert (a.catalog["ra"], a.catalog["dec"]) == (33.3, -4.4)
    assert a.catalog["psfsize_r"] == 1.2  # not in the table: default
    assert (b.catalog["psfsize_g"], b.catalog["ra"]) == (1.3, 150.1)  # not in the table


def test_fits_header_band_order_is_honoured(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    gz = make_stamp(rng, 64)
    zgr = gz[[2, 0, 1]]
    write_cube(tmp_path / "keys.fits", zgr, header={"BAND0": "z", "BAND1": "g", "BAND2": "r"})
    write_cube(tmp_path / "str.fits", zgr, header={"BANDS": "zgr"})
    write_cube(tmp_path / "plain.fits", gz)
    recs, rejs = split(FitsSource(tmp_path, FitsConfig()).read_chunk(0))
    assert rejs == [] and len(recs) == 3
    for rec in recs:
        np.testing.assert_array_equal(rec.stamp_nmgy, gz)


def test_fits_bad_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    (tmp_path / "a_garbage.fits").write_bytes(b"SIMPLE  = nonsense" + bytes(100))
    full = write_cube(tmp_path / "b_trunc_src.fits", make_stamp(rng, 64))
    (tmp_path / "b_truncated.fits").write_bytes(full.read_bytes()[:6000])
    full.unlink()
    write_cube(tmp_path / "c_twoplanes.fits", make_stamp(rng, 64)[:2])
    write_cube(tmp_path / "d_plane.fits", make_stamp(rng, 64)[0])
    write_cube(tmp_path / "e_small.fits", make_stamp(rng, 50))
    write_cube(tmp_path / "f_noradec.fits", make_stamp(rng, 64), radec=None)
    write_cube(tmp_path / "g_noband.fits", make_stamp(rng, 64), header={"BANDS": "gri"})
    nan = make_stamp(rng, 64)
    nan[0, 3, 3] = np.nan
    write_cube(tmp_path / "h_nan.fits", nan)
    write_cube(tmp_path / "i_ok.fits", make_stamp(rng, 64))
    (tmp_path / "j_empty.fits").write_bytes(b"")
    fits.PrimaryHDU().writeto(tmp_path / "k_nodata.fits")
    src = FitsSource(tmp_path, FitsConfig(files_per_chunk=4))
    assert src.n_chunks() == 3
    out = [x for c in range(src.n_chunks()) for x in src.read_chunk(c)]
    got = {x.galaxy_id: (x.reason if isinstance(x, Rejection) else "ok") for x in out}
    assert got == {
        "a_garbage": "unreadable_file",
        "b_truncated": "unreadable_file",
        "c_twoplanes": "missing_band",
        "d_plane": "missing_band",
        "e_small": "bad_shape",
        "f_noradec": "missing_catalog",
        "g_noband": "missing_band",
        "h_nan": "nonfinite_pixels",
        "i_ok": "ok",
        "j_empty": "unreadable_file",
        "k_nodata": "unreadable_file",
    }


def test_fits_read_rows_and_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    for i in range(5):
        write_cube(tmp_path / f"f{i}.fits", make_stamp(rng, 64))
    src = FitsSource(tmp_path, FitsConfig(files_per_chunk=2))
    assert src.n_chunks() == 3 == src.info().n_chunks
    recs, _ = split(src.read(1, [1, 0]))
    assert [(r.galaxy_id, r.chunk, r.row) for r in recs] == [("f3", 1, 1), ("f2", 1, 0)]
    assert [r.galaxy_id for r in src.read_chunk(2)] == ["f4"]
    assert [r.galaxy_id for r in pickle.loads(pickle.dumps(src)).read(0, [1])] == ["f1"]
    with pytest.raises(IndexError):
        list(src.read(2, [1]))


def test_fits_missing_depth_reject_policy(tmp_path: Path) -> None:
    write_cube(tmp_path / "a.fits", make_stamp(np.random.default_rng(7), 64))
    recs, rejs = split(FitsSource(tmp_path, FitsConfig(missing_depth="reject")).read_chunk(0))
    assert recs == [] and [r.reason for r in rejs] == ["missing_catalog"]


def test_fits_unusable_inputs_raise_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        FitsSource(tmp_path / "missing", FitsConfig())
    with pytest.raises(SourceError, match="no files"):
        FitsSource(tmp_path, FitsConfig())
    write_cube(tmp_path / "a.fits", make_stamp(np.random.default_rng(8), 64))
    bad_side = tmp_path / "side.csv"
    bad_side.write_text("name,ra\na,1.0\n")
    with pytest.raises(SourceError, match="galaxy_id"):
        FitsSource(tmp_path, FitsConfig(side_table=str(bad_side)))


def test_fits_side_table_non_number_is_rejected_not_defaulted(tmp_path: Path) -> None:
    write_cube(tmp_path / "a.fits", make_stamp(np.random.default_rng(9), 64))
    side = tmp_path / "side.csv"
    side.write_text("galaxy_id,psfsize_r\na,wide\n")
    recs, rejs = split(FitsSource(tmp_path, FitsConfig(side_table=str(side))).read_chunk(0))
    assert recs == [] and [r.reason for r in rejs] == ["nonfinite_catalog"]


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"files_per_chunk": 0}, "fits.files_per_chunk"),
        ({"psfsize_arcsec": [1.0, 1.0]}, "fits.psfsize_arcsec"),
        ({"psfsize_arcsec": [1.0, -1.0, 1.0]}, "fits.psfsize_arcsec[r]"),
        ({"side_table": "x.txt"}, "fits.side_table"),
        ({"missing_depth": "skip"}, "fits.missing_depth"),
    ],
)
def test_fits_config_errors_name_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(FitsConfig, mapping, "fits")
    assert info.value.key == key
    assert math.isfinite(FitsConfig().psfsize_arcsec[0])
