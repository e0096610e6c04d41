"""Member codecs: how one member's value becomes bytes in a shard and back.

A codec is selected per member by the member table (:data:`shards.schema.MEMBERS`); it never
names a suffix itself. The writer calls :meth:`Codec.encode`, the reader :meth:`Codec.decode`;
both get the member's row, so shape, dtype and finiteness rules come from one place. Decoding is
safe: nothing is ever unpickled.

Adding a new *kind* of member (say, a PNG preview) means one codec class here plus a row that
uses it; adding a member of an existing kind needs only the row.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shards.errors import SampleEncodeError, ShardFormatError

if TYPE_CHECKING:
    from shards.schema import MemberSpec


class Codec(Protocol):
    """Encoder/decoder of one kind of member (``.npy`` array, JSON object, class label)."""

    def encode(self, value: Any, spec: MemberSpec, storage_dtype: str, where: str) -> bytes:
        """Bytes of ``value`` (raises :class:`SampleEncodeError` naming ``where``)."""
        ...

    def decode(self, data: bytes | memoryview, spec: MemberSpec, where: str) -> Any:
        """Value of ``data`` (raises :class:`ShardFormatError` naming ``where``)."""
        ...


def npy_bytes(arr: np.ndarray) -> bytes:
    """Serialise an array as ``.npy`` (format 1.0, no pickle)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def json_bytes(meta: Mapping[str, Any]) -> bytes:
    """Serialise metadata deterministically (sorted keys, compact, no NaN)."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode_npy(data: bytes | memoryview, where: str = "") -> np.ndarray:
    """Decode ``.npy`` bytes with ``allow_pickle=False``; object arrays are refused."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # ValueError for pickled/object arrays, others for garbage
        raise ShardFormatError(f"{where}: cannot decode .npy safely ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise ShardFormatError(f"{where}: .npy holds unsupported dtype")
    return arr


_NPY_MAGIC_V1 = b"\x93NUMPY\x01\x00"
_NPY_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}


def parse_npy_header(data: bytes | memoryview) -> tuple[np.dtype, tuple[int, ...], int] | None:
    """``(dtype, shape, data offset)`` of a plain float ``.npy`` v1.0 payload, else ``None``.

    The fast path for the stamps this project writes (and the seed's npz planes): each distinct
    header is parsed once and cached, and the payload size must match it. ``None`` (any other
    version, layout or dtype, a hostile or inconsistent header) sends callers to the general,
    fully checked ``np.load`` path, which reports the precise error.
    """
    if bytes(data[:8]) != _NPY_MAGIC_V1 or len(data) < 10:
        return None
    hlen = 10 + int.from_bytes(bytes(data[8:10]), "little")
    head = bytes(data[:hlen])
    parsed = _NPY_HEADERS.get(head)
    if parsed is None:
        try:  # numpy parses the header dict with ast.literal_eval: anything may be raised
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(io.BytesIO(head[8:]))
        except Exception:
            return None
        if fortran or dtype.hasobject or dtype.kind != "f":
            return None
        parsed = (dtype, shape, hlen)
        if len(_NPY_HEADERS) < 64:
            _NPY_HEADERS[head] = parsed
    dtype, shape, offset = parsed
    if offset + math.prod(shape) * dtype.itemsize != len(data):
        return None
    return parsed


class NpyArrayCodec:
    """``.npy`` v1.0 array; shape, dtype and finiteness from the member row.

    Decoding is zero-copy (a read-only view of ``data``) for the float arrays this project writes;
    anything else goes through ``np.load(allow_pickle=False)``. Arrays come back in their stored
    dtype (float16 storage stays float16).
    """

    def encode(self, value: Any, spec: MemberSpec, storage_dtype: str, where: str) -> bytes:
        arr = np.asarray(value)
        if spec.shape is not None and arr.shape != spec.shape:
            raise SampleEncodeError(f"{where}: shape {arr.shape} != {spec.shape}")
        dtype = spec.dtype or storage_dtype
        arr = arr.astype(dtype)
        if spec.finite and not np.isfinite(arr).all():
            raise SampleEncodeError(f"{where}: non-finite values (in {dtype} storage)")
        return npy_bytes(arr)

    def decode(self, data: bytes | memoryview, spec: MemberSpec, where: str) -> np.ndarray:
        parsed = parse_npy_header(data)
        if parsed is None:
            arr = decode_npy(data, where)  # general path with full checks
        else:
            dtype, shape, offset = parsed
            arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
            arr = arr.reshape(shape)
        if arr.dtype.name not in spec.allowed_dtypes():
            raise ShardFormatError(
                f"{where}: dtype {arr.dtype.name}, expected one of {', '.join(spec.allowed_dtypes())}"
            )
        if spec.shape is not None and arr.shape != spec.shape:
            raise ShardFormatError(f"{where}: shape {arr.shape}, expected {spec.shape}")
        return arr


class JsonObjectCodec:
    """A JSON object, serialised with sorted keys and no NaN; decoded to a ``dict``."""

    def encode(self, value: Any, spec: MemberSpec, storage_dtype: str, where: str) -> bytes:
        if not isinstance(value, Mapping):
            raise SampleEncodeError(f"{where}: must be a mapping, got {type(value).__name__}")
        try:
            return json_bytes(value)
        except (TypeError, ValueError) as exc:
            raise SampleEncodeError(f"{where}: not strict JSON ({exc})") from None

    def decode(self, data: bytes | memoryview, spec: MemberSpec, where: str) -> dict[str, Any]:
        try:
            meta = json.loads(bytes(data))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ShardFormatError(f"{where}: invalid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ShardFormatError(f"{where}: JSON metadata must be an object")
        return meta


class BinaryLabelCodec:
    """A class label stored as the single ASCII byte ``0`` or ``1``; anything else (another
    value, whitespace, padding) is refused both ways."""

    def encode(self, value: Any, spec: MemberSpec, storage_dtype: str, where: str) -> bytes:
        try:
            ok = value in (0, 1)
        except (TypeError, ValueError):  # e.g. an array
            ok = False
        if not ok:
            raise SampleEncodeError(f"{where}: label must be 0 or 1, got {value!r}")
        return str(int(value)).encode()

    def decode(self, data: bytes | memoryview, spec: MemberSpec, where: str) -> int:
        text = bytes(data)  # exactly what the writer writes: no whitespace, no other value
        if text not in (b"0", b"1"):
            raise ShardFormatError(f"{where}: label must be ASCII 0 or 1, got {text[:20]!r}")
        return int(text)


NPY_ARRAY = NpyArrayCodec()
JSON_OBJECT = JsonObjectCodec()
BINARY_LABEL = BinaryLabelCodec()
