"""Fast random access to a shard through its offset index, checked against the tar.

:class:`IndexedShard` memory-maps the tar once and slices members through the offset index the
writer stored beside it (``X.idx.json``, :mod:`shards.offset_index`): no per-member tar parsing,
zero-copy images, and every member checked against its tar header and CRC32.
:func:`check_against_manifest` compares an opened shard with its manifest entry.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shards.errors import ShardFormatError
from shards.offset_index import (
    BLOCK,
    EXTENSION_TYPES,
    REGULAR_TYPES,
    load_index,
    member_crc32,
    padded,
    tar_header,
)
from shards.samples import assemble_sample
from shards.schema import MEMBERS, MemberTable

__all__ = ["IndexedShard", "check_against_manifest"]


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
                head = tar_header(bytes(self.buf[pos : pos + BLOCK]))
                if head is None or head[2] not in EXTENSION_TYPES:
                    raise self._bad_index(f"unindexed data at byte {pos}")
                pos += BLOCK + padded(head[1])
            if pos != hdr or off != hdr + BLOCK:
                raise self._bad_index(f"member at byte {hdr} overlaps or is misplaced")
            pos = off + padded(size)
        tail = self.buf[pos:]
        if len(tail) < 2 * BLOCK or bytes(tail) != bytes(len(tail)):
            raise self._bad_index(f"unindexed member(s) after byte {pos}")

    def _member(self, key: str, suffix: str, entry: list[int]) -> memoryview:
        hdr, off, size = entry[:3]
        name = f"{key}.{suffix}"
        head = tar_header(bytes(self.buf[hdr : hdr + BLOCK]))
        if head is None or head[0] != name.encode()[:100]:
            raise ShardFormatError(
                f"{self.path}: member {name} not found at its indexed offset {hdr}"
            )
        if head[2] not in REGULAR_TYPES or head[1] != size or off != hdr + BLOCK:
            raise ShardFormatError(
                f"{self.path}: member {name}: indexed data ({off}, {size} bytes) does not match "
                f"its tar header ({hdr + BLOCK}, {head[1]} bytes); the index was edited or is stale"
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
        """Decoded sample ``i`` (same dict as :func:`shards.samples.decode_sample`).

        With ``decode_meta=False`` the metadata is left as the member's raw bytes under
        :data:`shards.samples.META_RAW` (name-checked like every member), for batch-wise JSON
        parsing.
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
