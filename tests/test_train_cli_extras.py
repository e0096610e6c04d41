"""``train dump-config`` (commented, loadable, round-trips) and ``train report`` (relative links)."""

from __future__ import annotations

import yaml

from common.configio import to_dict
from common.yamldoc import field_docs
from tests.runs import report_inputs
from train.cli import main
from train.config import TrainConfig, resolve_config
from train.data import DataConfig


def test_dump_config_is_commented_and_round_trips(capsys, tmp_path) -> None:
    assert main(["dump-config", "--preset", "cpu", "--set", "optim.lr=1e-3"]) == 0
    text = capsys.readouterr().out
    want = resolve_config(preset="cpu", overrides={"optim": {"lr": 1e-3}})
    assert yaml.safe_load(text) == to_dict(want)
    assert "# Total epochs" in text and "# Samples per batch" in text
    path = tmp_path / "train.yaml"
    path.write_text(text)
    again = resolve_config(config_file=path)
    assert to_dict(again) == to_dict(want)


def test_field_docs_read_numpydoc_attributes() -> None:
    docs = field_docs(TrainConfig)
    assert docs["epochs"].startswith("Total epochs")
    assert "worker" in field_docs(DataConfig)["num_workers"]


def test_report_subcommand_writes_relative_links_and_names_the_input(tmp_path, capsys) -> None:
    shards, run, ev = report_inputs(tmp_path)
    (run / "history.png").write_bytes(b"png")
    (ev / "roc.png").write_bytes(b"png")
    out = tmp_path / "site" / "REPORT.md"
    args = ["report", "--shards", str(shards), "--run", str(run), "--eval", str(ev)]
    assert main([*args, "--out", str(out)]) == 0
    text = out.read_text()
    assert "](../run/history.png)" in text and "](../eval/roc.png)" in text
    assert str(tmp_path) not in text  # no absolute paths
    assert text.splitlines()[0].startswith("# Lens-finder report: ")


def test_selection_edges_flag_parses_and_refuses_bad_pairs(tmp_path, capsys):
    from train.cli import parse_edges

    assert parse_edges(["theta_e_arcsec=0.5,1,2", "psfsize_r=1,1.5"]) == {
        "theta_e_arcsec": [0.5, 1.0, 2.0],
        "psfsize_r": [1.0, 1.5],
    }
    argv = ["eval", "--checkpoint", str(tmp_path / "none.pt"), "--shards", str(tmp_path),
            "--out", str(tmp_path / "ev"), "--selection-edges", "theta_e_arcsec=1,two"]  # fmt: skip
    assert main(argv) == 2
    assert "selection_edges" in capsys.readouterr().err
