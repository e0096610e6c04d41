"""Profile the shard tasks of a default synthetic build in one process (cProfile).

The parents (``--n`` synthetic galaxies) are rendered once into ``--workdir`` and reused (not
timed, not profiled); then a build runs on the serial executor with the profiler switched on only
inside each shard task (:func:`builder.tasks.run_task`: read, inject, write). Prints the top
functions by cumulative and by self time, the self time grouped by package, and ms per sample
(with and, in a second unprofiled build, without the profiler's overhead).

    python benchmarks/profile_build.py --n 300 [--set injection.source.model=sersic] [--json out.json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Self time is grouped by the first of these path fragments found in a function's file name.
GROUPS: tuple[tuple[str, str], ...] = (
    ("builder/inject/", "builder/inject"),
    ("builder/", "builder (other)"),
    ("shards/", "shards"),
    ("common/", "common"),
    ("galsim", "galsim"),
    ("scipy", "scipy"),
    ("numpy", "numpy"),
    ("pyarrow", "pyarrow"),
    ("lenstronomy", "lenstronomy"),
)


def ensure_parents(workdir: Path, n: int, seed: int) -> Path:
    """Synthetic parent Parquet of ``n`` galaxies (rendered once, in a subprocess)."""
    path = workdir / f"parents-{n}-s{seed}.parquet"
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "builder.cli",
                "synth-parents",
                "--n",
                str(n),
                "--out",
                str(path),
                "--seed",
                str(seed),
            ],
            check=True,
        )
    return path


def group_of(filename: str) -> str:
    """Package group of a profiled function's file (``"builtins"`` for C functions)."""
    f = filename.replace(os.sep, "/")
    for frag, name in GROUPS:
        if frag in f:
            return name
    return "builtins / other" if f.startswith("~") or not f.endswith(".py") else "python / other"


def build(parents: Path, sets: list[str], profile: cProfile.Profile | None) -> tuple[float, int]:
    """One serial build of ``parents``; profile only the shard tasks. Returns (task s, samples)."""
    import builder.build as bb
    from builder.build import BuildOptions, make_shards
    from builder.config import load_build_config
    from common.configio import merge, parse_overrides

    cfg = load_build_config(
        None, merge({"input": {"kind": "parquet", "path": str(parents)}}, parse_overrides(sets))
    )
    original = bb.run_task
    spent = [0.0]

    def timed_task(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        if profile is not None:
            profile.enable()
        try:
            return original(*args, **kwargs)
        finally:
            if profile is not None:
                profile.disable()
            spent[0] += time.perf_counter() - t0

    out = Path(tempfile.mkdtemp(prefix="profile-build-"))
    bb.run_task = timed_task
    try:
        m = make_shards(cfg, out, BuildOptions(workers=1, executor="serial", progress=False))
    finally:
        bb.run_task = original
        shutil.rmtree(out, ignore_errors=True)
    return spent[0], sum(s.n_samples for s in m.shards)


def rows(stats: pstats.Stats, key: str, top: int, total: float) -> list[dict[str, Any]]:
    """Top ``top`` functions by ``key`` (``"cumulative"`` or ``"tottime"``)."""
    idx = 3 if key == "cumulative" else 2
    items = sorted(stats.stats.items(), key=lambda kv: kv[1][idx], reverse=True)[:top]
    out = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in items:
        out.append(
            {
                "function": f"{Path(file).name}:{line}({func})" if line else func,
                "calls": nc,
                "self_s": round(tt, 4),
                "cum_s": round(ct, 4),
                "self_pct": round(100 * tt / total, 1),
                "cum_pct": round(100 * ct / total, 1),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="synthetic parents")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="build-config override (repeatable)",
    )
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--no-plain",
        action="store_true",
        help="skip the second, unprofiled build (ms/sample without overhead)",
    )
    ap.add_argument("--workdir", default="bench-out/profile-work")
    ap.add_argument("--json")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    parents = ensure_parents(workdir, args.n, args.seed)

    prof = cProfile.Profile()
    task_s, samples = build(parents, args.set, prof)
    plain_s = None if args.no_plain else build(parents, args.set, None)[0]
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(sum(v[2] for v in stats.stats.values()), 1e-12)
    groups: dict[str, float] = defaultdict(float)
    for (file, _line, _func), v in stats.stats.items():
        groups[group_of(file)] += v[2]
    result = {
        "benchmark": "profile_build",
        "n_parents": args.n,
        "sets": args.set,
        "samples": samples,
        "load_1min": round(os.getloadavg()[0], 2),
        "task_seconds_profiled": round(task_s, 3),
        "ms_per_sample_profiled": round(1e3 * task_s / max(samples, 1), 3),
        "task_seconds_plain": None if plain_s is None else round(plain_s, 3),
        "ms_per_sample_plain": None
        if plain_s is None
        else round(1e3 * plain_s / max(samples, 1), 3),
        "self_by_group_pct": {
            k: round(100 * v / total, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "top_cumulative": rows(stats, "cumulative", args.top, total),
        "top_self": rows(stats, "tottime", args.top, total),
    }
    print(
        f"{samples} samples; shard tasks {task_s:.2f} s under the profiler "
        f"({result['ms_per_sample_profiled']} ms/sample)"
        + (
            ""
            if plain_s is None
            else f", {plain_s:.2f} s without ({result['ms_per_sample_plain']} ms/sample)"
        )
        + f"; load {result['load_1min']}"
    )
    print(
        "self time by package: "
        + ", ".join(f"{k} {v}%" for k, v in result["self_by_group_pct"].items())
    )
    for key in ("top_cumulative", "top_self"):
        print(
            f"\n{key.replace('_', ' ')}:\n{'cum %':>6} {'self %':>6} {'ms/sample':>9} {'calls':>8}  function"
        )
        for r in result[key]:
            ms = 1e3 * (r["cum_s"] if key == "top_cumulative" else r["self_s"]) / max(samples, 1)
            print(
                f"{r['cum_pct']:6.1f} {r['self_pct']:6.1f} {ms:9.3f} {r['calls']:8d}  {r['function']}"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
