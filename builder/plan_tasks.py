"""Planned samples and shard tasks, materialised on demand from the plan's columns.

The plan (:mod:`builder.plan`) holds, per planned sample, only an int32 index into the scanned
rows and a role code (:class:`PlanColumns`); a :class:`ShardTask` with its list of
:class:`PlannedSample` objects is made when the task is handed to the executor
(:meth:`PlanColumns.task`) and dropped when it is done, so the main process never holds one
Python object per sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from builder.columns import take_strings
from shards.schema import CATALOG_FIELDS, make_key

ROLES = ("host", "control")
"""Role codes of the plan's ``role`` column (int8): 0 host, 1 control."""
HOST, CONTROL = 0, 1
PAIRED_TAGS = ("h", "c")  # key suffix of each role with ``splits.controls: paired``


@dataclass(frozen=True)
class PlannedSample:
    """One sample to produce: a galaxy in a role, and where to read it.

    ``kind`` is ``"real"`` for a known lens read from the real-positive input (``source``
    ``"positives"``; ``grade`` and loss ``weight`` from :mod:`builder.positives`), ``""`` for a
    parent (injected host or control).
    """

    galaxy_id: str
    key: str
    role: str  # "host" or "control"
    chunk: int
    row: int
    location: str
    catalog: tuple[float, ...]
    kind: str = ""
    source: str = "parents"
    grade: str = ""
    weight: float = 1.0


@dataclass
class ShardTask:
    """One output shard to build."""

    split: str
    index: int
    samples: list[PlannedSample] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"

    @property
    def n_samples(self) -> int:
        return len(self.samples)


@dataclass(frozen=True)
class TaskSlot:
    """Where a shard task's samples lie in the plan's columns: ``[start, stop)``."""

    split: str
    index: int
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"

    @property
    def n_samples(self) -> int:
        return self.stop - self.start


@dataclass
class PlanColumns:
    """The planned samples as columns, in output order (split by split, source order within).

    Attributes
    ----------
    parents, positives : ScanResult
        The columnar scans the samples index into (``positives`` None without real positives).
    item : numpy.ndarray of int32
        Per sample: the row of ``positives`` when below ``n_positives``, else
        ``n_positives`` + the row of ``parents``.
    role : numpy.ndarray of int8
        Per sample: a code of :data:`ROLES`.
    paired : bool
        ``splits.controls == "paired"``: keys carry the role tag of :data:`PAIRED_TAGS`.
    grades, weights : list
        Per real positive: its grade and loss weight (:class:`builder.positives.RealPositives`).
    slots : list of TaskSlot
        The shard tasks.
    """

    parents: Any
    positives: Any
    item: np.ndarray
    role: np.ndarray
    paired: bool
    grades: list[str]
    weights: list[float]
    slots: list[TaskSlot]

    @property
    def n_positives(self) -> int:
        return 0 if self.positives is None else len(self.positives)

    def nbytes(self) -> int:
        """Bytes of the per-sample columns (the scans they index into not counted)."""
        return int(self.item.nbytes + self.role.nbytes)

    def task(self, slot: TaskSlot) -> ShardTask:
        """The shard task of ``slot`` with its planned samples."""
        sel = slice(slot.start, slot.stop)
        return ShardTask(slot.split, slot.index, self.samples(self.item[sel], self.role[sel]))

    def samples(self, items: np.ndarray, roles: np.ndarray) -> list[PlannedSample]:
        """Planned samples of ``items`` in ``roles`` (in the given order)."""
        n_pos = self.n_positives
        out: list[PlannedSample | None] = [None] * len(items)
        is_pos = items < n_pos
        for which, scan in ((is_pos, self.positives), (~is_pos, self.parents)):
            where = np.flatnonzero(which)
            if where.size == 0:
                continue
            rows = items[where].astype(np.int64) - (0 if scan is self.positives else n_pos)
            ids = take_strings(scan.galaxy_id, rows)
            locations = scan.location.take(rows)
            chunks, in_chunk = scan.chunk[rows].tolist(), scan.row[rows].tolist()
            catalogs = scan.catalog[rows].tolist()
            for k, j in enumerate(where.tolist()):
                gid, role = ids[k], ROLES[int(roles[j])]
                if scan is self.positives:
                    p = int(rows[k])
                    extra: dict[str, Any] = dict(
                        kind="real",
                        source="positives",
                        grade=self.grades[p],
                        weight=self.weights[p],
                    )
                    key = make_key(gid)
                else:
                    extra = {}
                    key = make_key(gid, PAIRED_TAGS[int(roles[j])] if self.paired else "")
                out[j] = PlannedSample(
                    gid,
                    key,
                    role,
                    chunks[k],
                    in_chunk[k],
                    locations[k],
                    tuple(catalogs[k]),
                    **extra,
                )
        return out  # type: ignore[return-value]


class PlannedTasks(Sequence[ShardTask]):
    """The plan's shard tasks as a sequence; each is materialised when accessed."""

    def __init__(self, columns: PlanColumns):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns.slots)

    @overload
    def __getitem__(self, i: int) -> ShardTask: ...
    @overload
    def __getitem__(self, i: slice) -> list[ShardTask]: ...
    def __getitem__(self, i: int | slice) -> ShardTask | list[ShardTask]:
        if isinstance(i, slice):
            return [self.columns.task(s) for s in self.columns.slots[i]]
        return self.columns.task(self.columns.slots[i])

    def __iter__(self) -> Iterator[ShardTask]:
        for slot in self.columns.slots:
            yield self.columns.task(slot)


def catalog_dict(sample: PlannedSample) -> dict[str, float]:
    """Catalog values of a planned sample as a dict keyed by :data:`CATALOG_FIELDS`."""
    return dict(zip(CATALOG_FIELDS, sample.catalog, strict=True))
