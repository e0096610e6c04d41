"""The one sample-dict builder: members checked against the member table, then decoded.

Both read paths (:func:`shards.reader.iter_tar_samples` and :class:`shards.indexed.IndexedShard`)
build their sample dicts with :func:`assemble_sample`, one entry per member of the member table
(:data:`shards.schema.MEMBERS`) under its field name: ``__key__``, ``__url__``, ``image``
((3, 64, 64) nanomaggies in the stored dtype, float32 or float16), ``meta`` (dict), ``label``
(int), and ``arc`` when the shard has ``KEY.arc.npy``. A member without a row is refused, never
decoded (nothing is ever unpickled).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from shards.errors import ShardFormatError
from shards.schema import MEMBERS, MemberTable

__all__ = ["META_RAW", "assemble_sample", "decode_member", "decode_sample"]

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
