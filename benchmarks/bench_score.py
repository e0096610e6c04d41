"""Throughput of ``train score`` on CPU: galaxies per second through the chunk stage, and in total.

The parent input is the synthetic sky written as seed-layout Parquet (rendered once, not timed);
the model is the CPU preset's architecture (``train/presets/cpu.yaml``) with untrained weights
(speed does not depend on the weights). Each repeat scores the whole file into a fresh output
directory for every ``--workers`` value, alternating within the repeat so that drift of the
machine's load hits all of them alike; the 1-minute load average is recorded before each run.

* ``chunk_stage``: :func:`train.score_chunks.score_chunks` (read, decode, validate, preprocess,
  forward, commit parts): the part that grows with the input;
* ``total``: :func:`train.score.score_parents` (plus assembly, ranking, candidates, the gallery
  of the top 64 and ``summary.json``), i.e. the command without interpreter start-up.

    python benchmarks/bench_score.py --n 512 --repeats 5 --workers 0 1 --json out.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchutil import median, write_json  # noqa: E402


def make_checkpoint(path: Path) -> Path:
    import torch

    from common.configio import to_dict
    from train.checkpoint import CHECKPOINT_VERSION, save_checkpoint
    from train.config import resolve_config
    from train.model import build_model

    cfg = resolve_config(preset="cpu")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    state = {"version": CHECKPOINT_VERSION, "epoch": 0, "step": 0, "model": model.state_dict(),
             "ema": None, "config": to_dict(cfg), "history": []}  # fmt: skip
    return save_checkpoint(state, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="parent galaxies")
    p.add_argument("--row-group", type=int, default=128, help="galaxies per chunk")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json")
    args = p.parse_args()

    from train.score import ScoreOptions, resolve_parents, score_parents
    from train.score_chunks import score_chunks

    tmp = Path(tempfile.mkdtemp(prefix="bench_score_"))
    try:
        overrides = {"input": {"synthetic": {"row_group_size": args.row_group}}}
        spec = resolve_parents(None, tmp / "src", synthetic_n=args.n, overrides=overrides)
        ckpt = make_checkpoint(tmp / "model.pt")
        runs: dict[str, dict[str, list[float]]] = {
            str(w): {"chunk_stage_s": [], "total_s": [], "load1": []} for w in args.workers
        }
        for r in range(args.repeats):
            for w in args.workers:
                opts = ScoreOptions(batch_size=args.batch_size, workers=w, device="cpu",
                                    progress=False)  # fmt: skip
                rec = runs[str(w)]
                rec["load1"].append(os.getloadavg()[0])
                out = tmp / f"stage-{r}-{w}"
                t0 = time.perf_counter()
                res = score_chunks(ckpt, spec, out, opts)
                rec["chunk_stage_s"].append(time.perf_counter() - t0)
                assert res["galaxies_scored_now"] > 0
                out = tmp / f"total-{r}-{w}"
                t0 = time.perf_counter()
                summary = score_parents(ckpt, spec, out, opts)
                rec["total_s"].append(time.perf_counter() - t0)
                n_scored = summary["n_scored"]
        result = {}
        for w, rec in runs.items():
            stage, total = median(rec["chunk_stage_s"]), median(rec["total_s"])
            result[f"workers={w}"] = {
                "chunk_stage_samples_per_s": n_scored / stage,
                "total_samples_per_s": n_scored / total,
                "chunk_stage_s": rec["chunk_stage_s"],
                "total_s": rec["total_s"],
                "load1_before_runs": rec["load1"],
            }
        write_json(args.json, {"n_parents": args.n, "n_scored": n_scored,
                               "row_group": args.row_group, "batch_size": args.batch_size,
                               "repeats": args.repeats, "model": "cpu preset (convnext_atto "
                               "1-1-2-1, 24-192 ch)", "results": result})  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
