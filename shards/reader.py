"""The one shard reader: safe decoding (never unpickles) and a fast offset-index path.

Two ways to read a shard, yielding the same decoded samples:

* :func:`iter_tar_samples` streams the tar with webdataset's tar iterator (works on any stream,
  needs no index);
* :class:`IndexedShard` reads the whole file once and slices members through the offset index the
  writer stored beside it (``X.idx.json``): no per-member tar parsing, zero-copy images.

Decoded sample dict: ``__key__``, ``__url__``, ``image`` (float32 (3, 64, 64) nanomaggies),
``meta`` (dict), ``label`` (int), and ``arc`` when the shard has ``KEY.arc.npy``.
"""

from __future__ import annotations

import io
import json
import math
import mmap
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds

from shards.schema import (
    ALLOWED_SUFFIXES,
    ARC_SUFFIX,
    IMAGE_SUFFIX,
    LABEL_SUFFIX,
    META_SUFFIX,
    REQUIRED_SUFFIXES,
    SCHEMA_VERSION,
    STAMP_SHAPE,
    index_name,
)

META_RAW = "meta_json"  # sample field holding the undecoded KEY.json bytes (decode_meta=False)


class ShardFormatError(ValueError):
    """A shard or one of its members is corrupt, truncated, unsafe or not in the schema.

    The message always names the shard and, where known, the member.
    """


def _where(url: str, member: str) -> str:
    return f"{url}: {member}" if member else url


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


def decode_member(suffix: str, data: bytes | memoryview, where: str = "") -> Any:
    """Decode one member by suffix: ``npy``/``arc.npy`` (no pickle), ``json``, ``cls``.

    Any other suffix (``.pyd``, ``.pickle``, ``.pth``...) raises :class:`ShardFormatError`:
    nothing that could execute code is ever decoded.
    """
    if suffix not in ALLOWED_SUFFIXES:
        raise ShardFormatError(
            f"{where}: member type '.{suffix}' is not allowed (only "
            f"{', '.join(sorted('.' + s for s in ALLOWED_SUFFIXES))}); refusing to decode it"
        )
    if suffix in (IMAGE_SUFFIX, ARC_SUFFIX):
        return decode_npy(data, where)
    if suffix == META_SUFFIX:
        try:
            meta = json.loads(bytes(data))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ShardFormatError(f"{where}: invalid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ShardFormatError(f"{where}: JSON metadata must be an object")
        return meta
    text = bytes(data).strip()
    if text not in (b"0", b"1"):
        raise ShardFormatError(f"{where}: .cls must be 0 or 1, got {text[:20]!r}")
    return int(text)


def decode_sample(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn a raw webdataset sample (suffix -> bytes) into a checked, decoded sample.

    Use this instead of webdataset's ``.decode()`` (whose default handlers unpickle).
    """
    key = raw.get("__key__", "?")
    url = str(raw.get("__url__", "?"))
    members = {k: v for k, v in raw.items() if not k.startswith("__")}
    for suffix in members:
        if suffix not in ALLOWED_SUFFIXES:
            decode_member(suffix, b"", _where(url, f"{key}.{suffix}"))  # raises
    missing = [s for s in REQUIRED_SUFFIXES if s not in members]
    if missing:
        raise ShardFormatError(
            f"{url}: sample {key} lacks member(s) {', '.join('.' + m for m in missing)}"
        )
    out: dict[str, Any] = {"__key__": key, "__url__": url}
    image = decode_member(IMAGE_SUFFIX, members[IMAGE_SUFFIX], _where(url, f"{key}.npy"))
    if image.shape != STAMP_SHAPE:
        raise ShardFormatError(f"{url}: {key}.npy has shape {image.shape}, expected {STAMP_SHAPE}")
    out["image"] = image.astype(np.float32, copy=False)
    out["meta"] = decode_member(META_SUFFIX, members[META_SUFFIX], _where(url, f"{key}.json"))
    out["label"] = decode_member(LABEL_SUFFIX, members[LABEL_SUFFIX], _where(url, f"{key}.cls"))
    if ARC_SUFFIX in members:
        out["arc"] = decode_member(ARC_SUFFIX, members[ARC_SUFFIX], _where(url, f"{key}.arc.npy"))
    return out


def _reraise(exn: Exception) -> bool:
    raise exn


def iter_raw_tar(urls: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Raw samples (suffix -> bytes) from tar files via webdataset's tar iterator.

    Tar-level corruption (truncation, bad headers) raises :class:`ShardFormatError` naming the
    shard.
    """
    for url in urls:
        try:
            yield from wds.tariterators.tarfile_samples([{"url": str(url)}], handler=_reraise)
        except ShardFormatError:
            raise
        except Exception as exc:
            raise ShardFormatError(f"{url}: unreadable tar ({type(exc).__name__}: {exc})") from None


def iter_tar_samples(urls: Iterable[str] | str) -> Iterator[dict[str, Any]]:
    """Decoded samples of one or more shards, via the standard tar path."""
    if isinstance(urls, str | Path):
        urls = [str(urls)]
    for raw in iter_raw_tar(urls):
        yield decode_sample(raw)


def load_index(shard_path: str | Path) -> dict[str, Any]:
    """Load and sanity-check the offset index written beside ``shard_path``."""
    ipath = Path(index_name(str(shard_path)))
    try:
        index = json.loads(ipath.read_text())
    except FileNotFoundError:
        raise ShardFormatError(f"{shard_path}: no offset index {ipath.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardFormatError(f"{ipath}: corrupt offset index ({exc})") from None
    if not isinstance(index, dict) or index.get("schema_version") != SCHEMA_VERSION:
        version = index.get("schema_version") if isinstance(index, dict) else None
        raise ShardFormatError(f"{ipath}: schema version {version} unsupported")
    if not _index_well_formed(index):
        raise ShardFormatError(f"{ipath}: malformed offset index (rebuild the shard)")
    return index


def _index_well_formed(index: dict[str, Any]) -> bool:
    """Structure check: tar_bytes int, samples = [{key: str, members: {suffix: [3 ints]}}]."""
    if not isinstance(index.get("tar_bytes"), int) or not isinstance(index.get("samples"), list):
        return False
    for s in index["samples"]:
        if not isinstance(s, dict) or not isinstance(s.get("key"), str):
            return False
        members = s.get("members")
        if not isinstance(members, dict):
            return False
        for entry in members.values():
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and all(isinstance(v, int) and v >= 0 for v in entry)
            ):
                return False
    return True


class IndexedShard:
    """Fast random access to a shard through its offset index.

    The whole tar is read into memory once (a 1000-sample float32 shard is ~53 MB); members are
    located by offset and each member's tar header name is checked, so a stale index or a
    shifted file is detected instead of returning wrong bytes. Images are zero-copy float32 views.

    Parameters
    ----------
    path : str or Path
        Shard ``.tar`` path; its ``.idx.json`` must exist.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.index = load_index(path)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                # Memory-map rather than read: pages come straight from the page cache.
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except (OSError, ValueError) as exc:
            raise ShardFormatError(f"{path}: cannot read ({exc})") from None
        self.buf = memoryview(mm)
        if len(self.buf) != self.index["tar_bytes"]:
            raise ShardFormatError(
                f"{path}: size {len(self.buf)} bytes differs from its index "
                f"({self.index['tar_bytes']}); the shard is truncated or stale"
            )
        self.samples = self.index["samples"]

    def __len__(self) -> int:
        return len(self.samples)

    def _member(self, key: str, suffix: str, entry: list[int]) -> memoryview:
        hdr, off, size = entry
        name = f"{key}.{suffix}".encode()
        # ustar name field (100 bytes) of the header block just before the data
        stored = bytes(self.buf[hdr : hdr + 100]).rstrip(b"\0")
        if stored != name[:100] or off + size > len(self.buf):
            raise ShardFormatError(
                f"{self.path}: member {name.decode()} not found at its indexed offset {hdr}"
            )
        return self.buf[off : off + size]

    def _npy(self, data: memoryview, where: str) -> np.ndarray:
        parsed = parse_npy_header(data)
        if parsed is None:
            return decode_npy(data, where)  # general path with full checks
        dtype, shape, offset = parsed
        return np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset).reshape(
            shape
        )

    def sample(self, i: int, decode_meta: bool = True) -> dict[str, Any]:
        """Decoded sample ``i`` (same dict as :func:`decode_sample`).

        With ``decode_meta=False`` the metadata is left as the member's raw bytes under
        :data:`META_RAW` (name-checked like every member), for batch-wise JSON parsing.
        """
        s = self.samples[i]
        key, members = s["key"], s["members"]
        for suffix in members:
            if suffix not in ALLOWED_SUFFIXES:
                decode_member(suffix, b"", f"{self.path}: {key}.{suffix}")  # raises
        for suffix in REQUIRED_SUFFIXES:
            if suffix not in members:
                raise ShardFormatError(f"{self.path}: sample {key} lacks member .{suffix}")
        where = f"{self.path}: {key}.npy"
        image = self._npy(self._member(key, IMAGE_SUFFIX, members[IMAGE_SUFFIX]), where)
        if image.shape != STAMP_SHAPE:
            raise ShardFormatError(f"{where}: shape {image.shape}, expected {STAMP_SHAPE}")
        out: dict[str, Any] = {"__key__": key, "__url__": self.path, "image": image}
        label = decode_member(
            LABEL_SUFFIX,
            self._member(key, LABEL_SUFFIX, members[LABEL_SUFFIX]),
            f"{self.path}: {key}.cls",
        )
        out["label"] = label
        meta = self._member(key, META_SUFFIX, members[META_SUFFIX])
        if decode_meta:
            out["meta"] = decode_member(META_SUFFIX, meta, f"{self.path}: {key}.json")
        else:
            out[META_RAW] = meta  # checked member bytes, for callers that parse a batch at once
        if ARC_SUFFIX in members:
            out["arc"] = self._npy(
                self._member(key, ARC_SUFFIX, members[ARC_SUFFIX]), f"{self.path}: {key}.arc.npy"
            )
        return out

    def iter_samples(
        self, start: int = 0, stop: int | None = None, decode_meta: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Decoded samples ``start:stop`` in shard order."""
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop):
            yield self.sample(i, decode_meta=decode_meta)
