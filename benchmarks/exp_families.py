"""Experiment (docs/experiments.md): false-positive rate per control family at validation points.

Reads a ``train eval`` output (``scores.parquet``), the evaluated dataset (for each sample's
``family`` when the scores do not carry it: ``meta.family`` of the shards) and the evaluated
checkpoint (its stored validation operating points, :mod:`train.thresholds`). For every stored
operating point (``fpr1e-3``, ``tpr0.85``, ``nfp10`` ...) it reports the TPR of the positives and,
per control family, the false positives, the controls and the FPR with its exact 95%
Clopper-Pearson interval; ``--test-fp K`` adds the threshold with exactly K false positives on
the evaluated set (models compared at the same test FPR). ``train eval`` reports FPR per family
itself once ``train/families.py`` is in; this script gives the same counts from any eval
directory.

Usage::

    python benchmarks/exp_families.py --eval EVAL --shards DIR --checkpoint RUN/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shards.manifest import Manifest  # noqa: E402
from shards.reader import iter_tar_samples  # noqa: E402
from train.checkpoint import load_checkpoint  # noqa: E402
from train.metrics import clopper_pearson  # noqa: E402
from train.thresholds import checkpoint_thresholds  # noqa: E402


def families_from_shards(root: Path, split: str) -> dict[str, str]:
    """``key -> meta.family`` of every sample of ``split``."""
    manifest = Manifest.load(root)
    out = {}
    for entry in manifest.shards:
        if entry.split == split:
            for s in iter_tar_samples(str(root / entry.path)):
                out[s["meta"]["key"]] = str(s["meta"].get("family"))
    return out


def rate(k: int, n: int) -> dict[str, Any]:
    """``k / n`` with its exact 95% interval."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None}
    lo, hi = clopper_pearson(k, n)
    return {
        "k": int(k),
        "n": int(n),
        "rate": round(k / n, 4),
        "ci95": [round(float(lo), 4), round(float(hi), 4)],
    }


def per_family(
    logits: np.ndarray,
    labels: np.ndarray,
    families: np.ndarray,
    thresholds: dict[str, float | None],
) -> dict[str, Any]:
    """TPR and per-family FPR at each threshold (``logit >= t`` is a detection)."""
    out: dict[str, Any] = {}
    pos, neg = labels == 1, labels == 0
    for name, t in thresholds.items():
        t = np.inf if t is None else float(t)
        hit = logits >= t
        row: dict[str, Any] = {"threshold_logit": None if not np.isfinite(t) else round(t, 4)}
        row["tpr"] = rate(int((hit & pos).sum()), int(pos.sum()))
        row["fpr_all"] = rate(int((hit & neg).sum()), int(neg.sum()))
        row["fpr_by_family"] = {
            fam: rate(
                int((hit & neg & (families == fam)).sum()), int((neg & (families == fam)).sum())
            )
            for fam in sorted(set(families[neg]))
        }
        out[name] = row
    return out


def markdown(result: dict[str, Any]) -> str:
    """One table per operating point: family, FP / controls, FPR [95% interval]."""
    lines = []
    for name, row in result["points"].items():
        tpr = row["tpr"]
        lines.append(f"\n{name} (logit >= {row['threshold_logit']}): TPR {tpr['k']}/{tpr['n']}\n")
        lines.append("| family | FP / controls | FPR [95% CI] |\n|---|---|---|")
        for fam, r in [*row["fpr_by_family"].items(), ("all", row["fpr_all"])]:
            ci = r.get("ci95", [None, None])
            lines.append(f"| {fam} | {r['k']} / {r['n']} | {r['rate']} [{ci[0]}, {ci[1]}] |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", required=True, help="train eval output directory (scores.parquet)")
    p.add_argument("--shards", required=True, help="the dataset that was evaluated")
    p.add_argument("--split", default="test", help="the split that was evaluated")
    p.add_argument("--checkpoint", required=True, help="the evaluated checkpoint")
    p.add_argument(
        "--test-fp",
        type=int,
        nargs="*",
        default=[],
        help="also: thresholds giving exactly K false positives on the evaluated set (a matched "
        "test FPR, to compare models whose validation points differ)",
    )
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    table = pq.read_table(Path(args.eval) / "scores.parquet").to_pydict()
    if "family" in table:
        families = np.asarray([str(f) for f in table["family"]])
        source = "scores.parquet"
    else:
        fam = families_from_shards(Path(args.shards), args.split)
        families = np.asarray([fam[k] for k in table["key"]])
        source = "shard metadata"
    thresholds = checkpoint_thresholds(load_checkpoint(args.checkpoint))
    logits, labels = np.asarray(table["logit"], dtype=np.float64), np.asarray(table["label"])
    neg_sorted = np.sort(logits[labels == 0])[::-1]
    for k in args.test_fp:  # thresholds at k false positives on the evaluated set itself
        thresholds[f"test_nfp{k}"] = float(neg_sorted[k]) + 1e-6 if k < len(neg_sorted) else None
    result = {
        "eval": str(args.eval),
        "checkpoint": str(args.checkpoint),
        "family_from": source,
        "points": per_family(logits, labels, families, thresholds),
    }
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
