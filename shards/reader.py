"""The one shard reader: safe decoding (never unpickles) and a fast offset-index path.

Two ways to read a shard, yielding the same decoded samples:

* :func:`iter_tar_samples` streams the tar with webdataset's tar iterator (works on any stream,
  needs no index);
* :class:`IndexedShard` reads the whole file once and slices members through the offset index the
  writer stored beside it (``X.idx.json``): no per-member tar parsing, zero-copy images.

Both build the decoded sample dict with :func:`assemble_sample`, one entry per member of the
member table (:data:`shards.schema.MEMBERS`) under its field name: ``__key__``, ``__url__``,
``image`` ((3, 64, 64) nanomaggies in the stored dtype, float32 or float16), ``meta`` (dict),
``label`` (int), and ``arc`` when the shard has ``KEY.arc.npy``. A member without a row is
refused, never decoded.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import webdataset as wds

from shards.codecs import decode_npy, parse_npy_header
from shards.errors import ShardError, ShardFormatError
from shards.schema import MEMBERS, MemberTable, index_name

__all__ = [
    "META_RAW",
    "IndexedShard",
    "ShardError",
    "ShardFormatError",
    "assemble_sample",
    "decode_member",
    "decode_npy",
    "decode_sample",
    "iter_raw_tar",
    "iter_tar_samples",
    "load_index",
    "parse_npy_header",
]

# sample field holding the undecoded KEY.json bytes (decode_meta=False)
META_RAW = MEMBERS.by_field("meta").raw_field


def _refuse(suffix: str, where: str, table: MemberTable) -> ShardFormatError:
    return ShardFormatError(
        f"{where}: member type '.{suffix}' is not allowed (only {table.allowed_text()}); "
        "refusing to decode it"
    )


def decode_member(
    suffix: str, data: bytes | memoryview, where: str = "", members: MemberTable | None = None
) -> Any:
    """Decode one member by suffix through its row of the member table.

    A suffix without a row (``.pyd``, ``.pickle``, ``.pth``...) raises :class:`ShardFormatError`:
    nothing that could execute code is ever decoded.
    """
    table = MEMBERS if members is None else members
    row = table.get(suffix)
    if row is None:
        raise _refuse(suffix, where, table)
    return row.codec.decode(data, row, where)


def assemble_sample(
    key: str,
    url: str,
    suffixes: Collection[str],
    read: Callable[[str], bytes | memoryview],
    members: MemberTable | None = None,
    raw_fields: Collection[str] = (),
) -> dict[str, Any]:
    """The one sample-dict builder: checked, decoded members of one sample, by table field.

    Parameters
    ----------
    key, url : str
        Sample key and shard path (named in every error).
    suffixes : collection of str
        Member suffixes the sample has.
    read : callable
        ``read(suffix)`` returns the member's bytes.
    members : MemberTable, optional
        Member table (default :data:`shards.schema.MEMBERS`).
    raw_fields : collection of str
        Fields handed out undecoded, as bytes under the row's ``raw_field`` (``meta_json``).

    Raises
    ------
    ShardFormatError
        A member without a row, a missing required member, or a member that does not decode.
    """
    table = MEMBERS if members is None else members
    for suffix in suffixes:
        if suffix not in table:
            raise _refuse(suffix, f"{url}: {key}.{suffix}", table)
    missing = [s for s in table.required if s not in suffixes]
    if missing:
        raise ShardFormatError(
            f"{url}: sample {key} lacks member(s) {', '.join('.' + m for m in missing)}"
        )
    out: dict[str, Any] = {"__key__": key, "__url__": url}
    for row in table.rows():
        if row.suffix not in suffixes:
            continue
        data = read(row.suffix)
        if row.field in raw_fields:
            out[row.raw_field] = data  # checked member bytes, for callers that parse a batch
        else:
            out[row.field] = row.codec.decode(data, row, f"{url}: {key}.{row.suffix}")
    return out


def decode_sample(raw: dict[str, Any], members: MemberTable | None = None) -> dict[str, Any]:
    """Turn a raw webdataset sample (suffix -> bytes) into a checked, decoded sample.

    Use this instead of webdataset's ``.decode()`` (whose default handlers unpickle).
    """
    key = str(raw.get("__key__", "?"))
    url = str(raw.get("__url__", "?"))
    suffixes = [k for k in raw if not k.startswith("__")]
    return assemble_sample(key, url, suffixes, raw.__getitem__, members)


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


def iter_tar_samples(
    urls: Iterable[str] | str, members: MemberTable | None = None
) -> Iterator[dict[str, Any]]:
    """Decoded samples of one or more shards, via the standard tar path."""
    if isinstance(urls, str | Path):
        urls = [str(urls)]
    for raw in iter_raw_tar(urls):
        yield decode_sample(raw, members)


def load_index(
    shard_path: str | Path, schema_version: int = MEMBERS.schema_version
) -> dict[str, Any]:
    """Load and sanity-check the offset index written beside ``shard_path``.

    The index must carry ``schema_version`` (that of the member table the shard is read with).
    """
    ipath = Path(index_name(str(shard_path)))
    try:
        index = json.loads(ipath.read_text())
    except FileNotFoundError:
        raise ShardFormatError(f"{shard_path}: no offset index {ipath.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardFormatError(f"{ipath}: corrupt offset index ({exc})") from None
    if not isinstance(index, dict) or index.get("schema_version") != schema_version:
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
    shifted file is detected instead of returning wrong bytes. Array members are zero-copy
    read-only views in their stored dtype.

    Parameters
    ----------
    path : str or Path
        Shard ``.tar`` path; its ``.idx.json`` must exist.
    members : MemberTable, optional
        Member table (default :data:`shards.schema.MEMBERS`).
    """

    def __init__(self, path: str | Path, members: MemberTable | None = None):
        self.path = str(path)
        self.members = MEMBERS if members is None else members
        self.index = load_index(path, self.members.schema_version)
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

    def sample(self, i: int, decode_meta: bool = True) -> dict[str, Any]:
        """Decoded sample ``i`` (same dict as :func:`decode_sample`).

        With ``decode_meta=False`` the metadata is left as the member's raw bytes under
        :data:`META_RAW` (name-checked like every member), for batch-wise JSON parsing.
        """
        s = self.samples[i]
        key, entries = s["key"], s["members"]
        return assemble_sample(
            key,
            self.path,
            entries,
            lambda suffix: self._member(key, suffix, entries[suffix]),
            self.members,
            () if decode_meta else ("meta",),
        )

    def iter_samples(
        self, start: int = 0, stop: int | None = None, decode_meta: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Decoded samples ``start:stop`` in shard order."""
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop):
            yield self.sample(i, decode_meta=decode_meta)
