"""The offset index beside a shard (``X.idx.json``): loading, structure checks, tar headers.

:func:`load_index` loads and sanity-checks the index (schema and index version, structure);
:func:`tar_header` parses one ustar header block and :func:`member_crc32` is the per-member
checksum of index version 2, both used by :class:`shards.indexed.IndexedShard` to check every
indexed member against the tar itself.
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path
from typing import Any

from shards.errors import ShardFormatError
from shards.schema import INDEX_VERSION, MEMBERS, index_name

__all__ = [
    "BLOCK",
    "EXTENSION_TYPES",
    "REGULAR_TYPES",
    "load_index",
    "member_crc32",
    "padded",
    "tar_header",
]


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


BLOCK = 512
REGULAR_TYPES = (b"0", b"\0")
EXTENSION_TYPES = (b"x", b"g", b"L", b"K")  # PAX / GNU headers preceding a member's header


def padded(size: int) -> int:
    return size + (-size % BLOCK)


def _octal(field: bytes) -> int | None:
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else None
    except ValueError:
        return None


def tar_header(block: bytes) -> tuple[bytes, int, bytes] | None:
    """``(name, size, typeflag)`` of a ustar header block whose checksum holds, else ``None``."""
    if len(block) != BLOCK:
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
