"""Memory benchmark: bytes per parent that the build's main process holds for the scan and plan.

Writes a synthetic *catalogue* of N rows in the seed Parquet layout (ids ``synth-0-NNNNNNNN``,
ra/dec over a 10 x 10 deg patch, PSF sizes and depths in the default limits, row groups of 500
as the synthetic sky writes them) whose stamp column holds empty values: the build's scan of a
Parquet file with every catalogue column reads only those columns (``builder/scan.py``), so the
structures measured are those of a build of N rendered parents, without rendering N stamps.
Then, in a fresh process per run, it scans (``scan_source``, in-process) and plans
(``plan_build``, default config) and reports per parent:

* ``scan_B`` / ``scan_plan_B``: bytes still held after the scan, and after the plan with the
  scan (what the main process keeps through the shard stage): tracemalloc's traced bytes (Python
  objects, numpy arrays) plus the Arrow memory pool's allocated bytes (``arrow_B``; Arrow
  buffers are not seen by tracemalloc);
* ``peak_B``: tracemalloc's peak during scan + plan (Python and numpy transients);
* ``rss_raw_B``: growth of the resident set size over scan + plan (a separate run without
  tracemalloc; includes memory the allocators keep after the transients are freed);
  ``rss_B``: the same after ``builder.columns.release_unused_memory`` (what the build calls
  after planning; versions without it: equal to ``rss_raw_B``);
* ``nbytes_B``: the columns' own byte count (``ScanResult.nbytes`` + ``PlanColumns.nbytes``;
  absent in versions without columns).

Medians of ``--repeats`` runs.

    python benchmarks/bench_memory.py --rows 100000 1000000 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tree this script lives in (compare versions side by side)
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROW_GROUP = 500


def write_catalogue(path: Path, n: int, seed: int = 0) -> Path:
    """A seed-layout Parquet catalogue of ``n`` rows with empty stamps (see module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_file() and pq.ParquetFile(path).metadata.num_rows == n:
        return path
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    schema = _schema(pa)
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, ROW_GROUP):
            k = min(ROW_GROUP, n - start)
            cols = {
                "galaxy_id": pa.array([f"synth-{seed}-{i:08d}" for i in range(start, start + k)]),
                "stamp_npz": pa.array([b""] * k, type=pa.binary()),
                "ra": rng.uniform(150.0, 160.0, k),
                "dec": np.degrees(np.arcsin(rng.uniform(0.0, np.sin(np.radians(10.0)), k))),
            }
            for b in "grz":
                cols[f"psfsize_{b}"] = rng.uniform(1.0, 1.8, k)
            for b, depth in zip("grz", (1000.0, 300.0, 60.0), strict=True):
                cols[f"psfdepth_{b}"] = depth * rng.uniform(0.6, 1.6, k)
            writer.write_table(pa.table(cols, schema=schema))
    tmp.replace(path)
    return path


def _schema(pa: Any) -> Any:
    fields = [pa.field("galaxy_id", pa.string()), pa.field("stamp_npz", pa.binary())]
    names = ["ra", "dec", "psfsize_g", "psfsize_r", "psfsize_z"]
    names += ["psfdepth_g", "psfdepth_r", "psfdepth_z"]
    return pa.schema(fields + [pa.field(c, pa.float64()) for c in names])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(path: Path, mode: str, workers: int = 1) -> dict[str, Any]:
    """One measurement in this (fresh) process: ``mode`` is ``tracemalloc`` or ``rss``.

    ``workers`` > 1 scans on a process pool (the main process then receives each chunk's
    result), as ``make-shards --workers`` does.
    """
    from builder.build import build_limits
    from builder.config import load_build_config
    from builder.executors import make_executor
    from builder.parents.base import ReaderContext
    from builder.parents.open import SourceSpec, open_source
    from builder.plan import plan_build
    from builder.scan import scan_chunk, scan_source

    try:
        from builder.columns import release_unused_memory as release
    except ImportError:  # a version without it
        release = None

    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(path)}})
    limits = build_limits(cfg)
    spec = SourceSpec("parquet", str(path), cfg.input.section("parquet"), ReaderContext(limits))
    scan_chunk(spec, 0, limits)  # warm the imports and the reader
    plan_build(scan_chunk(spec, 0, limits), cfg)
    n = open_source(spec).info().extra["num_rows"]
    if release is not None:
        release()
    gc.collect()
    import pyarrow as pa

    arrow0 = pa.total_allocated_bytes()  # Arrow buffers: not seen by tracemalloc
    out: dict[str, Any] = {"n": n}
    if mode == "tracemalloc":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    else:
        rss0 = _rss_bytes()
    t0 = time.perf_counter()
    executor = make_executor("local", workers)
    scan = scan_source(spec, limits, executor=executor)
    t1 = time.perf_counter()
    if mode == "tracemalloc":
        gc.collect()
        arrow = pa.total_allocated_bytes() - arrow0
        out["scan_B"] = (tracemalloc.get_traced_memory()[0] - base + arrow) / n
    t2 = time.perf_counter()
    plan = plan_build(scan, cfg)
    t3 = time.perf_counter()
    gc.collect()
    if mode == "tracemalloc":
        now, peak = tracemalloc.get_traced_memory()
        arrow = pa.total_allocated_bytes() - arrow0
        out["arrow_B"] = arrow / n
        out["scan_plan_B"] = (now - base + arrow) / n
        out["peak_B"] = (peak - base) / n  # Python and numpy only
        tracemalloc.stop()
    else:
        out["rss_raw_B"] = (_rss_bytes() - rss0) / n
        if release is not None:  # what the build does after planning
            release()
        out["rss_B"] = (_rss_bytes() - rss0) / n
        out["scan_s"], out["plan_s"] = t1 - t0, t3 - t2
    columns = getattr(plan, "columns", None)
    if hasattr(scan, "nbytes") and columns is not None:
        out["nbytes_B"] = (scan.nbytes() + columns.nbytes()) / n
    out["n_tasks"] = len(plan.tasks)
    if hasattr(executor, "shutdown"):
        executor.shutdown()
    return out


def run(path: Path, mode: str, workers: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", str(path), "--mode", mode]
    cmd += ["--workers", str(workers)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child failed ({mode}, {path}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", help="where the catalogues are written (default: a temp dir)")
    ap.add_argument("--workers", type=int, default=1, help="scan processes (1: in-process)")
    ap.add_argument("--label", default="", help="name of the version measured (in the output)")
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="tracemalloc", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.mode, args.workers)))
        return
    from benchutil import write_json

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    keys = ("scan_B", "scan_plan_B", "arrow_B", "peak_B", "rss_raw_B", "rss_B", "nbytes_B")
    keys += ("scan_s", "plan_s")
    print(f"{'rows':>9} {'runs':>4} " + " ".join(f"{k:>12}" for k in keys), file=sys.stderr)
    for n in args.rows:
        path = write_catalogue(work / f"catalogue-{n}" / "parents.parquet", n)
        runs = [
            {**run(path, "tracemalloc", args.workers), **run(path, "rss", args.workers)}
            for _ in range(args.repeats)
        ]
        med = {k: statistics.median(r[k] for r in runs) for k in keys if all(k in r for r in runs)}
        results.append({"rows": n, "workers": args.workers, "median": med, "runs": runs})
        cells = " ".join(f"{med[k]:>12.1f}" if k in med else f"{'-':>12}" for k in keys)
        print(f"{n:>9} {len(runs):>4} {cells}", file=sys.stderr)
    write_json(args.json, {"benchmark": "memory", "label": args.label, "results": results})


if __name__ == "__main__":
    main()
