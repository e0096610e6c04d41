"""The one shard writer: deterministic, atomic tar shards.

A shard is written under a temporary name while its sha256 is computed on the fly; on close an
offset index (``X.idx.json``) is written beside it and the tar is renamed into place. Fixed mtime,
owner and mode make the same samples give byte-identical shards.

The tar bytes are those webdataset's ``TarWriter`` writes (members in sorted suffix order, plain
ustar headers), produced by :class:`shards.tarstream.TarStream` from the standard library alone:
importing webdataset imports torch, which builder processes must not carry. The offset index is
recorded from the exact offsets of each member as it is written.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from common.atomic import atomic_write_text, tmp_path_for
from shards.codecs import json_bytes, npy_bytes
from shards.errors import SampleEncodeError
from shards.schema import (
    INDEX_VERSION,
    MEMBERS,
    STORAGE_DTYPES,
    MemberTable,
    index_name,
    is_valid_key,
)
from shards.tarstream import TarStream

__all__ = [
    "STORAGE_DTYPES",
    "Sample",
    "ShardInfo",
    "ShardWriter",
    "build_index",
    "encode_sample",
    "index_entry",
    "json_bytes",
    "npy_bytes",
    "write_shard",
]

TAR_MTIME = 946684800  # 2000-01-01T00:00:00Z, fixed so shards are reproducible
TAR_USER = "lensfinder"
TAR_MODE = 0o444


@dataclass
class Sample:
    """One sample to write: its key and one value per member field of the member table.

    Attributes
    ----------
    key : str
        Sample key (see :func:`shards.schema.make_key`).
    image_nmgy : np.ndarray
        (3, 64, 64) g, r, z image in nanomaggies (field ``image``, ``KEY.npy``).
    meta : dict
        JSON-serialisable metadata (galaxy_id, split, role, label, catalog values, injection).
    label : int
        1 for a host with an injected arc, 0 for a control.
    arc_nmgy : np.ndarray or None
        Optional noiseless arc model (field ``arc``, ``KEY.arc.npy``).
    extra : dict
        Values of further members by field name (rows added to the member table); ``None``
        values of optional members are not written.
    """

    key: str
    image_nmgy: np.ndarray | None
    meta: dict[str, Any] | None
    label: int | None
    arc_nmgy: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # member-table field -> attribute, for the members every build knows about
    _ATTRS: ClassVar[dict[str, str]] = {
        "image": "image_nmgy",
        "meta": "meta",
        "label": "label",
        "arc": "arc_nmgy",
    }

    def fields(self) -> dict[str, Any]:
        """Value of every field, by member-table field name."""
        out = {name: getattr(self, attr) for name, attr in self._ATTRS.items()}
        clash = sorted(set(out) & set(self.extra))
        if clash:
            raise SampleEncodeError(f"{self.key}: field(s) {clash} given twice (attribute, extra)")
        out.update(self.extra)
        return out

    @classmethod
    def from_fields(cls, key: str, fields: Mapping[str, Any]) -> Sample:
        """Sample from values keyed by member-table field name (``image``, ``meta``, ...)."""
        rest = dict(fields)
        core = {attr: rest.pop(name, None) for name, attr in cls._ATTRS.items()}
        return cls(key=key, **core, extra=rest)


@dataclass
class ShardInfo:
    """What the writer knows about a finished shard (goes into the manifest)."""

    path: str
    n_samples: int = 0
    n_pos: int = 0
    n_neg: int = 0
    sha256: str = ""
    bytes: int = 0
    keys: list[str] = field(default_factory=list)


def encode_sample(
    sample: Sample, dtype: str = "float32", members: MemberTable | None = None
) -> dict[str, Any]:
    """Encode a :class:`Sample` into the webdataset dict of member bytes, row by row.

    Parameters
    ----------
    sample : Sample
        The sample; every required member of the table must have a value.
    dtype : str
        Storage dtype of array members without a fixed dtype (:data:`STORAGE_DTYPES`).
    members : MemberTable, optional
        Member table (default :data:`shards.schema.MEMBERS`).

    Raises
    ------
    SampleEncodeError
        If the key, a member's shape, dtype or value, or the metadata label is invalid, a
        required member is missing or a value has no row (nothing corrupt is ever written).
    """
    table = MEMBERS if members is None else members
    if dtype not in STORAGE_DTYPES:
        raise SampleEncodeError(f"storage dtype must be one of {STORAGE_DTYPES}, got {dtype!r}")
    if not is_valid_key(sample.key):
        raise SampleEncodeError(f"invalid sample key {sample.key!r}")
    values = sample.fields()
    unknown = sorted(k for k, v in values.items() if v is not None and k not in table.fields)
    if unknown:
        raise SampleEncodeError(f"{sample.key}: no member row for field(s) {unknown}")
    out: dict[str, Any] = {"__key__": sample.key}
    for row in table.rows():
        value = values.get(row.field)
        where = f"{sample.key}.{row.suffix}"
        if value is None:
            if row.required:
                raise SampleEncodeError(f"{where}: required member ({row.field}) has no value")
            continue
        out[row.suffix] = row.codec.encode(value, row, dtype, where)
    meta, label = values.get("meta"), values.get("label")
    if isinstance(meta, Mapping) and int(meta.get("label", label)) != label:
        raise SampleEncodeError(f"{sample.key}: metadata label disagrees with label")
    return out


class _HashingFile(io.RawIOBase):
    """Write-through file wrapper that hashes and counts bytes."""

    def __init__(self, fh):
        self.fh = fh
        self.h = hashlib.sha256()
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.h.update(b)
        self.n += len(b)
        return self.fh.write(b)


def build_index(
    tar_path: str | Path, sha256: str, schema_version: int = MEMBERS.schema_version
) -> dict[str, Any]:
    """Offset index of a shard: per sample, (header offset, data offset, size, crc32) per member.

    Computed with :mod:`tarfile` from the written file, so it is exactly what tar itself sees.
    """
    samples: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    with tarfile.open(tar_path, "r:") as tf:
        for m in tf:
            key, _, suffix = m.name.partition(".")
            if current is None or current["key"] != key:
                current = {"key": key, "members": {}}
                samples.append(current)
            # the ustar header block that directly precedes the data (after any PAX header)
            fh = tf.extractfile(m)  # None for a non-file member (never written by the writer)
            data = fh.read() if fh is not None else b""
            current["members"][suffix] = index_entry(
                m.offset_data - tarfile.BLOCKSIZE, m.offset_data, data
            )
    return {
        "schema_version": schema_version,
        "index_version": INDEX_VERSION,
        "tar_sha256": sha256,
        "tar_bytes": os.path.getsize(tar_path),
        "n_samples": len(samples),
        "samples": samples,
    }


class ShardWriter:
    """Write one shard atomically.

    Use as a context manager; samples go to ``.NAME.tmp-PID`` and the shard appears under its
    final name (together with its offset index) only when the block exits without error.

    Parameters
    ----------
    path : str or Path
        Final ``.tar`` path.
    dtype : str
        Storage dtype of images, ``float32`` (default) or ``float16``.
    members : MemberTable, optional
        Member table (default :data:`shards.schema.MEMBERS`); its schema version goes into the
        offset index.
    """

    def __init__(
        self, path: str | Path, dtype: str = "float32", members: MemberTable | None = None
    ):
        self.path = Path(path)
        if self.path.suffix != ".tar":
            raise ValueError(f"shard path must end in .tar: {self.path}")
        self.dtype = dtype
        self.members = MEMBERS if members is None else members
        self.info = ShardInfo(path=str(self.path))
        self._tmp = tmp_path_for(self.path)
        self._fh = None
        self._hf: _HashingFile | None = None
        self._tar: TarStream | None = None
        self._seen: set[str] = set()
        self._index_samples: list[dict[str, Any]] = []

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self._tmp, "wb")
        self._hf = _HashingFile(self._fh)
        self._tar = TarStream(
            self._hf, mtime=TAR_MTIME, mode=TAR_MODE, uname=TAR_USER, gname=TAR_USER
        )
        return self

    def write(self, sample: Sample) -> None:
        """Encode and append one sample (a duplicate key or a bad sample raises
        :class:`SampleEncodeError`, a ``ValueError``)."""
        assert self._tar is not None, "use ShardWriter as a context manager"
        if sample.key in self._seen:
            raise SampleEncodeError(f"duplicate key {sample.key} in {self.path.name}")
        encoded = encode_sample(sample, self.dtype, self.members)
        payloads = _member_payloads(sample.key, encoded)  # checked before any byte is written
        members: dict[str, list[int]] = {}
        for suffix, data in payloads:
            header_offset, data_offset = self._tar.add(f"{sample.key}.{suffix}", data)
            members[suffix] = index_entry(header_offset, data_offset, data)
        self._index_samples.append({"key": sample.key, "members": members})
        self._seen.add(sample.key)
        self.info.keys.append(sample.key)
        self.info.n_samples += 1
        self.info.n_pos += int(sample.label == 1)
        self.info.n_neg += int(sample.label == 0)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tar is not None and self._fh is not None and self._hf is not None
        try:
            self._tar.close()  # end-of-archive blocks and record padding
            if exc_type is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
        if exc_type is not None:
            self._tmp.unlink(missing_ok=True)
            return
        self.info.sha256 = self._hf.h.hexdigest()
        self.info.bytes = self._hf.n
        index = {
            "schema_version": self.members.schema_version,
            "index_version": INDEX_VERSION,
            "tar_sha256": self.info.sha256,
            "tar_bytes": self.info.bytes,
            "n_samples": len(self._index_samples),
            "samples": self._index_samples,
        }
        atomic_write_text(index_name(str(self.path)), json.dumps(index, separators=(",", ":")))
        os.replace(self._tmp, self.path)


def _member_payloads(key: str, encoded: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """(suffix, bytes) of the members of an encoded sample in the order webdataset's
    ``TarWriter`` writes them: sorted by suffix, ``_``-prefixed entries skipped, ``str`` values
    as UTF-8."""
    out = []
    for suffix in sorted(k for k in encoded if k != "__key__" and not k.startswith("_")):
        value = encoded[suffix]
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise SampleEncodeError(f"{key}.{suffix}: encoded to {type(value).__name__}, not bytes")
        out.append((suffix, value))
    return out


def index_entry(header_offset: int, data_offset: int, data: bytes) -> list[int]:
    """The offset-index entry of one member: ``[header offset, data offset, size, crc32]``.

    The one place an entry is made while writing (:func:`build_index` makes the same entries
    from a finished file); a further per-member field (e.g. a checksum of ``data``) is appended
    here and in :func:`build_index`.
    """
    return [header_offset, data_offset, len(data), zlib.crc32(data) & 0xFFFFFFFF]


def write_shard(
    path: str | Path,
    samples: Iterable[Sample],
    dtype: str = "float32",
    members: MemberTable | None = None,
) -> ShardInfo:
    """Write ``samples`` to the shard ``path`` atomically and return its :class:`ShardInfo`."""
    with ShardWriter(path, dtype=dtype, members=members) as w:
        for s in samples:
            w.write(s)
    return w.info
