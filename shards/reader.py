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
import warnings
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from shards.codecs import decode_npy, parse_npy_header
from shards.errors import ShardError, ShardFormatError
from shards.schema import INDEX_VERSION, MEMBERS, MemberTable, index_name

__all__ = [
    "META_RAW",
    "INDEX_VERSION",
    "IndexedShard",
    "ShardError",
    "ShardFormatError",
    "assemble_sample",
    "check_against_manifest",
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
    shard. webdataset is imported here, not at module level: its package imports torch, which
    builder processes (that import this module for the indexed reader) must not load.
    """
    import webdataset as wds

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

    The index must carry ``schema_version`` (that of the member table the shard is read with)
    and an ``index_version`` this code reads: 2 (member entries ``[header offset, data offset,
    size, crc32]``) or 1 (no CRC32, written before the per-member checksum; read with a warning,
    since bit rot then goes unnoticed until ``builder verify``; rebuild to get the checksums).
    """
    ipath = Path(index_name(str(shard_path)))
    try:
        index = json.loads(ipath.read_text())
    except FileNotFoundError:
        raise ShardFormatError(f"{shard_path}: no offset index {ipath.name}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardFormatError(f"{ipath}: corrupt offset index ({exc})") from None
    if not isinstance(index, dict) or index.get("schema_version") != schema_version:
        version = index.get("schema_version") if isinstance(index, dict) else None
        raise ShardFormatError(f"{ipath}: schema version {version} unsupported")
    version = index.get("index_version", 1)
    if version not in (1, INDEX_VERSION):
        raise ShardFormatError(
            f"{ipath}: index version {version!r} unsupported (this code reads 1 and "
            f"{INDEX_VERSION})"
        )
    if not _index_well_formed(index, 3 if version == 1 else 4):
        raise ShardFormatError(f"{ipath}: malformed offset index (rebuild the shard)")
    if version == 1:
        warnings.warn(
            f"{ipath}: offset index version 1 has no per-member CRC32, so bit rot is not "
            "detected while reading; rebuild the dataset (or run `builder verify`)",
            stacklevel=2,
        )
    return index


def _index_well_formed(index: dict[str, Any], entry_len: int) -> bool:
    """Structure check: tar_bytes int, samples = [{key: str, members: {suffix: [ints]}}]."""
    if not isinstance(index.get("tar_bytes"), int) or not isinstance(index.get("samples"), list):
        return False
    if index.get("n_samples", len(index["samples"])) != len(index["samples"]):
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
                and len(entry) == entry_len
                and all(type(v) is int and v >= 0 for v in entry)
            ):
                return False
    return True


_BLOCK = 512
_REGULAR_TYPES = (b"0", b"\0")
_EXTENSION_TYPES = (b"x", b"g", b"L", b"K")  # PAX / GNU headers preceding a member's header


def _padded(size: int) -> int:
    return size + (-size % _BLOCK)


def _octal(field: bytes) -> int | None:
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else None
    except ValueError:
        return None


def tar_header(block: bytes) -> tuple[bytes, int, bytes] | None:
    """``(name, size, typeflag)`` of a ustar header block whose checksum holds, else ``None``."""
    if len(block) != _BLOCK:
        return None
    stored = _octal(block[148:156])
    if stored is None or stored != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        return None
    size = _octal(block[124:136])
    if size is None:
        return None
    return block[:100].rstrip(b"\0"), size, block[156:157]


def member_crc32(data: bytes | memoryview) -> int:
    """The per-member checksum recorded in index version 2 (zlib CRC32, unsigned)."""
    return zlib.crc32(data) & 0xFFFFFFFF


class IndexedShard:
    """Fast random access to a shard through its offset index, checked against the tar.

    The tar is memory-mapped once (a 1000-sample float32 shard is ~53 MB). On open, the index
    must tile the file exactly: the members it lists, back to back from byte 0 (PAX headers
    allowed in between), then only the zero end-of-archive blocks, so an index that hides,
    drops or invents a member is refused. Each member read is checked against the tar header
    it points at (checksum, name, size, data right after the header) and, with index version 2,
    against its CRC32; a stale, edited or shifted index, or a flipped bit, is an error naming
    the shard and member instead of wrong bytes. Array members are zero-copy read-only views
    in their stored dtype.

    Parameters
    ----------
    path : str or Path
        Shard ``.tar`` path; its ``.idx.json`` must exist.
    members : MemberTable, optional
        Member table (default :data:`shards.schema.MEMBERS`).
    check_crc : bool
        Check each member's CRC32 when it is read (index version 2). On by default; off only
        to measure its cost.
    """

    def __init__(
        self, path: str | Path, members: MemberTable | None = None, check_crc: bool = True
    ):
        self.path = str(path)
        self.members = MEMBERS if members is None else members
        self.index = load_index(path, self.members.schema_version)
        self.check_crc = check_crc
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
        self._check_tiling()

    def __len__(self) -> int:
        return len(self.samples)

    def _bad_index(self, why: str) -> ShardFormatError:
        return ShardFormatError(
            f"{self.path}: offset index does not match the tar ({why}); rebuild the shard"
        )

    def _check_tiling(self) -> None:
        """The indexed members cover the tar exactly (O(members) integer checks, no reads)."""
        spans = sorted(e[:3] for s in self.samples for e in s["members"].values())
        pos = 0
        for hdr, off, size in spans:
            while pos < hdr:  # only extension headers (PAX) may sit between members
                head = tar_header(bytes(self.buf[pos : pos + _BLOCK]))
                if head is None or head[2] not in _EXTENSION_TYPES:
                    raise self._bad_index(f"unindexed data at byte {pos}")
                pos += _BLOCK + _padded(head[1])
            if pos != hdr or off != hdr + _BLOCK:
                raise self._bad_index(f"member at byte {hdr} overlaps or is misplaced")
            pos = off + _padded(size)
        tail = self.buf[pos:]
        if len(tail) < 2 * _BLOCK or bytes(tail) != bytes(len(tail)):
            raise self._bad_index(f"unindexed member(s) after byte {pos}")

    def _member(self, key: str, suffix: str, entry: list[int]) -> memoryview:
        hdr, off, size = entry[:3]
        name = f"{key}.{suffix}"
        head = tar_header(bytes(self.buf[hdr : hdr + _BLOCK]))
        if head is None or head[0] != name.encode()[:100]:
            raise ShardFormatError(
                f"{self.path}: member {name} not found at its indexed offset {hdr}"
            )
        if head[2] not in _REGULAR_TYPES or head[1] != size or off != hdr + _BLOCK:
            raise ShardFormatError(
                f"{self.path}: member {name}: indexed data ({off}, {size} bytes) does not match "
                f"its tar header ({hdr + _BLOCK}, {head[1]} bytes); the index was edited or is stale"
            )
        if off + size > len(self.buf):
            raise ShardFormatError(f"{self.path}: member {name} runs past the end of the file")
        data = self.buf[off : off + size]
        if self.check_crc and len(entry) == 4 and member_crc32(data) != entry[3]:
            raise ShardFormatError(
                f"{self.path}: member {name} fails its CRC32 check (bit rot or tampering); "
                "rebuild or restore the shard"
            )
        return data

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


def check_against_manifest(shard: IndexedShard, n_samples: int, sha256: str) -> None:
    """Refuse a shard whose index disagrees with its manifest entry (count or tar sha256).

    Cheap (no byte is read): the index already tiles the tar exactly, so its sample count is the
    tar's; a manifest that under- or over-counts, or an index of another tar, is an error.

    Raises
    ------
    ShardFormatError
        Naming the shard and both values.
    """
    if len(shard) != n_samples:
        raise ShardFormatError(
            f"{shard.path}: the manifest says {n_samples} samples but the shard holds "
            f"{len(shard)} samples; the manifest or the offset index was altered (run `builder verify`)"
        )
    if shard.index.get("tar_sha256") != sha256:
        raise ShardFormatError(
            f"{shard.path}: its offset index records tar sha256 "
            f"{str(shard.index.get('tar_sha256'))[:12]}..., the manifest {sha256[:12]}...; "
            "the shard or its index was replaced (run `builder verify`)"
        )
