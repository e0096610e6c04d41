"""Extra catalogue columns (e.g. z_phot) reach the samples' metadata, never the model."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.parents.config import FitsConfig, ParquetConfig
from builder.parents.fits import load_side_table
from common.configio import ConfigError
from shards.reader import iter_tar_samples
from shards.schema import SAFE_MODEL_METADATA


def _parquet(path, n=30):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:64, :64] - 31.5
    galaxy = np.exp(-np.hypot(xx, yy) / 3.0)
    rows = []
    for i in range(n):
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            **{f"image_{b}": (rng.normal(0, 0.005, (64, 64)) + s * galaxy).astype(np.float32)
               for b, s in zip("grz", (0.2, 0.5, 0.9), strict=True)},
        )  # fmt: skip
        row = {"galaxy_id": f"g{i:03d}", "stamp_npz": buf.getvalue(), "ra": 150 + 0.01 * i}
        row.update({"dec": 2.0, "z_phot": 0.3 + 0.01 * i, "brickname": f"b{i % 3}"})
        row.update({f"psfsize_{b}": 1.2 for b in "grz"})
        row.update({f"psfdepth_{b}": 1000.0 for b in "grz"})
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_parquet_extra_columns_are_in_every_sample(tmp_path) -> None:
    _parquet(tmp_path / "p.parquet")
    cfg = load_build_config(
        None,
        {"input": {"kind": "parquet", "path": str(tmp_path / "p.parquet"),
                   "parquet": {"extra_columns": ["z_phot", "brickname"]}}},
    )  # fmt: skip
    make_shards(cfg, tmp_path / "out", BuildOptions(progress=False, executor="serial"))
    metas = [s["meta"] for tar in sorted((tmp_path / "out").glob("*/*.tar"))
             for s in iter_tar_samples(str(tar))]  # fmt: skip
    assert len(metas) > 20
    for meta in metas:
        i = int(meta["galaxy_id"][1:])
        assert meta["extra"] == {"z_phot": pytest.approx(0.3 + 0.01 * i), "brickname": f"b{i % 3}"}
    assert not set(SAFE_MODEL_METADATA) & {"z_phot", "brickname", "extra"}


def test_reserved_or_leaking_extra_columns_are_refused() -> None:
    for bad in ("label", "arc_snr", "ra", "extra"):
        with pytest.raises(ConfigError, match=r"input.parquet.extra_columns\[0\]"):
            ParquetConfig(extra_columns=(bad,)).validate("input.parquet")
    with pytest.raises(ConfigError, match="duplicate"):
        FitsConfig(extra_columns=("z_phot", "z_phot")).validate("input.fits")


def test_side_table_extra_columns(tmp_path) -> None:
    (tmp_path / "cat.csv").write_text("galaxy_id,psfsize_r,z_phot\na,1.1,0.45\nb,1.2,\n")
    table = load_side_table(tmp_path / "cat.csv", ["z_phot"])
    assert table["a"]["extra"] == {"z_phot": 0.45} and table["b"]["extra"] == {"z_phot": None}
    assert "extra" not in load_side_table(tmp_path / "cat.csv")["a"]


def test_train_score_keeps_extra_columns_typed(dataset, tmp_path) -> None:
    from tests.runs import tiny_config
    from train.cli import main
    from train.trainer import run

    run(tiny_config(epochs=1), dataset, tmp_path / "run")
    _parquet(tmp_path / "p.parquet", n=12)
    args = ["score", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "best.pt")]
    args += ["--parents", str(tmp_path / "p.parquet"), "--out", str(tmp_path / "scores")]
    args += ["--set", "input.parquet.extra_columns=[z_phot, brickname]", "--no-progress"]
    args += ["--device", "cpu", "--gallery", "0"]
    assert main(args) == 0
    table = pq.read_table(tmp_path / "scores" / "scores.parquet")
    assert pa.types.is_floating(table.schema.field("z_phot").type)
    rows = table.to_pydict()
    for gid, z, brick in zip(rows["galaxy_id"], rows["z_phot"], rows["brickname"], strict=True):
        i = int(gid[1:])
        assert z == pytest.approx(0.3 + 0.01 * i) and brick == f"b{i % 3}"
