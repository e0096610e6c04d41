"""A build says once when it uses defaults for physical inputs (PSF FWHM, depths)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.notices import input_notices


def _cutouts(directory, n=8):
    directory.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64] - 31.5
    galaxy = np.exp(-np.hypot(xx, yy) / 3.0)
    for i in range(n):
        cube = np.stack([rng.normal(0, 0.005, (64, 64)) + s * galaxy for s in (0.2, 0.5, 0.9)])
        header = fits.Header()
        header["RA"], header["DEC"] = 180.0 + 0.01 * i, 1.0
        fits.PrimaryHDU(cube.astype(np.float32), header=header).writeto(directory / f"c{i}.fits")
    return directory


def test_fits_build_without_side_table_says_it_uses_default_psf_once(tmp_path, capsys) -> None:
    parents = _cutouts(tmp_path / "cutouts")
    cfg = load_build_config(
        None,
        {"input": {"kind": "fits", "path": str(parents)}, "rejects": {"max_reject_fraction": 1.0}},
    )
    make_shards(cfg, tmp_path / "out", BuildOptions(progress=False, executor="serial"))
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("builder: note:")]
    assert len(notes) == 1
    assert "without a side table" in notes[0] and "1.2" in notes[0] and "--side-table" in notes[0]


def test_notice_table_per_kind() -> None:
    fits_extra = {"side_table": "cat.csv", "default_psfsize_arcsec": {"g": 1.3, "r": 1.2, "z": 1.1}}
    assert "side table cat.csv" in input_notices({"kind": "fits", "extra": fits_extra}, 3.5)[0]
    parquet = {"kind": "parquet", "extra": {"estimated_columns": ["psfdepth_z"]}}
    assert "psfdepth_z" in input_notices(parquet, 3.5)[0]
    assert input_notices({"kind": "parquet", "extra": {"estimated_columns": []}}, 3.5) == []
    assert input_notices({"kind": "synthetic"}, 3.5) == []
