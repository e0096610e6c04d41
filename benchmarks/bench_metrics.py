"""Benchmark: tie-aware ROC and every operating point on a full-size validation set.

Times :func:`train.metrics.evaluate_scores` (one ROC, AUC, 3 tpr@fpr, 3 fpr@tpr, TPR0, TPR10,
diagnostics) and :func:`train.metrics.roc` alone on ``--n`` random float32 logits, a quarter of
them rounded to 0.1 so that ties are plentiful. Reports the median of ``--repeats`` runs.

Usage::

    python benchmarks/bench_metrics.py --n 1300000 --repeats 5 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from train.metrics import evaluate_scores, roc


def make_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random labels and float32 logits (positives shifted by +3), a quarter heavily tied."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = (rng.normal(size=n) * 2 + 3 * labels).astype(np.float32)
    tied = rng.random(n) < 0.25
    logits[tied] = np.round(logits[tied], 1)
    return logits, labels


def time_it(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print (and optionally write) a JSON report.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The report.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_300_000, help="number of scores")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    logits, labels = make_scores(args.n)
    runs = {
        "roc": time_it(lambda: roc(logits, labels), args.repeats),
        "evaluate_scores": time_it(lambda: evaluate_scores(logits, labels), args.repeats),
    }
    curve = roc(logits, labels)
    report = {
        "n": args.n,
        "n_distinct": curve.n_distinct,
        "repeats": args.repeats,
        "median_s": {k: statistics.median(v) for k, v in runs.items()},
        "min_s": {k: min(v) for k, v in runs.items()},
        "runs_s": runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
