"""``train score``: one row per valid parent, training preprocessing, kill/resume, thresholds,
known-lens recovery, candidates and gallery."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from builder.parents.base import ParentRecord
from builder.parents.parquet_writer import write_parents_parquet
from shards.schema import CATALOG_FIELDS, SAFE_MODEL_METADATA
from tests.datasets import fake_image
from tests.runs import tiny_config
from train.checkpoint import eval_weights, load_checkpoint
from train.cli import main
from train.config import config_from_dict
from train.model import build_model
from train.preprocess import normalize
from train.score import ScoreOptions, resolve_parents, score_parents
from train.thresholds import checkpoint_thresholds
from train.trainer import run

N_GOOD = 36
ROW_GROUP = 8  # 39 rows -> 5 chunks
REPO = Path(__file__).resolve().parents[1]


def catalog(i: int) -> dict[str, float]:
    cat = {"ra": 150.0 + 0.01 * i, "dec": 2.0 + 0.002 * i}
    cat.update({f"psfsize_{b}": 1.2 + 0.05 * k for k, b in enumerate("grz")})
    cat.update({f"psfdepth_{b}": 300.0 + 10 * i for b in "grz"})
    return cat


def parent_records(seed: int = 1) -> tuple[list[ParentRecord], dict[str, str]]:
    """36 good parents (every third with a ring), then three bad rows and their reasons."""
    rng = np.random.default_rng(seed)
    recs = [
        ParentRecord(f"p{i:03d}", fake_image(rng, int(i % 3 == 0), 1.0), catalog(i), "t")
        for i in range(N_GOOD)
    ]
    nan = fake_image(rng, 0)
    nan[1, 3, 3] = np.nan
    bad = {"nanpix": "nonfinite_pixels", "wide_psf": "bad_psfsize", "p005": "duplicate_galaxy_id"}
    recs.insert(10, ParentRecord("nanpix", nan, catalog(40), "t"))
    recs.insert(20, ParentRecord("wide_psf", fake_image(rng, 0), {**catalog(41), "psfsize_r": 9.0}, "t"))  # fmt: skip
    recs.append(ParentRecord("p005", fake_image(rng, 0), catalog(42), "t"))  # same id as row 5
    return recs, bad


@pytest.fixture(scope="module")
def ckpt(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run(tiny_config(epochs=1), dataset, run_dir)
    return run_dir / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recs, _ = parent_records()
    family = {"family": lambda r: "ring" if r.stamp_nmgy[0, 31, 39] > 0.5 else "lrg"}
    path = tmp_path_factory.mktemp("p") / "parents.parquet"
    return write_parents_parquet(path, recs, ROW_GROUP, extra_columns=family)


def score_argv(ckpt: Path, parents: Path, out: Path, *extra: str) -> list[str]:
    return [
        "score", "--checkpoint", str(ckpt), "--parents", str(parents), "--out", str(out),
        "--device", "cpu", "--batch-size", "5", "--no-progress", "--top", "10",
        "--gallery", "6", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def scored(ckpt: Path, parents: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scored")
    assert main(score_argv(ckpt, parents, out)) == 0
    return out


def test_one_row_per_valid_parent_and_every_bad_one_rejected(scored: Path) -> None:
    recs, bad = parent_records()
    table = pq.read_table(scored / "scores.parquet").to_pydict()
    good = [f"p{i:03d}" for i in range(N_GOOD)]
    assert table["galaxy_id"] == good  # input order, each once
    rejects = [json.loads(ln) for ln in (scored / "rejects.jsonl").read_text().splitlines()]
    assert {r["galaxy_id"]: r["reason"] for r in rejects} == bad
    assert len(table["galaxy_id"]) + len(rejects) == len(recs)
    dup = next(r for r in rejects if r["reason"] == "duplicate_galaxy_id")
    assert dup["location"].endswith(f"row={(len(recs) - 1) % ROW_GROUP}")
    summary = json.loads((scored / "summary.json").read_text())
    assert summary["n_scored"] == N_GOOD and summary["n_rejected"] == 3
    assert summary["rejected_by_reason"] == {r: 1 for r in bad.values()}
    assert summary["n_chunks"] == 5 and summary["chunks_scored"] == 5
    for f in CATALOG_FIELDS:  # catalogue columns kept
        assert table[f] == pytest.approx([catalog(i)[f] for i in range(N_GOOD)])
    ringed = ["ring" if i % 3 == 0 else "lrg" for i in range(N_GOOD)]
    assert table["family"] == ringed  # descriptive parent columns kept
    logit = np.array(table["logit"])
    assert np.array(table["probability"]) == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-6)
    assert sorted(table["rank"]) == list(range(1, N_GOOD + 1))
    assert np.all(np.diff(logit[np.argsort(table["rank"])]) <= 0)  # rank 1 = highest logit


def test_scores_equal_the_model_on_the_training_preprocessing(ckpt: Path, scored: Path) -> None:
    recs, _ = parent_records()
    ck = load_checkpoint(ckpt)
    cfg = config_from_dict(ck["config"])
    model = build_model(cfg.model)
    model.load_state_dict(eval_weights(ck))
    model.eval()
    good = [r for r in recs[: N_GOOD + 2] if r.galaxy_id not in ("nanpix", "wide_psf")]
    images = normalize(np.stack([r.stamp_nmgy for r in good]), cfg.data.preprocess)
    meta = np.array([[r.catalog[f] for f in SAFE_MODEL_METADATA] for r in good], np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(images), torch.from_numpy(meta)).numpy()
    got = pq.read_table(scored / "scores.parquet").column("logit").to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # the scorer separates the ringed parents (every third) as the model learnt to
    ringed = np.arange(N_GOOD) % 3 == 0
    assert got[ringed].mean() > got[~ringed].mean()


def test_candidates_and_gallery_show_the_top_ranked(scored: Path) -> None:
    table = pq.read_table(scored / "scores.parquet").to_pydict()
    order = np.argsort(table["rank"])
    with open(scored / "candidates.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["galaxy_id"] for r in rows] == [table["galaxy_id"][i] for i in order[:10]]
    assert [int(r["rank"]) for r in rows] == list(range(1, 11))
    assert (scored / "gallery" / "top.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (scored / "gallery" / "index.html").read_text()
    for r in rows[:6]:
        assert r["galaxy_id"] in page
    assert rows[6]["galaxy_id"] not in page
    assert len(list((scored / "gallery" / "thumbs").glob("*.png"))) == 6


def test_threshold_is_the_stored_validation_operating_point(
    ckpt: Path, dataset: Path, parents: Path, scored: Path, tmp_path: Path
) -> None:
    stored = checkpoint_thresholds(load_checkpoint(ckpt))
    assert set(stored) >= {"fpr1e-4", "fpr1e-3", "fpr1e-2", "tpr0.50", "tpr0.85", "nfp10"}
    # train eval on the validation split recomputes the same operating point independently
    ev = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(ckpt), "--shards", str(dataset), "--split", "val"]
    assert main([*argv, "--out", str(ev), "--device", "cpu", "--no-progress"]) == 0
    point = json.loads((ev / "metrics.json").read_text())["metrics"]["fpr_at_tpr"]["0.85"]
    assert stored["tpr0.85"] == pytest.approx(point["threshold"], abs=1e-5)
    assert main(score_argv(ckpt, parents, scored, "--threshold", "tpr0.85")) == 0
    summary = json.loads((scored / "summary.json").read_text())
    logit = pq.read_table(scored / "scores.parquet").column("logit").to_numpy()
    n_above = int((logit >= stored["tpr0.85"]).sum())
    assert summary["chunks_scored"] == 0 and summary["chunks_skipped"] == 5  # nothing rescored
    assert summary["threshold"] == "tpr0.85" and summary["n_candidates"] == n_above
    assert summary["operating_points"]["tpr0.85"]["n_selected"] == n_above
    with open(scored / "candidates.csv") as fh:
        assert sum(1 for _ in fh) == n_above + 1
    assert main(score_argv(ckpt, parents, scored, "--threshold", "fpr7e-3")) == 2  # not stored


def test_killed_run_resumes_without_rescoring_or_duplicates(
    ckpt: Path, parents: Path, scored: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "train.cli", *score_argv(ckpt, parents, out)]
    env = {**os.environ, "BUILDER_CRASH_AFTER_SCORE_CHUNKS": "2"}
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    parts = sorted((out / "parts").glob("chunk-*.parquet"))
    assert [p.name for p in parts] == ["chunk-000000.parquet", "chunk-000001.parquet"]
    assert not (out / "scores.parquet").exists()
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    assert main(score_argv(ckpt, parents, out)) == 0
    assert {p: p.stat().st_mtime_ns for p in parts} == stamps  # finished chunks not rescored
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["chunks_skipped"], summary["chunks_scored"]) == (2, 3)
    resumed = pq.read_table(out / "scores.parquet").to_pydict()
    clean = pq.read_table(scored / "scores.parquet").to_pydict()
    assert len(set(resumed["galaxy_id"])) == len(resumed["galaxy_id"]) == N_GOOD
    assert resumed == clean
    assert (out / "rejects.jsonl").read_text() == (scored / "rejects.jsonl").read_text()


def test_output_of_another_input_is_refused(ckpt: Path, scored: Path, tmp_path: Path) -> None:
    recs, _ = parent_records(seed=2)
    other = write_parents_parquet(tmp_path / "other.parquet", recs[:12], ROW_GROUP)
    assert main(score_argv(ckpt, other, scored)) == 2
    assert len(list((scored / "parts").glob("chunk-*.parquet"))) == 5  # untouched


def test_known_lens_recovery_counts_and_ranks(ckpt: Path, parents: Path, scored: Path) -> None:
    table = pq.read_table(scored / "scores.parquet").to_pydict()
    by_rank = {r: i for i, r in enumerate(table["rank"])}
    top, mid, low = by_rank[1], by_rank[N_GOOD // 2], by_rank[N_GOOD]
    csv_path = scored.parent / "known.csv"
    lines = ["name,RA,Dec,grade"]
    for name, i, ddec in (("A", top, 0.0), ("B", mid, 1.0 / 3600), ("C", low, 0.5 / 3600)):
        lines.append(f"{name},{table['ra'][i]},{table['dec'][i] + ddec},confident")
    lines.append("far,10.0,-50.0,probable")  # outside the scored sample
    csv_path.write_text("\n".join(lines) + "\n")
    cut = table["logit"][mid]  # recovers A and B, not C
    spec = resolve_parents(parents, scored)
    summary = score_parents(
        ckpt, spec, scored, ScoreOptions(batch_size=5, device="cpu", progress=False),
        threshold=str(cut), known_lenses=csv_path, match_radius_arcsec=1.5,
    )  # fmt: skip
    kl = summary["known_lenses"]
    assert (kl["n_known"], kl["n_matched"], kl["n_unmatched"]) == (4, 3, 1)
    assert kl["ranks"] == [1, N_GOOD // 2, N_GOOD]
    at = kl["at_threshold"][summary["threshold"]]
    assert at["n_recovered"] == 2 and at["fraction"] == pytest.approx(2 / 3)
    lo, hi = at["interval_95"]
    assert lo < 2 / 3 < hi
    assert kl["at_threshold"]["nfp0"]["n_recovered"] == int(
        sum(table["logit"][i] >= summary["operating_points"]["nfp0"]["logit"] for i in (top, mid, low))
    )  # fmt: skip
    with open(scored / "known_lenses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["galaxy_id"] for r in rows] == [table["galaxy_id"][i] for i in (top, mid, low)] + [""]
    assert [r[f"recovered_{summary['threshold']}"] for r in rows] == ["1", "1", "0", "0"]
    assert float(rows[1]["sep_arcsec"]) == pytest.approx(1.0, abs=1e-3)


def test_api_score_resumes_the_cli_output(ckpt: Path, parents: Path, scored: Path) -> None:
    from train import api

    summary = api.score(
        ckpt, scored, parents=parents, batch_size=5, device="cpu", top_n=10, gallery_n=6
    )
    assert (summary["chunks_skipped"], summary["chunks_scored"]) == (5, 0)
    table = api.load_scores(scored)
    assert table.column("galaxy_id").to_pylist() == [f"p{i:03d}" for i in range(N_GOOD)]


@pytest.mark.slow
def test_api_build_train_score_end_to_end(tmp_path: Path) -> None:
    from tests.runs import tiny_overrides
    from train import api

    manifest = api.build(
        tmp_path / "shards", n_synthetic=160, overrides=["output.samples_per_shard=16"]
    )
    assert manifest.status == "complete"
    result = api.train(tmp_path / "shards", tmp_path / "run", overrides=tiny_overrides(epochs=1))
    assert result.epochs_done == 1
    summary = api.score(
        tmp_path / "run" / "checkpoints" / "best.pt", tmp_path / "scores", synthetic=24,
        overrides=["input.synthetic.row_group_size=10"], device="cpu", threshold="fpr1e-2",
    )  # fmt: skip
    assert summary["n_chunks"] == 3 and summary["n_scored"] + summary["n_rejected"] == 24
    assert len(api.load_scores(tmp_path / "scores")) == summary["n_scored"]
