"""End-to-end build benchmark: parent Parquet -> shards, 1 and 2 workers, at two dataset sizes.

Measures samples/s (median of --repeats runs), samples/s per worker, samples per CPU-second (main
process + workers: what one busy core does, less disturbed by other jobs than wall time), and
peak RSS of the main process and of the largest worker, so that growth with dataset size is
visible. Each build runs in a fresh subprocess (clean page cache state is not controlled:
parents are read warm).

    python benchmarks/bench_build.py --sizes 1000 4000 --workers 1 2 --repeats 5 --json out.json

``--tree NAME=DIR`` also runs every variant with the code of another checkout (e.g. a
``git worktree`` of an older commit), alternating with this one within each repeat, so that a
before/after ratio comes from the same run and load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import median, write_json  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from common.configio import merge, parse_overrides
parents, out, workers, spk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sets = json.loads(sys.argv[5])
cfg = load_build_config(None, merge({"input": {"kind": "parquet", "path": parents},
                                     "output": {"samples_per_shard": spk}}, parse_overrides(sets)))
def cpu():
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))
t0, c0 = time.perf_counter(), cpu()
m = make_shards(cfg, out, BuildOptions(workers=workers, progress=False))
dt, dc = time.perf_counter() - t0, cpu() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": dc, "samples": sum(s.n_samples for s in m.shards),
  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
  "rss_worker_max_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def ensure_parents(workdir: Path, n: int, seed: int = 0) -> Path:
    path = workdir / f"parents-{n}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, "-m", "builder.cli", "synth-parents", "--n", str(n),
                        "--out", str(path), "--seed", str(seed)], check=True)
    return path


def run_once(parents: Path, workers: int, spk: int, sets: list[str] = (),
             code_dir: str | None = None) -> dict:
    """One build in a fresh process; ``code_dir``: import the project from that checkout."""
    out = Path(tempfile.mkdtemp(prefix="bench-build-"))
    env = None
    if code_dir is not None:
        env = {**os.environ, "PYTHONPATH": str(Path(code_dir).resolve())}
    try:
        r = subprocess.run([sys.executable, "-c", CHILD, str(parents.resolve()), str(out),
                            str(workers), str(spk), json.dumps(list(sets))],
                           capture_output=True, text=True, check=True, env=env,
                           cwd=None if code_dir is None else str(Path(code_dir).resolve()))
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"sersic:injection.source.model=sersic;injection.lens_prior=uniform"`` -> name, sets."""
    name, _, sets = text.partition(":")
    return name, [x for x in sets.split(";") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples-per-shard", type=int, default=500)
    ap.add_argument("--workdir", default="bench-out/build-work")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME:KEY=VALUE;KEY=VALUE build-config overrides measured next to the "
                         "default (e.g. sersic:injection.source.model=sersic); runs of all "
                         "variants alternate within each repeat")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="also run every variant with the code of checkout DIR (reported as "
                         "VARIANT@NAME), alternating with this checkout within each repeat")
    ap.add_argument("--json")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base_variants = [("default", [])] + [parse_variant(v) for v in args.variant]
    trees = [t.partition("=")[::2] for t in args.tree]
    variants = {name: sets for name, sets in base_variants}
    code: dict[str, str | None] = dict.fromkeys(variants)
    for tree, path in trees:
        for name, sets in base_variants:
            variants[f"{name}@{tree}"], code[f"{name}@{tree}"] = sets, path
    results = []
    for n in args.sizes:
        parents = ensure_parents(workdir, n)
        for w in args.workers:
            runs: dict[str, list[dict]] = {name: [] for name in variants}
            loads: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.repeats):
                for name, sets in variants.items():
                    loads[name].append(round(os.getloadavg()[0], 2))
                    runs[name].append(run_once(parents, w, args.samples_per_shard, sets,
                                               code[name]))
            for name, vr in runs.items():
                sec = median([r["seconds"] for r in vr])
                row = {"variant": name, "sets": variants[name], "code_dir": code[name],
                       "n_parents": n, "workers": w,
                       "median_seconds": round(sec, 3), "samples": vr[0]["samples"],
                       "samples_per_s": round(vr[0]["samples"] / sec, 1),
                       "samples_per_s_per_worker": round(vr[0]["samples"] / sec / w, 1),
                       "rss_main_mb": round(max(r["rss_main_mb"] for r in vr), 1),
                       "rss_worker_max_mb": round(max(r["rss_worker_max_mb"] for r in vr), 1),
                       "runs_seconds": [round(r["seconds"], 3) for r in vr],
                       # CPU time of the build (main process + finished workers): less
                       # disturbed than wall time when other jobs share the cores
                       "median_cpu_seconds": round(median([r["cpu_seconds"] for r in vr]), 3),
                       "samples_per_cpu_s": round(
                           vr[0]["samples"] / median([r["cpu_seconds"] for r in vr]), 1),
                       "load_1min": loads[name]}
                print(row, flush=True)
                results.append(row)
    base = {(r["variant"], r["n_parents"]): r["samples_per_s"] for r in results if r["workers"] == 1}
    for r in results:
        b = base.get((r["variant"], r["n_parents"]))
        r["speedup_vs_1_worker"] = round(r["samples_per_s"] / b, 2) if b else None
        plain, _, tree = r["variant"].partition("@")
        default = "default@" + tree if tree else "default"
        d = next((x for x in results if x["variant"] == default and x["n_parents"] == r["n_parents"]
                  and x["workers"] == r["workers"]), None)
        r["speed_vs_default"] = round(r["samples_per_s"] / d["samples_per_s"], 3) if d else None
        if tree:  # this checkout's speed relative to the other tree's, same variant and run
            t = next(x for x in results if x["variant"] == plain and x["n_parents"] == r["n_parents"]
                     and x["workers"] == r["workers"])
            r["this_checkout_vs_tree"] = round(t["samples_per_s"] / r["samples_per_s"], 3)
            print(f"{plain}, {r['workers']} worker(s): this checkout / {tree} = "
                  f"{r['this_checkout_vs_tree']}", flush=True)
    write_json(args.json, {"benchmark": "build", "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
