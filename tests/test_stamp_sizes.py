"""One stamp-size rule for every reader: larger stamps centre-cropped to 64x64, smaller rejected;
a FITS cube with the bands on the last axis gets a message that says so."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from builder.parents.fits import read_cutout
from builder.parents.npz import MAX_INPUT_SIDE_PIX, decode_stamp_npz
from builder.validate import BadRecord, center_crop


def _npz(side: int, rng) -> tuple[bytes, np.ndarray]:
    bands = rng.normal(0.0, 0.01, (3, side, side)).astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"image_{b}": bands[i] for i, b in enumerate("grz")})
    return buf.getvalue(), bands


@pytest.mark.parametrize("side", [64, 65, 101, MAX_INPUT_SIDE_PIX])
def test_parquet_npz_stamps_are_cropped_like_fits_cubes(side, tmp_path) -> None:
    rng = np.random.default_rng(side)
    data, bands = _npz(side, rng)
    stamp = decode_stamp_npz(data)
    assert stamp.shape == (3, 64, 64)
    np.testing.assert_array_equal(stamp, center_crop(bands))
    path = tmp_path / "c.fits"
    fits.PrimaryHDU(bands).writeto(path)
    cube, _ = read_cutout(path)
    np.testing.assert_array_equal(cube, stamp)  # the same pixels from either reader


def test_odd_cube_centre_pixel_lands_on_index_32() -> None:
    cube = np.zeros((3, 101, 101), np.float32)
    cube[:, 50, 50] = 1.0
    assert center_crop(cube)[0, 32, 32] == 1.0


@pytest.mark.parametrize("side", [32, MAX_INPUT_SIDE_PIX + 1])
def test_too_small_or_too_large_npz_bands_are_rejected(side) -> None:
    data, _ = _npz(side, np.random.default_rng(0))
    with pytest.raises(BadRecord) as err:
        decode_stamp_npz(data)
    assert err.value.reason == "bad_shape" and "image_g" in err.value.detail


def test_bands_on_the_last_axis_are_named_in_the_rejection(tmp_path) -> None:
    path = tmp_path / "hwc.fits"
    fits.PrimaryHDU(np.zeros((101, 101, 3), np.float32)).writeto(path)
    with pytest.raises(BadRecord) as err:
        read_cutout(path)
    assert err.value.reason == "bad_shape"
    assert "(101, 101, 3)" in err.value.detail and "last axis" in err.value.detail
