"""Write the demo's one-page report (``python -m train.report``): data, training, test metrics.

Reads the dataset manifest, the run's ``history.json`` and the ``metrics.json`` of ``train eval``;
every operating point is reported with its counts and 95% interval, never as a bare percentage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shards.manifest import Manifest


def _fmt_ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a"


def _op_rows(section: dict[str, Any], kind: str) -> list[str]:
    rows = []
    for target, op in section.items():
        flag = " (fewer than 10 FP: low count)" if op.get("low_count") else ""
        if kind == "tpr":
            rows.append(f"| TPR at FPR {target} | {op['tpr']:.3f} {_fmt_ci(op['tpr_ci95'])} | "
                        f"{op['tp']}/{op['n_pos']} | {op['fp']} found, {op['fp_allowed']} allowed of "
                        f"{op['n_neg']}{flag} |")
        else:
            rows.append(f"| FPR at TPR {target} | {op['fpr']:.2e} {_fmt_ci(op['fpr_ci95'])} | "
                        f"{op['tp']}/{op['n_pos']} | {op['fp']} of {op['n_neg']} |")
    return rows


def metrics_table(metrics: dict[str, Any]) -> str:
    """Markdown table of the operating points of an ``evaluate_scores`` result."""
    lines = ["| metric | value [95% CI] | TP / positives | false positives |", "|---|---|---|---|"]
    lines += _op_rows(metrics.get("tpr_at_fpr", {}), "tpr")
    lines += _op_rows(metrics.get("fpr_at_tpr", {}), "fpr")
    for name in ("tpr0", "tpr10"):
        op = metrics.get(name)
        if isinstance(op, dict):
            lines.append(f"| {name.upper()} | {op['tpr']:.3f} {_fmt_ci(op['tpr_ci95'])} | "
                         f"{op['tp']}/{op['n_pos']} | {op['fp']} |")
    lines.append(f"| AUC | {metrics['auc']:.4f} | {metrics['n_pos']} positives | {metrics['n_neg']} negatives |")
    return "\n".join(lines)


def build_report(shards: Path, run: Path, eval_dir: Path) -> str:
    """The report as Markdown."""
    m = Manifest.load(shards)
    out = ["# Lens-finder demo report", ""]
    out += ["## Data (`builder make-shards`, synthetic sky)", "",
            "| split | samples | hosts (label 1) | controls (label 0) | shards |", "|---|---|---|---|---|"]
    for split, t in m.splits.items():
        out.append(f"| {split} | {t['n_samples']} | {t['n_pos']} | {t['n_neg']} | {t['n_shards']} |")
    rj, inj = m.rejections, m.injection
    out += ["", f"Controls: **{m.controls}** (different galaxies from the hosts). Rejected parents: "
            f"{rj.get('total', 0)} of {rj.get('n_parents', 0)} {rj.get('by_reason', {})}. Injection: "
            f"{inj.get('hosts_accepted', 0)} hosts accepted after {inj.get('draws', 0)} draws, failed draws "
            f"by reason {inj.get('failed_draws_by_reason', {})}.", "",
            "Host/control matching after the acceptance cuts (two-sample KS):", "",
            "| split | r aperture flux D (p) | psfsize_r D (p) | psfdepth_r D (p) |", "|---|---|---|---|"]
    for split, rep in m.matching.items():
        cells = []
        for col in ("r_flux_nmgy", "psfsize_r", "psfdepth_r"):
            c = rep.get(col)
            cells.append(f"{c['ks']:.3f} ({c['p_value']:.2g})" if c else "n/a")
        out.append(f"| {split} | " + " | ".join(cells) + " |")
    history_path = run / "history.json"
    if history_path.is_file():
        hist = json.loads(history_path.read_text())
        epochs = hist["epochs"] if isinstance(hist, dict) else hist
        out += ["", "## Training (`train run`)", "",
                "| epoch | train loss | val AUC | val TPR@FPR1e-3 | samples seen / unique / expected |",
                "|---|---|---|---|---|"]
        for e in epochs:
            val = e.get("val", e)
            out.append(f"| {e.get('epoch')} | {e.get('train_loss', float('nan')):.4f} | "
                       f"{val.get('auc', float('nan')):.4f} | {val.get('tpr@fpr1e-3', float('nan')):.3f} | "
                       f"{e.get('samples_seen')} / {e.get('unique_samples')} / {e.get('expected')} |")
        if (run / "history.png").is_file():
            out += ["", f"![history]({(run / 'history.png').resolve()})"]
    metrics_path = eval_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        metrics = metrics.get("metrics", metrics)
        out += ["", "## Test split (`train eval`, best checkpoint, scores are float32 logits)", "",
                metrics_table(metrics), ""]
        diag = metrics.get("diagnostics", {})
        if diag:
            out.append(
                f"Score diagnostics: {diag.get('n_distinct')} distinct logits for {diag.get('n')} "
                f"samples; top tie group {diag.get('top_tie_size')} sample(s) "
                f"({diag.get('top_tie_n_pos')} pos / {diag.get('top_tie_n_neg')} neg); fraction "
                f"that would saturate to 1.0 as bf16 sigmoid probabilities: "
                f"{diag.get('frac_sigmoid1_bfloat16', 0):.3f} (float32: "
                f"{diag.get('frac_sigmoid1_float32', 0):.3f}).")
        for png in ("roc.png", "score_hist.png", "top_controls.png", "bottom_positives.png"):
            if (eval_dir / png).is_file():
                out.append(f"\n![{png}]({(eval_dir / png).resolve()})")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    text = build_report(args.shards, args.run, args.eval)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
