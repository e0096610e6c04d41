"""The one shard reader: safe decoding (never unpickles) and a fast offset-index path.

Two ways to read a shard, yielding the same decoded samples:

* :func:`iter_tar_samples` streams the tar with webdataset's tar iterator (works on any stream,
  needs no index); it lives here;
* :class:`IndexedShard` (:mod:`shards.indexed`) reads the whole file once and slices members
  through the offset index the writer stored beside it (``X.idx.json``, loaded and checked by
  :mod:`shards.offset_index`): no per-member tar parsing, zero-copy images.

Both build the decoded sample dict with :func:`assemble_sample` (:mod:`shards.samples`), one
entry per member of the member table (:data:`shards.schema.MEMBERS`) under its field name:
``__key__``, ``__url__``, ``image`` ((3, 64, 64) nanomaggies in the stored dtype, float32 or
float16), ``meta`` (dict), ``label`` (int), and ``arc`` when the shard has ``KEY.arc.npy``. A
member without a row is refused, never decoded.

This module is the import point for all of them: every name in ``__all__`` is importable from
``shards.reader``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shards.codecs import decode_npy, parse_npy_header
from shards.errors import ShardError, ShardFormatError
from shards.indexed import IndexedShard, check_against_manifest
from shards.offset_index import load_index, member_crc32, tar_header
from shards.samples import META_RAW, assemble_sample, decode_member, decode_sample
from shards.schema import INDEX_VERSION, MemberTable

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
    "member_crc32",
    "parse_npy_header",
    "tar_header",
]


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
