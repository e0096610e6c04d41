"""Column helpers of the scan and the plan: strings as Arrow arrays, first occurrences.

The main process of a build holds one row per parent galaxy (:mod:`builder.scan`) and one entry
per planned sample (:mod:`builder.plan`). As Python objects that is ~1.4 kB a parent; as columns
(an Arrow string array is the UTF-8 bytes plus a 4-byte offset per value, a float64 is 8 bytes)
it is ~150 bytes (``docs/benchmarks.md``, "Memory"). These helpers are the few operations the two
stages need on such columns.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

MAX_STRING_BYTES = 2**31 - 1  # the UTF-8 bytes an Arrow ``string`` array (int32 offsets) holds
CHUNK_ROWS = 65536  # rows handled at once when a column passes through Python objects


def string_column(values: Iterable[Any]) -> pa.Array:
    """An Arrow string array of ``values`` (each converted with ``str``)."""
    return pa.array([str(v) for v in values], type=pa.string())


def is_string_column(values: Any) -> bool:
    """True when ``values`` is already an Arrow string array."""
    return isinstance(values, pa.Array) and (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    )


def concat_strings(parts: Sequence[pa.Array]) -> pa.Array:
    """Concatenate string arrays into one contiguous array (``large_string`` past 2 GiB)."""
    if not parts:
        return pa.array([], type=pa.string())
    total = sum(p.nbytes for p in parts)
    if total > MAX_STRING_BYTES or any(pa.types.is_large_string(p.type) for p in parts):
        parts = [p.cast(pa.large_string()) for p in parts]
    return pa.concat_arrays(list(parts))


def take_strings(column: pa.Array, index: np.ndarray) -> list[str]:
    """The values of ``column`` at ``index`` as Python strings."""
    if len(index) == 0:
        return []
    return column.take(pa.array(np.asarray(index, dtype=np.int64))).to_pylist()


def iter_string_chunks(column: pa.Array, size: int = CHUNK_ROWS) -> Iterable[list[str]]:
    """``column`` as lists of at most ``size`` Python strings (bounded transient memory)."""
    for start in range(0, len(column), size):
        yield column.slice(start, size).to_pylist()


def first_occurrence(column: pa.Array) -> np.ndarray:
    """For each position, the position of the first equal value (int64; itself when unique)."""
    n = len(column)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # dictionary_encode numbers the distinct values in order of first appearance
    codes = column.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    return first.astype(np.int64)[codes]


@dataclass
class PrefixedStrings:
    """Strings kept as a shared prefix plus their own suffix (front coding).

    The locations of one chunk share most of their text (``parents.parquet:rg=12:row=``): each
    part of the scan stores that common prefix once and only the rest per value, ~10 bytes a
    value instead of ~35. ``prefixes[prefix_id[i]] + suffix[i]`` is value ``i``, exactly.
    """

    prefixes: list[str]
    prefix_id: np.ndarray  # int32, one per value
    suffix: pa.Array

    @classmethod
    def from_strings(cls, values: Sequence[Any]) -> PrefixedStrings:
        """One part: the common prefix of all ``values`` (each converted with ``str``)."""
        values = [str(v) for v in values]
        prefix = os.path.commonprefix(values) if values else ""
        suffix = string_column(v[len(prefix) :] for v in values)
        return cls([prefix], np.zeros(len(values), np.int32), suffix)

    def __len__(self) -> int:
        return len(self.suffix)

    def get(self, i: int) -> str:
        """Value ``i``."""
        return self.prefixes[int(self.prefix_id[i])] + self.suffix[int(i)].as_py()

    def take(self, index: np.ndarray) -> list[str]:
        """The values at ``index``."""
        index = np.asarray(index, dtype=np.int64)
        ids = self.prefix_id[index].tolist()
        return [
            self.prefixes[p] + s for p, s in zip(ids, take_strings(self.suffix, index), strict=True)
        ]

    def slice(self, start: int, length: int) -> PrefixedStrings:
        """Values ``start`` ... ``start + length - 1`` (zero-copy)."""
        stop = start + length
        return PrefixedStrings(
            self.prefixes, self.prefix_id[start:stop], self.suffix.slice(start, length)
        )

    def nbytes(self) -> int:
        text = sum(len(p.encode()) for p in self.prefixes)
        return int(self.prefix_id.nbytes + column_nbytes(self.suffix) + text)

    @staticmethod
    def concat(parts: Sequence[PrefixedStrings]) -> PrefixedStrings:
        """The values of ``parts`` in order, equal prefixes stored once."""
        prefixes: dict[str, int] = {}
        ids = []
        for part in parts:
            remap = np.array(
                [prefixes.setdefault(p, len(prefixes)) for p in part.prefixes], np.int32
            )
            ids.append(remap[part.prefix_id] if len(part.prefix_id) else part.prefix_id)
        prefix_id = np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, np.int32)
        return PrefixedStrings(list(prefixes), prefix_id, concat_strings([p.suffix for p in parts]))


def column_nbytes(value: Any) -> int:
    """Bytes held by a column (Arrow buffers, numpy data), 0 for anything else."""
    if isinstance(value, PrefixedStrings):
        return value.nbytes()
    if isinstance(value, pa.Array | pa.ChunkedArray):
        return int(value.get_total_buffer_size())  # whole buffers, also of a slice
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    return 0


def release_unused_memory() -> None:
    """Hand memory freed by the scan's and the plan's transients back to the system.

    Collects garbage, releases the Arrow memory pool's cached pages and, on glibc, trims the
    malloc heap (``malloc_trim``); the columns themselves stay. Best effort: a no-op where a
    step is unavailable.
    """
    import ctypes
    import gc

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
