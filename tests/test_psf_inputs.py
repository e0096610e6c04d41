"""PSF images supplied with real inputs: Parquet column ``psf``, FITS ``PSF`` HDU, validation,
rejections, and arcs convolved with exactly that kernel."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from scipy import signal

from builder.inject import InjectionConfig, inject_arc
from builder.notices import input_notices
from builder.parents.base import ParentRecord, Rejection
from builder.parents.fits import FitsSource
from builder.parents.parquet import ParquetSource
from builder.parents.psf_input import MAX_PSF_SIZE_PIX, check_psf_beta, check_psf_images
from builder.validate import BadRecord
from shards.schema import BANDS

FWHM, DEPTH = (1.3, 1.2, 1.1), (2500.0, 1000.0, 250.0)


def _psf(k: int = 15, seed: int = 0) -> np.ndarray:
    """An asymmetric (3, k, k) PSF with a non-unit sum, so orientation and normalisation show."""
    yy, xx = np.mgrid[:k, :k] - k // 2
    out = []
    for b, width in enumerate((2.2, 2.0, 1.8)):
        core = np.exp(-((xx - 0.7) ** 2 + (yy / 1.3) ** 2) / (2 * width**2))
        out.append((3.0 + b) * (core + 0.02 * np.random.default_rng(seed + b).random((k, k))))
    return np.stack(out)


def _stamp(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:64, :64] - 31.5
    galaxy = np.exp(-np.hypot(xx, yy) / 3.0)
    return np.stack([rng.normal(0, 0.005, (64, 64)) + s * galaxy for s in (0.2, 0.5, 0.9)]).astype(
        np.float32
    )


def _npz(stamp: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"image_{b}": stamp[i] for i, b in enumerate(BANDS)})
    return buf.getvalue()


def _catalog(i: int) -> dict[str, float]:
    cat = {"ra": 150.0 + 0.01 * i, "dec": 2.0}
    for b, fwhm, depth in zip(BANDS, FWHM, DEPTH, strict=True):
        cat[f"psfsize_{b}"], cat[f"psfdepth_{b}"] = fwhm, depth
    return cat


def test_check_psf_images_normalises_flat_and_nested_alike() -> None:
    psf = _psf()
    flat, nested = check_psf_images(psf.ravel().tolist()), check_psf_images(psf.tolist())
    np.testing.assert_array_equal(flat, nested)
    np.testing.assert_allclose(flat.sum(axis=(1, 2)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(flat, psf / psf.sum(axis=(1, 2), keepdims=True), rtol=1e-12)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (np.ones((3, 14, 14)), "even"),
        (np.ones((3, MAX_PSF_SIZE_PIX + 2, MAX_PSF_SIZE_PIX + 2)), "exceeds"),
        (np.ones(3 * 15 * 15 + 1), "3 \\* K \\* K"),
        (np.ones((2, 15, 15)), "shape"),
        (np.full((3, 5, 5), np.nan), "non-finite"),
        (np.concatenate([np.ones((2, 5, 5)), np.zeros((1, 5, 5))]), "band\\(s\\) z"),
        ([[[1.0, 2.0]], [[1.0]], [[1.0]]], "numeric"),
    ],
)
def test_bad_psf_images_raise_bad_psf(value, why: str) -> None:
    with pytest.raises(BadRecord, match=why) as info:
        check_psf_images(value)
    assert info.value.reason == "bad_psf"


def test_check_psf_beta() -> None:
    assert check_psf_beta([None, None, None]) is None
    assert check_psf_beta([2.5, 3, 4.5]) == (2.5, 3.0, 4.5)
    for bad in ([2.5, None, 3.0], [2.5, 1.0, 3.0], [2.5, float("nan"), 3.0]):
        with pytest.raises(BadRecord):
            check_psf_beta(bad)


def test_arc_convolved_with_supplied_psf_equals_direct_convolution() -> None:
    """Same draws (no PSF-dependent cut), arc(PSF K) == arc(delta) convolved with K directly."""
    host = _stamp(np.random.default_rng(3))
    cfg = InjectionConfig()
    cfg = dataclasses.replace(cfg, visibility=dataclasses.replace(cfg.visibility, min_snr=0.0))
    kernel = check_psf_images(_psf(17))
    delta = np.ones((3, 1, 1))
    with_k = inject_arc(host, _catalog(0), np.random.default_rng(11), cfg, psf_images=kernel)
    bare = inject_arc(host, _catalog(0), np.random.default_rng(11), cfg, psf_images=delta)
    assert with_k.accepted and bare.accepted and with_k.n_draws == bare.n_draws
    assert with_k.params["psf_model"] == "supplied" and "psf_beta_r" not in with_k.params
    for b in range(3):
        direct = signal.convolve2d(bare.arc_nmgy[b].astype(np.float64), kernel[b], mode="same")
        np.testing.assert_allclose(with_k.arc_nmgy[b], direct, rtol=0, atol=2e-6 * direct.max())


def _write_parquet(path, psf_values, psf_type=None) -> None:
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {"galaxy_id": [], "stamp_npz": [], "psf": list(psf_values)}
    for i in range(len(psf_values)):
        rows["galaxy_id"].append(f"g{i}")
        rows["stamp_npz"].append(_npz(_stamp(rng)))
        for k, v in _catalog(i).items():
            rows.setdefault(k, []).append(v)
    schema = None
    if psf_type is not None:
        fields = [pa.field(k, pa.string() if k == "galaxy_id" else pa.float64()) for k in rows]
        fields[1] = pa.field("stamp_npz", pa.binary())
        fields[2] = pa.field("psf", psf_type)
        schema = pa.schema(fields)
    pq.write_table(pa.table(rows, schema=schema), path, row_group_size=8)


def test_parquet_psf_column_is_read_validated_and_bad_rows_rejected(tmp_path) -> None:
    psf = _psf(15)
    good = psf.astype(np.float32)
    values = [good.ravel().tolist(), None, np.ones((3, 14, 14)).ravel().tolist()]
    path = tmp_path / "p.parquet"
    _write_parquet(path, values, pa.list_(pa.float32()))
    src = ParquetSource(path)
    assert src.info().extra["psf_from"] == "column psf"
    recs = list(src.read_chunk(0))
    assert isinstance(recs[0], ParentRecord) and isinstance(recs[1], ParentRecord)
    want = good.astype(np.float64) / good.astype(np.float64).sum(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(recs[0].psf_images, want, rtol=1e-12)
    assert recs[1].psf_images is None  # null: no PSF for this row, the Moffat model is used
    assert isinstance(recs[2], Rejection) and recs[2].reason == "bad_psf"
    assert "even" in recs[2].detail
    # a nested [3][K][K] column reads the same
    nested = tmp_path / "n.parquet"
    _write_parquet(nested, [good.tolist()], pa.list_(pa.list_(pa.list_(pa.float32()))))
    (rec,) = ParquetSource(nested).read_chunk(0)
    np.testing.assert_allclose(rec.psf_images, want, rtol=1e-12)
    # the injection convolves the arc with the record's PSF
    res = inject_arc(
        rec.stamp_nmgy, rec.catalog, np.random.default_rng(2), InjectionConfig(), rec.psf_images
    )
    assert res.params["psf_model"] == "supplied"


def test_parquet_psf_column_of_a_wrong_type_is_refused(tmp_path) -> None:
    from builder.errors import SourceError

    path = tmp_path / "p.parquet"
    _write_parquet(path, ["not a psf"])
    with pytest.raises(SourceError, match="PSF column 'psf'"):
        ParquetSource(path)


def _write_cutout(path, psf: np.ndarray | None, seed: int) -> None:
    hdus = [fits.PrimaryHDU(_stamp(np.random.default_rng(seed)))]
    hdus[0].header["RA"], hdus[0].header["DEC"] = 180.0, 1.0 + 0.01 * seed
    if psf is not None:
        hdus.append(fits.ImageHDU(psf.astype(np.float32), name="PSF"))
    fits.HDUList(hdus).writeto(path)


def test_fits_psf_hdu_is_read_and_a_bad_one_rejected(tmp_path) -> None:
    d = tmp_path / "cutouts"
    d.mkdir()
    psf = _psf(21)
    _write_cutout(d / "a.fits", psf, 0)
    _write_cutout(d / "b.fits", None, 1)
    _write_cutout(d / "c.fits", np.ones((3, 20, 20)), 2)
    _write_cutout(d / "d.fits", np.ones((20, 21)), 3)
    src = FitsSource(d)
    assert src.info().extra["psf_hdu"] == "PSF"
    a, b, c, e = src.read_chunk(0)
    want = psf.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(a.psf_images, want / want.sum(axis=(1, 2), keepdims=True), 1e-12)
    assert b.psf_images is None
    assert isinstance(c, Rejection) and c.reason == "bad_psf" and "even" in c.detail
    assert isinstance(e, Rejection) and e.reason == "bad_psf"
    # psf_hdu: null ignores the HDU
    from builder.parents.config import FitsConfig

    off = FitsSource(d, FitsConfig(psf_hdu=None))
    assert all(r.psf_images is None for r in off.read_chunk(0))


def test_notices_say_when_arcs_use_the_moffat_model() -> None:
    extra = {"estimated_columns": [], "psf_from": "moffat"}
    (note,) = input_notices({"kind": "parquet", "extra": extra}, 3.0)
    assert "Moffat" in note and "beta 3" in note and "psf.moffat_beta" in note
    for psf_from in ("column psf", "psf_beta columns"):
        extra = {"estimated_columns": [], "psf_from": psf_from}
        assert input_notices({"kind": "parquet", "extra": extra}, 3.0) == []
    fits_extra = {"side_table": "cat.csv", "default_psfsize_arcsec": {"r": 1.2}, "psf_hdu": "PSF"}
    (note,) = input_notices({"kind": "fits", "extra": fits_extra}, 2.8)
    assert "PSF image HDU" in note and "beta 2.8" in note


def test_build_from_parquet_with_psf_convolves_arcs_with_it(tmp_path) -> None:
    from builder.build import BuildOptions, make_shards
    from builder.config import load_build_config
    from builder.splits import galaxy_seed
    from shards.reader import iter_tar_samples

    n = 12
    psf = _psf(15).astype(np.float32)
    path = tmp_path / "p.parquet"
    _write_parquet(path, [psf.ravel().tolist()] * n, pa.list_(pa.float32()))
    over = {
        "input": {"kind": "parquet", "path": str(path)},
        "output": {"samples_per_shard": 16, "with_arcs": True},
    }
    cfg = load_build_config(None, over)
    out = tmp_path / "out"
    make_shards(cfg, out, BuildOptions(workers=1, progress=False, executor="serial"))
    src = ParquetSource(path)
    records = {r.galaxy_id: r for c in range(src.n_chunks()) for r in src.read_chunk(c)}
    samples = [s for tar in sorted(out.rglob("*.tar")) for s in iter_tar_samples(str(tar))]
    positives = [s for s in samples if s["label"] == 1]
    assert positives
    for s in positives:
        gid = s["meta"]["galaxy_id"]
        assert s["meta"]["injection"]["psf_model"] == "supplied"
        rng = np.random.default_rng(galaxy_seed(gid, cfg.seed))
        rec = records[gid]
        want = inject_arc(rec.stamp_nmgy, rec.catalog, rng, cfg.injection, rec.psf_images)
        np.testing.assert_allclose(s["arc"], want.arc_nmgy, rtol=0, atol=1e-6 * want.arc_nmgy.max())
