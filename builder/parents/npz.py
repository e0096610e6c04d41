"""The seed layout's stamp codec: ``np.savez_compressed`` bytes of the g, r, z band images.

Decoding is hardened against hostile bytes: every failure becomes a :class:`BadRecord` with a
named reason, never an exception escaping the reader, and a zip bomb is refused from its declared
sizes before anything is inflated.
"""

from __future__ import annotations

import io
import math
import tokenize
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from builder.validate import BadRecord, Limits, center_crop, check_stamp
from shards.codecs import parse_npy_header
from shards.schema import BANDS, STAMP_SIZE_PIX

NPZ_KEYS: tuple[str, ...] = tuple(f"image_{b}" for b in BANDS)
"""Keys of the band images inside a ``stamp_npz`` value (seed layout)."""

# Everything numpy/zipfile may raise on hostile bytes: numpy parses .npy headers with
# ast.literal_eval (SyntaxError, tokenize errors), a forged shape can ask for huge allocations.
_NPZ_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    KeyError,
    TypeError,
    SyntaxError,
    RecursionError,
    MemoryError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,  # encrypted member
    NotImplementedError,  # unsupported compression method
)

MAX_INPUT_SIDE_PIX = 256
"""Largest band side accepted (centre-cropped to 64): the cutout service's 256-pixel maximum."""

MAX_BAND_NPY_BYTES = MAX_INPUT_SIDE_PIX * MAX_INPUT_SIDE_PIX * 8 + 4096
"""Largest ``.npy`` member a band may be: a float64 256 x 256 plane plus a generous header."""


def encode_stamp_npz(stamp_nmgy: np.ndarray, keys: Sequence[str] = NPZ_KEYS) -> bytes:
    """Encode a (3, H, W) g, r, z stamp as ``np.savez_compressed`` bytes (float32 per band).

    Parameters
    ----------
    stamp_nmgy : ndarray
        Band images in nanomaggies, bands in :data:`shards.schema.BANDS` order.
    keys : sequence of str
        npz key of each band.
    """
    arr = np.asarray(stamp_nmgy)
    if arr.ndim != 3 or arr.shape[0] != len(keys):
        raise ValueError(f"expected a ({len(keys)}, H, W) stamp, got shape {arr.shape}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: arr[i].astype(np.float32) for i, k in enumerate(keys)})
    return buf.getvalue()


def _band_bytes(zf: zipfile.ZipFile, key: str) -> bytes:
    """The ``.npy`` bytes of band ``key``, refused *before inflating* when they would be larger
    than a 64 x 64 band can be (the zip's declared uncompressed size; zipfile never returns more
    than that size, and the read is bounded too)."""
    names = zf.namelist()
    name = f"{key}.npy" if f"{key}.npy" in names else key
    if name not in names:
        keys = sorted(n.removesuffix(".npy") for n in names)
        raise BadRecord("missing_band", f"npz has no key {key!r} (keys: {keys})")
    info = zf.getinfo(name)
    if info.file_size > MAX_BAND_NPY_BYTES:
        raise BadRecord(
            "bad_shape",
            f"{name} declares {info.file_size} bytes uncompressed, more than the "
            f"{MAX_BAND_NPY_BYTES} a {STAMP_SIZE_PIX}x{STAMP_SIZE_PIX} band can take; "
            "refused before inflating (a zip bomb or a wrong stamp size)",
        )
    with zf.open(info) as fh:
        raw = fh.read(MAX_BAND_NPY_BYTES + 1)
    if len(raw) > MAX_BAND_NPY_BYTES:  # defensive: more than declared
        raise BadRecord("bad_shape", f"{name} inflates beyond {MAX_BAND_NPY_BYTES} bytes")
    return raw


def _npy_header(raw: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int, bool]:
    """``(dtype, shape, data offset, fortran_order)`` of ``.npy`` bytes, via numpy's header
    parser; nothing is allocated from the declared shape."""
    parsed = parse_npy_header(raw)  # cached fast path of the float stamps this project writes
    if parsed is not None:
        return (*parsed, False)
    fh = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except _NPZ_ERRORS as exc:
        raise BadRecord(
            "corrupt_stamp", f"cannot decode {name}: {type(exc).__name__}: {exc}"
        ) from None
    return dtype, shape, fh.tell(), fortran


def _band_array(raw: bytes, name: str) -> np.ndarray:
    """A checked (64, 64) float band from its ``.npy`` bytes (shape and dtype from the header,
    checked before the data is touched; never unpickles)."""
    dtype, shape, offset, fortran = _npy_header(raw, name)
    if dtype.hasobject or dtype.kind != "f":
        raise BadRecord("corrupt_stamp", f"{name}: expected floating pixels, got {dtype}")
    if len(shape) != 2 or min(shape) < STAMP_SIZE_PIX or max(shape) > MAX_INPUT_SIDE_PIX:
        raise BadRecord(
            "bad_shape",
            f"{name} has shape {tuple(shape)}, expected 2-D with sides in "
            f"[{STAMP_SIZE_PIX}, {MAX_INPUT_SIDE_PIX}] (larger bands are centre-cropped to "
            f"{STAMP_SIZE_PIX}x{STAMP_SIZE_PIX})",
        )
    if offset + math.prod(shape) * dtype.itemsize != len(raw):
        raise BadRecord("corrupt_stamp", f"{name}: data size disagrees with its header")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=offset)
    return center_crop(arr.reshape(shape, order="F" if fortran else "C"))


def decode_stamp_npz(
    data: bytes | None, keys: Sequence[str] = NPZ_KEYS, limits: Limits | None = None
) -> np.ndarray:
    """Decode ``np.savez_compressed`` bytes into a validated float32 (3, 64, 64) stamp.

    Hostile bytes are safe: each band's declared uncompressed size is checked before it is
    inflated, its ``.npy`` header (shape, dtype) before its data is used, and the zip CRC when
    it is read; nothing is unpickled and nothing is allocated from a declared shape.

    Raises
    ------
    BadRecord
        ``corrupt_stamp`` (null, truncated or non-npz bytes, non-float planes), ``missing_band``
        (a key is absent), ``bad_shape`` (a band smaller than 64 x 64 or larger than
        :data:`MAX_INPUT_SIDE_PIX`, or declaring more bytes than such a band can hold: a zip
        bomb; bands between are centre-cropped to 64 x 64 like FITS cubes), or the reasons of
        :func:`builder.validate.check_stamp` (``nonfinite_pixels``, ``zero_band``,
        ``implausible_pixels`` ...).
    """
    if data is None:
        raise BadRecord("corrupt_stamp", "null stamp value")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            planes = [_band_array(_band_bytes(zf, key), f"{key}.npy") for key in keys]
    except BadRecord:
        raise
    except _NPZ_ERRORS as exc:
        raise BadRecord(
            "corrupt_stamp", f"cannot decode npz: {type(exc).__name__}: {exc}"
        ) from None
    return check_stamp(np.stack(planes), limits if limits is not None else Limits())
