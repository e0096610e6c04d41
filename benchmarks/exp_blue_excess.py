"""Experiment (docs/experiments.md): AUC of the single hand-made blue-excess feature.

The feature (:func:`builder.audit_features.blue_excess`) is the g-band light in excess of the
host's colour 0.5-4 arcsec from the centre. This script reads every sample of a dataset (or the
first ``--max-per-split`` of each split) and reports the ROC AUC of that one number separating

* all positives from all controls, with the arc (the stored stamps) and host-only (stored stamp
  minus the stored noiseless arc: needs a ``--with-arcs`` build);
* the LensPop-visible positives (``meta.injection.visible``) from all controls;
* all positives from the controls of each ``family`` (e.g. ``decoy``, ``blue_companion``).

Each AUC comes with its Hanley & McNeil (1982) standard error and the class counts.

Usage::

    python benchmarks/exp_blue_excess.py --shards DIR [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.audit_features import blue_excess  # noqa: E402
from shards.manifest import Manifest  # noqa: E402
from shards.reader import iter_tar_samples  # noqa: E402
from shards.schema import SPLITS  # noqa: E402


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return math.sqrt(max(var, 0.0) / (n_pos * n_neg))


def auc_entry(pos: np.ndarray, neg: np.ndarray) -> dict[str, Any]:
    """AUC of ``pos`` over ``neg`` (higher = positive) with its SE and the counts."""
    if len(pos) == 0 or len(neg) == 0:
        return {"auc": None, "n_pos": len(pos), "n_neg": len(neg)}
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    auc = float(roc_auc_score(y, np.r_[pos, neg]))
    se = hanley_mcneil_se(auc, len(pos), len(neg))
    return {"auc": round(auc, 3), "se": round(se, 3), "n_pos": len(pos), "n_neg": len(neg)}


def read(root: Path, max_per_split: int | None) -> dict[str, list]:
    """Blue excess with and without the arc, label, visibility and family of every sample."""
    manifest = Manifest.load(root / "manifest.json")
    cols: dict[str, list] = defaultdict(list)
    for split in SPLITS:
        n = 0
        for entry in (s for s in manifest.shards if s.split == split):
            for s in iter_tar_samples(str(root / entry.path)):
                if max_per_split is not None and n >= max_per_split:
                    break
                n += 1
                img = s["image"].astype(np.float32)[None]
                arc = s.get("arc")
                host = img if arc is None else img - arc.astype(np.float32)[None]
                meta = s["meta"]
                cols["be"].append(float(blue_excess(img)[0]))
                cols["be_host"].append(float(blue_excess(host)[0]))
                cols["label"].append(int(s["label"]))
                cols["visible"].append(bool((meta.get("injection") or {}).get("visible", False)))
                cols["family"].append(str(meta.get("family")))
                cols["has_arc"].append(arc is not None)
    return cols


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", required=True, help="dataset root (built with --with-arcs)")
    p.add_argument("--max-per-split", type=int, default=None, help="samples read per split")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    c = {k: np.asarray(v) for k, v in read(Path(args.shards), args.max_per_split).items()}
    pos, neg = c["label"] == 1, c["label"] == 0
    out: dict[str, Any] = {
        "shards": str(args.shards),
        "with_arc": auc_entry(c["be"][pos], c["be"][neg]),
        "host_only": auc_entry(c["be_host"][pos], c["be_host"][neg]),
        "visible_with_arc": auc_entry(c["be"][pos & c["visible"]], c["be"][neg]),
        "by_control_family": {
            fam: auc_entry(c["be"][pos], c["be"][neg & (c["family"] == fam)])
            for fam in sorted(set(c["family"][neg]))
        },
        "arcs_stored": bool(c["has_arc"][pos].all()) if pos.any() else False,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
