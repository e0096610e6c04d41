"""CPU training epoch with torch's default threads vs the thread plan, alone and next to a busy process.

Each run is ``train run --preset cpu --epochs 1`` (capped with ``--max-steps-per-epoch``) in a
fresh process; the figure is the epoch time the trainer records (``epoch_time_s`` in
``history.json``: training steps plus validation, no start-up). Configurations alternate within
each repeat, so slow drift of the machine's load hits all of them alike; the load average is
recorded before every run.

    python benchmarks/bench_cpu_epoch.py --n 600 --steps 15 --repeats 5 --json out.json

``default`` sets ``threads`` to the available cores, which is what torch does by itself (one
intra-op thread per core, next to the loader worker); ``plan`` leaves ``threads`` null, so
train/runtime.py gives the loader worker its core and torch the rest.
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
from benchutil import machine, median, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load() -> float:
    return os.getloadavg()[0]


def build(out: Path, n: int) -> None:
    if (out / "manifest.json").exists():
        return
    subprocess.run([str(BIN / "builder"), "make-shards", "--out", str(out), "--n", str(n),
                    "--workers", "1", "--samples-per-shard", "200", "--seed", "5", "--quiet"],
                   check=True, cwd=ROOT)


def epoch(shards: Path, threads: int | None, steps: int) -> float:
    run = Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    try:
        cmd = [str(BIN / "train"), "run", "--shards", str(shards), "--out", str(run / "r"),
               "--preset", "cpu", "--epochs", "1", "--max-steps-per-epoch", str(steps),
               "--no-progress", "--set", f"threads={'null' if threads is None else threads}"]
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
        history = json.loads((run / "r" / "history.json").read_text())
        return float(history[-1]["epoch_time_s"])
    finally:
        shutil.rmtree(run, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="galaxies in the dataset")
    ap.add_argument("--steps", type=int, default=15, help="training steps per epoch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workdir", default="bench-out/epoch-work")
    ap.add_argument("--json")
    args = ap.parse_args()
    shards = Path(args.workdir) / f"shards-{args.n}"
    build(shards, args.n)
    cores = len(os.sched_getaffinity(0))
    configs = {"default": cores, "plan": None}
    times: dict[str, list[float]] = {f"{c}/{k}": [] for k in ("alone", "busy") for c in configs}
    loads: dict[str, list[float]] = {k: [] for k in times}
    for rep in range(args.repeats):
        for competitor in ("alone", "busy"):
            hog = None
            if competitor == "busy":
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                for name, threads in configs.items():
                    key = f"{name}/{competitor}"
                    loads[key].append(round(load(), 2))
                    times[key].append(epoch(shards, threads, args.steps))
                    print(f"rep {rep} {key}: {times[key][-1]:.1f} s (load {loads[key][-1]})",
                          flush=True)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    med = {k: round(median(v), 2) for k, v in times.items()}
    result = {
        "machine": machine(), "cores": cores, "steps": args.steps, "n": args.n,
        "median_epoch_s": med, "runs_s": times, "load_1min": loads,
        "ratio_default_over_plan": {
            k: round(med[f"default/{k}"] / med[f"plan/{k}"], 3) for k in ("alone", "busy")
        },
    }
    print(json.dumps(result["median_epoch_s"]), json.dumps(result["ratio_default_over_plan"]))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
