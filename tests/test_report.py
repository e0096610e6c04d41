"""The demo report: counts and intervals for every operating point, clear error on missing input."""

from __future__ import annotations

from tests.runs import report_inputs
from train.report import build_report, main


def test_report_tables_show_counts_and_intervals(tmp_path):
    shards, run, ev = report_inputs(tmp_path)
    text = build_report(shards, run, ev)
    assert "| train | 4 | 2 | 2 | 1 |" in text  # data table from the manifest
    assert "| 1 | 0.4000 | 0.8000 | 0.250 | 4 / 4 / 4 |" in text  # training history
    rows = [line for line in text.splitlines() if line.startswith("| TPR at FPR")]
    assert len(rows) == 3
    for row in rows:
        assert "/50 |" in row and "allowed of 50" in row and "[" in row  # counts + interval
    assert "low count" in rows[0]  # 1e-4 x 50 negatives < 10 false positives


def test_report_missing_input_is_a_clear_error(tmp_path, capsys):
    shards, run, ev = report_inputs(tmp_path)
    (ev / "metrics.json").unlink()
    code = main(
        [
            "--shards",
            str(shards),
            "--run",
            str(run),
            "--eval",
            str(ev),
            "--out",
            str(tmp_path / "R.md"),
        ]
    )
    assert code == 2
    assert "metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_report_shows_false_positives_per_family_with_counts(tmp_path):
    import json

    import numpy as np

    from train.families import family_fpr

    shards, run, ev = report_inputs(tmp_path)
    labels = np.array([0] * 6 + [1] * 2)
    logits = np.array([3.0, 0.1, 2.5, -1.0, 0.2, -2.0, 4.0, 1.0])
    fams = ["ring", "ring", "spiral", "spiral", "lrg", "lrg", None, None]
    body = json.loads((ev / "metrics.json").read_text())
    body["by_family"] = family_fpr(labels, logits, fams, {"nfp0": 3.5, "nfp10": 0.15})
    (ev / "metrics.json").write_text(json.dumps(body))
    text = build_report(shards, run, ev)
    row = {ln.split(" | ")[0]: ln for ln in text.splitlines() if ln.startswith("| ")}
    assert row["| ring"].startswith("| ring | 2 | 0 of 2 [") and " | 1 of 2 [" in row["| ring"]
    assert " | 3 of 6 [" in row["| all controls"]  # 3.0, 2.5 and 0.2 >= 0.15
