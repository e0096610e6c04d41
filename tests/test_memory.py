"""The build's main process holds the scan and the plan as columns: <= 200 bytes per parent.

A 10,000-row catalogue in the seed Parquet layout (empty stamps: the scan of a file with every
catalogue column reads only those) is scanned and planned with the default config; the bytes
still held afterwards are counted twice, from the columns' own sizes and from tracemalloc
(Python objects, numpy) plus the Arrow memory pool (Arrow buffers). Per-parent Python objects
(the earlier lists and one ``PlannedSample`` per sample) cost ~1.4 kB a parent and fail both.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.build import build_limits
from builder.config import load_build_config
from builder.parents.base import ReaderContext
from builder.parents.open import SourceSpec
from builder.plan import PlannedSample, plan_build
from builder.scan import scan_source
from shards.schema import CATALOG_FIELDS

N_ROWS = 10_000
MAX_BYTES_PER_PARENT = 200


def _catalogue(path, n: int) -> None:
    rng = np.random.default_rng(1)
    cols = {
        "galaxy_id": pa.array([f"synth-0-{i:08d}" for i in range(n)]),
        "stamp_npz": pa.array([b""] * n, type=pa.binary()),
        "ra": rng.uniform(150.0, 152.0, n),
        "dec": rng.uniform(0.0, 2.0, n),
    }
    for b in "grz":
        cols[f"psfsize_{b}"] = rng.uniform(1.0, 1.8, n)
        cols[f"psfdepth_{b}"] = rng.uniform(60.0, 600.0, n)
    pq.write_table(pa.table(cols), path, row_group_size=500)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "parents.parquet"
    _catalogue(path, N_ROWS)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(path)}})
    limits = build_limits(cfg)
    spec = SourceSpec("parquet", str(path), cfg.input.section("parquet"), ReaderContext(limits))
    plan_build(scan_source(spec, limits, max_parents=10), cfg)  # imports and caches first
    gc.collect()
    arrow0 = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        scan = scan_source(spec, limits)
        plan = plan_build(scan, cfg)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base + pa.total_allocated_bytes() - arrow0
    finally:
        tracemalloc.stop()
    return scan, plan, held


def test_scan_and_plan_are_columns(measured):
    scan, plan, _ = measured
    assert len(scan) == N_ROWS and scan.is_columnar()
    assert scan.catalog.dtype == np.float64 and scan.catalog.shape == (N_ROWS, len(CATALOG_FIELDS))
    assert scan.chunk.dtype == np.int32 and scan.row.dtype == np.int32
    assert plan.columns.item.dtype == np.int32 and plan.columns.role.dtype == np.int8
    assert sum(s.n_samples for s in plan.slots) == N_ROWS
    first = plan.tasks[0].samples[0]  # materialised on access, as the shard task gets it
    assert isinstance(first, PlannedSample) and isinstance(first.galaxy_id, str)
    assert first.location == f"parents.parquet:rg={first.chunk}:row={first.row}"


def test_column_bytes_per_parent_within_budget(measured):
    scan, plan, _ = measured
    per_parent = (scan.nbytes() + plan.columns.nbytes()) / N_ROWS
    assert per_parent <= MAX_BYTES_PER_PARENT, per_parent


def test_held_bytes_per_parent_within_budget(measured):
    _, _, held = measured
    assert held / N_ROWS <= MAX_BYTES_PER_PARENT, held / N_ROWS
