"""Exactly-once planning of work items over world_size x num_workers slots."""

from __future__ import annotations

from collections import Counter

import pytest
import webdataset as wds
from hypothesis import given, settings
from hypothesis import strategies as st

from train.partition import (
    EMPTY_ITEM,
    WorkItem,
    max_steps,
    plan_work_items,
    shard_order,
    slot_counts,
    slot_items,
    steps_per_rank,
)

GRID = [(1, 1), (1, 3), (2, 2), (3, 2)]
SHARD_SETS = {
    "divides_evenly": [(f"s{i}.tar", 10) for i in range(12)],
    "does_not_divide": [(f"s{i}.tar", 10) for i in range(7)],
    "different_sizes": [(f"s{i}.tar", n) for i, n in enumerate([6, 6, 4, 9, 2, 5, 1, 13])],
}


def covered(items: list[WorkItem]) -> Counter:
    """How often each (url, sample index) appears in the plan."""
    return Counter((it.url, i) for it in items for i in range(it.start, it.stop))


def check_plan(shards, world, workers, items) -> None:
    n_slots = world * max(workers, 1)
    assert len(items) % n_slots == 0
    all_slots = [
        slot_items(items, r, world, w, workers)
        for r in range(world)
        for w in range(max(workers, 1))
    ]
    seen = covered([it for slot in all_slots for it in slot])
    expected = {(url, i) for url, n in shards for i in range(n)}
    assert set(seen) == expected
    assert all(c == 1 for c in seen.values())
    sizes = [sum(len(it) for it in slot) for slot in all_slots]
    assert max(sizes) - min(sizes) <= 1
    assert all(0 <= it.start <= it.stop for it in items)
    assert all(it.stop <= dict(shards)[it.url] for it in items if len(it))


@pytest.mark.parametrize("world,workers", GRID)
@pytest.mark.parametrize("name", sorted(SHARD_SETS))
def test_every_sample_in_exactly_one_slot(name, world, workers):
    shards = SHARD_SETS[name]
    for epoch in range(3):
        items = plan_work_items(shards, world, workers, seed=7, epoch=epoch, shuffle=True)
        check_plan(shards, world, workers, items)


@pytest.mark.parametrize("world,workers", GRID)
def test_webdataset_splitters_hand_each_slot_its_items(monkeypatch, world, workers):
    shards = SHARD_SETS["different_sizes"]
    items = plan_work_items(shards, world, workers, seed=1, epoch=2, shuffle=True)
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("NUM_WORKERS", str(workers))
    for rank in range(world):
        for worker in range(workers):
            monkeypatch.setenv("RANK", str(rank))
            monkeypatch.setenv("WORKER", str(worker))
            got = list(wds.split_by_worker(wds.split_by_node(iter(items))))
            assert got == slot_items(items, rank, world, worker, workers)


def test_whole_shards_stay_whole_when_count_divides():
    shards = SHARD_SETS["divides_evenly"]
    items = plan_work_items(shards, 2, 3, seed=0, epoch=0, shuffle=True)
    assert all(it.start == 0 and it.stop == 10 for it in items)
    assert slot_counts(items, 2, 3) == [[20, 20, 20], [20, 20, 20]]


def test_remainder_shards_are_split_samplewise():
    shards = SHARD_SETS["does_not_divide"]  # 7 x 10 over 4 slots: 17 or 18 each
    items = plan_work_items(shards, 2, 2, seed=0, epoch=0, shuffle=False)
    partial = [it for it in items if len(it) and len(it) < 10]
    assert partial, "expected sample-wise pieces of the leftover shards"
    assert sorted(c for row in slot_counts(items, 2, 2) for c in row) == [17, 17, 18, 18]
    # Pieces of one shard are contiguous and disjoint.
    for url in {it.url for it in partial}:
        ranges = sorted((it.start, it.stop) for it in items if it.url == url)
        assert ranges[0][0] == 0 and ranges[-1][1] == 10
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_padding_items_are_empty():
    items = plan_work_items([("a.tar", 5)], 3, 2, seed=0, epoch=0, shuffle=True)
    assert len(items) == 6
    assert sum(len(it) for it in items) == 5
    assert EMPTY_ITEM in items
    assert sorted(c for row in slot_counts(items, 3, 2) for c in row) == [0, 1, 1, 1, 1, 1]


def test_shard_order_changes_with_epoch_and_is_reproducible():
    shards = [(f"s{i}.tar", 10) for i in range(20)]
    plans = {e: plan_work_items(shards, 2, 2, seed=3, epoch=e, shuffle=True) for e in range(3)}
    assert plans[0] != plans[1] and plans[1] != plans[2]
    assert plans[1] == plan_work_items(shards, 2, 2, seed=3, epoch=1, shuffle=True)
    assert plans[1] != plan_work_items(shards, 2, 2, seed=4, epoch=1, shuffle=True)
    assert shard_order(20, 3, 1, True) == shard_order(20, 3, 1, True)
    assert shard_order(20, 3, 1, False) == list(range(20))
    # Without shuffling the plan ignores the epoch (evaluation order is fixed).
    assert plan_work_items(shards, 2, 2, 3, 0, False) == plan_work_items(shards, 2, 2, 3, 9, False)


def test_steps_per_rank_counts_per_worker_batches():
    # 3 ranks x 2 workers; 16 samples -> slot sizes 3,3,3,3,2,2.
    items = plan_work_items([("a.tar", 6), ("b.tar", 6), ("c.tar", 4)], 3, 2, 0, 0, False)
    counts = slot_counts(items, 3, 2)
    assert sum(map(sum, counts)) == 16
    assert steps_per_rank(items, 3, 2, batch_size=2) == [
        sum(-(-n // 2) for n in row) for row in counts
    ]
    assert max_steps(items, 3, 2, batch_size=2) == max(steps_per_rank(items, 3, 2, 2))
    assert steps_per_rank(items, 3, 2, batch_size=100) == [2, 2, 2]


def test_main_process_counts_as_one_worker():
    shards = SHARD_SETS["different_sizes"]
    assert plan_work_items(shards, 2, 0, 1, 1, True) == plan_work_items(shards, 2, 1, 1, 1, True)


@pytest.mark.parametrize(
    "kwargs",
    [dict(world_size=0, num_workers=1), dict(world_size=1, num_workers=-1)],
)
def test_invalid_world_is_refused(kwargs):
    with pytest.raises(ValueError):
        plan_work_items([("a.tar", 3)], seed=0, epoch=0, shuffle=False, **kwargs)


def test_slot_outside_world_is_refused():
    with pytest.raises(ValueError, match="outside"):
        slot_items([EMPTY_ITEM] * 4, rank=2, world_size=2, worker=0, num_workers=2)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), max_size=25),
    world=st.integers(1, 4),
    workers=st.integers(0, 4),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 1000),
    shuffle=st.booleans(),
    batch_size=st.integers(1, 16),
)
def test_plan_property(sizes, world, workers, seed, epoch, shuffle, batch_size):
    shards = [(f"s{i}.tar", n) for i, n in enumerate(sizes)]
    items = plan_work_items(shards, world, workers, seed, epoch, shuffle)
    check_plan(shards, world, workers, items)
    assert items == plan_work_items(shards, world, workers, seed, epoch, shuffle)
    steps = steps_per_rank(items, world, workers, batch_size)
    assert len(steps) == world
    assert max_steps(items, world, workers, batch_size) == max(steps)
    # Balanced slots keep ranks within one batch per worker of each other.
    assert max(steps) - min(steps) <= max(workers, 1)
