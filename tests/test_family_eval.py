"""FPR per control family at the validation operating points (``metrics.json`` -> ``by_family``),
the per-family grid, the typed selection columns of ``scores.parquet`` (eval and score parts),
and the whole path of ``train eval`` (:func:`train.evaluate.evaluate_checkpoint`) on a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binomtest

from common.configio import ConfigError
from shards.manifest import Manifest, ShardEntry
from shards.schema import CATALOG_FIELDS, SPLITS, make_key, shard_name
from shards.writer import Sample, write_shard
from tests.datasets import fake_image
from tests.runs import tiny_config
from train.checkpoint import load_checkpoint
from train.eval_breakdowns import FAMILY_GRID_NAME, SELECTION_NAME
from train.eval_inputs import eval_operating_points, typed_array
from train.families import UNLABELLED, family_fpr, plot_family_grid, top_controls_by_family
from train.metrics import evaluate_scores
from train.score_chunks import part_path
from train.selection_plots import CURVES_NAME, grid_name
from train.thresholds import checkpoint_thresholds
from train.trainer import run

PNG = b"\x89PNG\r\n\x1a\n"


def exact_ci(k: int, n: int) -> list[float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return [ci.low, ci.high]


# ----------------------------------------------------------------------- constructed example
LABELS = np.array([0] * 10 + [1] * 3)
LOGITS = np.array([5.0, 3.0, -1.0, 2.0, 2.0, -4.0, 0.5, 7.0, -2.0, 1.0, 9.0, 9.0, 9.0])
FAMILIES = ["ring", "ring", "ring", "spiral", "spiral", "lrg", None, "", "decoy", None]
FAMILIES += ["ring", "lrg", None]  # positives' families never count as false positives
POINTS = {"a": 2.0, "b": 0.5, "none": math.inf}


def test_family_counts_exact_on_a_constructed_example() -> None:
    got = family_fpr(LABELS, LOGITS, FAMILIES, POINTS)
    fams = got["families"]
    assert list(fams) == ["decoy", "lrg", "ring", "spiral", UNLABELLED]  # unlabelled last
    assert {f: g["n"] for f, g in fams.items()} == {
        "decoy": 1, "lrg": 1, "ring": 3, "spiral": 2, UNLABELLED: 3
    }  # fmt: skip
    # threshold 2.0: ring 5, 3 -> 2; spiral 2, 2 (ties at the threshold count) -> 2; unlabelled 7
    assert {f: g["points"]["a"]["n_fp"] for f, g in fams.items()} == {
        "decoy": 0, "lrg": 0, "ring": 2, "spiral": 2, UNLABELLED: 1
    }  # fmt: skip
    assert {f: g["points"]["b"]["n_fp"] for f, g in fams.items()} == {
        "decoy": 0, "lrg": 0, "ring": 2, "spiral": 2, UNLABELLED: 3
    }  # fmt: skip
    assert all(g["points"]["none"]["n_fp"] == 0 for g in fams.values())
    assert got["thresholds"]["none"] is None  # +inf: selects nothing, strict JSON
    assert got["n_controls"] == 10 == sum(g["n"] for g in fams.values()) == got["all"]["n"]
    assert got["all"]["points"]["a"]["n_fp"] == 5
    ring = fams["ring"]["points"]["a"]
    assert ring["fpr"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(ring["fpr_ci95"], exact_ci(2, 3), rtol=1e-9)
    assert fams["lrg"]["points"]["a"]["fpr_ci95"][0] == 0.0
    assert fams[UNLABELLED]["max_logit"] == 7.0


def test_top_controls_by_family_and_grid(tmp_path: Path) -> None:
    groups = top_controls_by_family(LABELS, LOGITS, FAMILIES, 2)
    assert {f: list(i) for f, i in groups.items()} == {
        "decoy": [8], "lrg": [5], "ring": [0, 1], "spiral": [3, 4], UNLABELLED: [7, 9]
    }  # fmt: skip
    keys = [f"k{i}" for i in range(len(LABELS))]
    rng = np.random.default_rng(0)
    seen: list[list[str]] = []

    def load(wanted: list[str]) -> dict:
        seen.append(wanted)
        return {k: {"image": fake_image(rng, 0), "meta": {"galaxy_id": k}} for k in wanted}

    path = plot_family_grid(groups, keys, LOGITS, load, tmp_path / "grid.png", "t")
    assert path.read_bytes()[:8] == PNG
    assert seen == [["k8", "k5", "k0", "k1", "k3", "k4", "k7", "k9"]]  # one read, in row order
    assert plot_family_grid({}, keys, LOGITS, load, tmp_path / "none.png", "t") is None


def test_operating_points_from_validation_else_the_split() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 200)
    metrics = evaluate_scores(rng.normal(size=400) + labels, labels)
    stored = {"fpr1e-4": None, "fpr1e-3": 1.5, "nfp0": 2.5, "nfp10": 0.5, "tpr0.85": 0.1}
    points, source = eval_operating_points(stored, metrics)
    assert source == "validation"
    assert points == {"fpr1e-4": math.inf, "fpr1e-3": 1.5, "nfp0": 2.5, "nfp10": 0.5}
    points, source = eval_operating_points({}, metrics)
    assert source == "eval split"
    assert points["nfp10"] == pytest.approx(metrics["tpr10"]["threshold"])


def test_typed_columns() -> None:
    assert typed_array("theta_e_arcsec", [1, None, float("nan")]).to_pylist() == [1.0, None, None]
    assert typed_array("visible", [True, "false", None, 1]).to_pylist() == [True, False, None, True]
    assert typed_array("family", ["ring", None]).type == pa.string()
    with pytest.raises(ValueError, match="'visible'"):
        typed_array("visible", ["maybe"])


def test_score_parts_type_the_selection_columns(tmp_path: Path) -> None:
    from train.score_chunks import _write_part

    n = 3
    batch = {
        "galaxy_id": ["a", "b", "c"],
        "logit": np.array([0.1, 0.2, 0.3], np.float32),
        "location": ["t"] * n,
        "row": np.arange(n, dtype=np.int32),
        "catalog": {f: np.ones(n) for f in CATALOG_FIELDS},
        "parent_meta": [
            {"family": "ring", "extra": {"theta_e_arcsec": 1, "visible": "true", "z": 7}},
            {"family": None, "extra": {"theta_e_arcsec": 2.5, "visible": "false", "z": 8}},
            {"extra": {"z": 9}},
        ],
    }
    (tmp_path / "parts").mkdir()
    assert _write_part(tmp_path, 0, [batch], []) == n
    t = pq.read_table(part_path(tmp_path, 0))
    assert t.schema.field("theta_e_arcsec").type == pa.float64()  # int as read -> float64
    assert t.schema.field("visible").type == pa.bool_()
    assert t.schema.field("family").type == pa.string()
    assert t.schema.field("z").type == pa.int64()  # other extras stay as read
    assert t.column("visible").to_pylist() == [True, False, None]
    assert t.column("family").to_pylist() == ["ring", None, None]
    bad = {**batch, "parent_meta": [{"extra": {"visible": "perhaps"}}] * n}
    with pytest.raises(ConfigError, match="visible"):
        _write_part(tmp_path, 1, [bad], [])


# -------------------------------------------------------------------- through `train eval`
CONTROL_FAMILIES = ("lrg", "ring", "spiral", None)
SIZES = {"train": (7, 6), "val": (7, 6), "test": (8, 9, 9)}


def _meta(gid: str, split: str, label: int, j: int) -> dict:
    cat = {k: 0.0 for k in CATALOG_FIELDS}
    cat.update({f"psfsize_{b}": 1.0 + 0.1 * (j % 8) for b in "grz"})
    cat.update({f"psfdepth_{b}": 300.0 for b in "grz"})
    meta = {"galaxy_id": gid, "split": split, "label": label, **cat}
    meta["role"] = "host" if label else "control"
    family = CONTROL_FAMILIES[(j // 2) % len(CONTROL_FAMILIES)]
    if family is not None:
        meta["family"] = family
    if label and j % 7 == 3:  # a known lens: no injection parameters
        meta.update(kind="real", grade="A")
    elif label:
        meta["kind"] = "injected"
        meta["injection"] = {
            "theta_e_arcsec": 0.6 + 0.2 * (j % 12),
            "source_mag_r": 22.0 + 0.3 * (j % 13),
            "vis_snr": 5.0 + 7.0 * (j % 9),
            "arc_snr": 10.0 + 9.0 * (j % 9),
            "visible": bool(j % 3),
        }
    return meta


def write_family_dataset(root: Path) -> Path:
    """A tiny learnable dataset whose samples carry families, injections and real lenses."""
    rng = np.random.default_rng(0)
    manifest = Manifest(seed=0, status="complete", config={"tiny": True})
    gid = 0
    for split in SPLITS:
        for index, n in enumerate(SIZES[split]):
            samples = []
            for j in range(n):
                label = (gid + j) % 2
                name = f"fam{gid + j:06d}"
                meta = _meta(name, split, label, gid + j)
                samples.append(Sample(make_key(name), fake_image(rng, label, 1.0), meta, label))
            gid += n
            info = write_shard(root / shard_name(split, index), samples)
            manifest.shards.append(ShardEntry.from_info(info, split, index, root))
    manifest.recompute_splits()
    manifest.save(root)
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A one-epoch tiny run; its final test evaluation is :func:`train.evaluate.
    evaluate_checkpoint` of the best checkpoint, exactly what ``train eval`` runs (a second
    evaluation through the CLI would only double the cost of this module)."""
    data = write_family_dataset(tmp_path_factory.mktemp("famdata"))
    run_dir = tmp_path_factory.mktemp("famrun")
    run(tiny_config(epochs=1), data, run_dir)
    return data, run_dir / "checkpoints" / "best.pt", run_dir / "test"


def test_eval_reports_fpr_per_family_at_the_validation_thresholds(evaluated) -> None:
    _, ckpt, out = evaluated
    report = json.loads((out / "metrics.json").read_text())
    stored = checkpoint_thresholds(load_checkpoint(ckpt))
    ops = report["operating_points"]
    assert ops["source"] == "validation" and set(ops["thresholds"]) == {
        "fpr1e-4", "fpr1e-3", "nfp0", "nfp10"
    }  # fmt: skip
    for name, t in ops["thresholds"].items():
        assert t == (stored[name] if stored[name] is not None else None)
    scores = pq.read_table(out / "scores.parquet").to_pydict()
    fam = np.array([f or UNLABELLED for f in scores["family"]], object)
    label, logit = np.array(scores["label"]), np.array(scores["logit"], np.float64)
    by_family = report["by_family"]["families"]
    assert set(by_family) == {"lrg", "ring", "spiral", UNLABELLED}
    for f, group in by_family.items():
        mine = (label == 0) & (fam == f)
        assert group["n"] == int(mine.sum()) > 0
        for name, t in ops["thresholds"].items():
            t = math.inf if t is None else t
            assert group["points"][name]["n_fp"] == int((logit[mine] >= t).sum()), (f, name)
    assert (out / FAMILY_GRID_NAME).read_bytes()[:8] == PNG


def test_eval_scores_carry_typed_selection_columns_and_selection_json(evaluated) -> None:
    data, _, out = evaluated
    table = pq.read_table(out / "scores.parquet")
    types = {f.name: f.type for f in table.schema}
    for name in ("theta_e_arcsec", "source_mag_r", "vis_snr", "arc_snr", "psfsize_r"):
        assert types[name] == pa.float64(), name
    assert types["visible"] == pa.bool_() and types["family"] == pa.string()
    s = table.to_pydict()
    is_real = [k == "real" for k in s["kind"]]
    assert all(t is None for t, r in zip(s["theta_e_arcsec"], is_real, strict=True) if r)
    sel = json.loads((out / SELECTION_NAME).read_text())
    pops = sel["populations"]
    assert pops["real"]["n"] == sum(is_real) > 0
    n_pos = sum(lab == 1 for lab in s["label"])
    assert pops["injected"]["n"] + pops["real"]["n"] == n_pos
    theta = pops["injected"]["quantities"]["theta_e_arcsec"]
    assert theta["missing"]["n"] == 0
    binned = sum(b["n"] for b in theta["bins"]) + theta["underflow"]["n"] + theta["overflow"]["n"]
    assert binned == pops["injected"]["n"]
    report = json.loads((out / "metrics.json").read_text())
    want = {"file": SELECTION_NAME, "n_injected": binned, "n_real": pops["real"]["n"]}
    assert report["selection"] == want
    by_kind = report["by_kind"]  # the kinds come from the same one metadata pass
    assert {k: v["n_pos"] for k, v in by_kind.items()} == {
        "injected": pops["injected"]["n"],
        "real": pops["real"]["n"],
    }
    for name in (CURVES_NAME, grid_name("theta_e_arcsec", "source_mag_r")):
        assert (out / name).read_bytes()[:8] == PNG, name
