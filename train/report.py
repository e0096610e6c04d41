"""One-page run report (``train report``): data, training, test metrics, figures.

Reads the dataset manifest, the run's ``history.json`` and the ``metrics.json`` of ``train eval``;
every operating point is reported with its counts and 95% interval, never as a bare percentage.
The header names the real input (from the manifest), and figures are linked by paths relative to
the report, so the report and its run directories can be moved or published together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shards.manifest import Manifest, ManifestError
from train.metrics import HEADLINE_METRIC, OPERATING_POINTS, get_metric, metric_key


def _fmt_ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a"


def _op_row(op: dict[str, Any]) -> str:
    """One table row of an operating point (label from the metric table, counts, interval)."""
    kind = op["kind"]
    name = get_metric(metric_key(kind, op["target"])).label
    if OPERATING_POINTS[kind].value == "fpr":
        return (
            f"| {name} | {op['fpr']:.2e} {_fmt_ci(op['fpr_ci95'])} | "
            f"{op['tp']}/{op['n_pos']} | {op['fp']} of {op['n_neg']} |"
        )
    if kind == "tpr_at_fpr":
        flag = " (fewer than 10 FP: low count)" if op.get("low_count") else ""
        found = f"{op['fp']} found, {op['fp_allowed']} allowed of {op['n_neg']}{flag}"
    else:
        found = f"{op['fp']}"
    return f"| {name} | {op['tpr']:.3f} {_fmt_ci(op['tpr_ci95'])} | {op['tp']}/{op['n_pos']} | {found} |"


def metrics_table(metrics: dict[str, Any]) -> str:
    """Markdown table of the operating points of an ``evaluate_scores`` result."""
    lines = ["| metric | value [95% CI] | TP / positives | false positives |", "|---|---|---|---|"]
    for kind, op in OPERATING_POINTS.items():
        if op.nested:
            points = list(metrics.get(kind, {}).values())
        else:
            points = [v for v in metrics.values() if isinstance(v, dict) and v.get("kind") == kind]
        lines += [_op_row(point) for point in points]
    lines.append(
        f"| AUC | {metrics['auc']:.4f} | {metrics['n_pos']} positives | {metrics['n_neg']} negatives |"
    )
    return "\n".join(lines)


def family_table(by_family: dict[str, Any]) -> str:
    """Markdown table of ``metrics.json`` -> ``by_family``: false positives per control family
    at each operating point, as ``k of n`` with the rate's 95% interval."""
    points = list(by_family["all"]["points"])
    lines = [
        "| control family | controls | " + " | ".join(f"FP at {p}" for p in points) + " |",
        "|---|---|" + "---|" * len(points),
    ]
    groups = {**by_family["families"], "all controls": by_family["all"]}
    for name, g in groups.items():
        cells = [
            f"{g['points'][p]['n_fp']} of {g['n']} {_fmt_ci(g['points'][p]['fpr_ci95'])}"
            for p in points
        ]
        lines.append(f"| {name} | {g['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _required(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"report input missing: {path}")
    return path


def input_description(m: Manifest) -> str:
    """What the dataset was built from, in words (from its manifest)."""
    kind = m.config.get("input", {}).get("kind") or m.source.get("kind", "unknown")
    if kind == "synthetic":
        n = m.config.get("input", {}).get("synthetic", {}).get("n_parents")
        return f"the built-in synthetic sky ({n} parents, seed {m.seed})"
    name = m.source.get("path", "?")
    return f"{kind} input `{name}` ({m.source.get('bytes', 0) / 1e6:.1f} MB)"


def _link(target: Path, base: Path | None) -> str:
    """``target`` relative to the report's directory ``base`` (absolute when no base)."""
    if base is None:
        return str(target.resolve())
    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def build_report(shards: Path, run: Path, eval_dir: Path, base: Path | None = None) -> str:
    """The report as Markdown; image links relative to ``base`` (the report's directory)."""
    m = Manifest.load(shards)
    source = input_description(m)
    out = [f"# Lens-finder report: {source}", ""]
    out += [
        f"## Data (`builder make-shards`, {source})",
        "",
        "| split | samples | hosts (label 1) | controls (label 0) | shards |",
        "|---|---|---|---|---|",
    ]
    for split, t in m.splits.items():
        out.append(
            f"| {split} | {t['n_samples']} | {t['n_pos']} | {t['n_neg']} | {t['n_shards']} |"
        )
    rj, inj = m.rejections, m.injection
    out += [
        "",
        f"Controls: **{m.controls}** (different galaxies from the hosts). Rejected parents: "
        f"{rj.get('total', 0)} of {rj.get('n_parents', 0)} {rj.get('by_reason', {})}. Injection: "
        f"{inj.get('hosts_accepted', 0)} hosts accepted after {inj.get('draws', 0)} draws, failed draws "
        f"by reason {inj.get('failed_draws_by_reason', {})}.",
        "",
        "Host/control matching after the acceptance cuts (two-sample KS):",
        "",
        "| split | r aperture flux D (p) | psfsize_r D (p) | psfdepth_r D (p) |",
        "|---|---|---|---|",
    ]
    for split, rep in m.matching.items():
        cells = []
        for col in ("r_flux_nmgy", "psfsize_r", "psfdepth_r"):
            c = rep.get(col)
            cells.append(f"{c['ks']:.3f} ({c['p_value']:.2g})" if c else "n/a")
        out.append(f"| {split} | " + " | ".join(cells) + " |")
    history = json.loads(_required(run / "history.json").read_text())  # one record per epoch
    train_loss, auc, headline = (get_metric(n) for n in ("train_loss", "auc", HEADLINE_METRIC))
    out += [
        "",
        "## Training (`train run`)",
        "",
        f"| epoch | {train_loss.label} | val {auc.label} | val {headline.label} | "
        "samples seen / unique / expected |",
        "|---|---|---|---|---|",
    ]
    for e in history:
        out.append(
            f"| {e['epoch']} | {train_loss.format(e['train_loss'])} | "
            f"{auc.format(e['val']['auc'])} | {headline.format(e['val'][HEADLINE_METRIC])} | "
            f"{e['samples_seen']} / {e['unique_samples']} / {e['expected']} |"
        )
    if (run / "history.png").is_file():
        out += ["", f"![history]({_link(run / 'history.png', base)})"]
    eval_report = json.loads(_required(eval_dir / "metrics.json").read_text())
    metrics = eval_report["metrics"]
    out += [
        "",
        "## Test split (`train eval`, best checkpoint, scores are float32 logits)",
        "",
        metrics_table(metrics),
        "",
    ]
    diag = metrics["diagnostics"]
    out.append(
        f"Score diagnostics: {diag['n_distinct']} distinct logits for {diag['n']} samples; top "
        f"tie group {diag['top_tie_size']} sample(s) ({diag['top_tie_n_pos']} pos / "
        f"{diag['top_tie_n_neg']} neg); fraction that would saturate to 1.0 as bf16 sigmoid "
        f"probabilities: {diag['frac_sigmoid1_bfloat16']:.3f} (float32: "
        f"{diag['frac_sigmoid1_float32']:.3f})."
    )
    by_family = eval_report.get("by_family")
    if by_family and by_family.get("families"):
        out += [
            "",
            "False positives per control family (thresholds from the "
            f"{by_family['threshold_source']} operating points; 95% intervals):",
            "",
            family_table(by_family),
        ]
    pngs = ["roc.png", "score_hist.png", "top_controls.png", "top_controls_by_family.png"]
    pngs += ["bottom_positives.png", *sorted(p.name for p in eval_dir.glob("selection_*.png"))]
    if (eval_dir / "selection.json").is_file():
        out.append(
            f"\nSelection function (recall binned by theta_E, source magnitude, arc S/N, "
            f"seeing): [`selection.json`]({_link(eval_dir / 'selection.json', base)})."
        )
    for png in pngs:
        if (eval_dir / png).is_file():
            out.append(f"\n![{png}]({_link(eval_dir / png, base)})")
    return "\n".join(out) + "\n"


def add_report_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of ``train report`` (also ``python -m train.report``)."""
    ap.add_argument("--shards", type=Path, required=True, help="dataset root (manifest.json)")
    ap.add_argument("--run", type=Path, required=True, help="run directory of `train run`")
    ap.add_argument("--eval", type=Path, required=True, help="output directory of `train eval`")
    ap.add_argument("--out", type=Path, required=True, help="report file to write (Markdown)")


def write_report(args: argparse.Namespace) -> int:
    """Write the report named by ``args``; 2 with one line on stderr if an input is missing."""
    try:
        text = build_report(args.shards, args.run, args.eval, base=args.out.parent)
    except (FileNotFoundError, ManifestError) as exc:
        print(f"train: report: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"report written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_report_arguments(ap)
    return write_report(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
