"""The seed layout's stamp codec: ``np.savez_compressed`` bytes of the g, r, z band images.

Decoding is hardened against hostile bytes: every failure becomes a :class:`BadRecord` with a
named reason, never an exception escaping the reader.
"""

from __future__ import annotations

import io
import tokenize
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from builder.validate import BadRecord, check_stamp
from shards.reader import parse_npy_header
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
)


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


def _decode_npz_fast(data: bytes, keys: Sequence[str]) -> np.ndarray | None:
    """Fast path for well-formed stamps: zipfile (CRC-checked) + cached header + frombuffer.

    Returns None whenever anything is unusual, so that :func:`decode_stamp_npz` falls back to
    ``np.load`` and reports the precise rejection reason.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            planes = []
            for key in keys:
                raw = zf.read(f"{key}.npy")
                parsed = parse_npy_header(raw)  # the shard reader's cached parser
                if parsed is None or parsed[1] != (STAMP_SIZE_PIX, STAMP_SIZE_PIX):
                    return None
                dtype, shape, offset = parsed
                planes.append(np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape))
    except _NPZ_ERRORS:
        return None
    return np.stack(planes).astype(np.float32, copy=False)


def decode_stamp_npz(data: bytes | None, keys: Sequence[str] = NPZ_KEYS) -> np.ndarray:
    """Decode ``np.savez_compressed`` bytes into a validated float32 (3, 64, 64) stamp.

    Raises
    ------
    BadRecord
        ``corrupt_stamp`` (null, truncated or non-npz bytes), ``missing_band`` (a key is
        absent), ``bad_shape`` (a band is not 64 x 64), or the reasons of
        :func:`builder.validate.check_stamp` (``nonfinite_pixels``, ``zero_band`` ...).
    """
    if data is None:
        raise BadRecord("corrupt_stamp", "null stamp value")
    fast = _decode_npz_fast(data, keys)
    if fast is not None:
        return check_stamp(fast)
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise BadRecord(
            "corrupt_stamp", f"cannot decode npz: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise BadRecord("corrupt_stamp", "bytes hold a single .npy array, not an npz archive")
    planes = []
    with npz:
        for key in keys:
            if key not in npz.files:
                raise BadRecord("missing_band", f"npz has no key {key!r} (keys: {npz.files})")
            try:
                plane = npz[key]
            except _NPZ_ERRORS as exc:
                raise BadRecord(
                    "corrupt_stamp", f"cannot decode {key!r}: {type(exc).__name__}: {exc}"
                ) from None
            if plane.shape != (STAMP_SIZE_PIX, STAMP_SIZE_PIX):
                raise BadRecord("bad_shape", f"{key} has shape {plane.shape}, expected 64x64")
            planes.append(plane)
    return check_stamp(np.stack(planes))
