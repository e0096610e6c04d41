"""``train probe``: the linear probe finds a planted difference between two sets of positives and
finds none where the two sets are drawn from one distribution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.configio import to_dict
from shards.manifest import Manifest, ShardEntry
from shards.schema import CATALOG_FIELDS, make_key, shard_name
from shards.writer import Sample, write_shard
from tests.datasets import fake_image
from tests.runs import tiny_config
from train.checkpoint import CHECKPOINT_VERSION, save_checkpoint
from train.cli import main
from train.model import build_model
from train.probe import linear_probe, run_probe

N_PER_SET = 40


def planted_image(rng: np.random.Generator) -> np.ndarray:
    """A lens unlike :func:`tests.datasets.fake_image`'s: a wider, bluer ring."""
    img = fake_image(rng, 0)
    r = np.hypot(*(np.mgrid[:64, :64] - 31.5))
    ring = np.exp(-0.5 * ((r - 13.0) / 1.5) ** 2)
    return (img + ring * np.array([1.2, 0.6, 0.2])[:, None, None]).astype(np.float32)


def write_probe_dataset(root: Path, planted: bool, seed: int = 0) -> Path:
    """One test shard: 2 x 40 positives (``kind`` real / injected, and a source model) + controls.

    With ``planted`` the real (clumpy) lenses get :func:`planted_image`; otherwise both sets are
    drawn from the same distribution and only their labels differ.
    """
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(3 * N_PER_SET):
        label = int(i < 2 * N_PER_SET)
        real = label and i % 2 == 1
        image = planted_image(rng) if (real and planted) else fake_image(rng, label, 1.0)
        cat = {k: 0.0 for k in CATALOG_FIELDS}
        cat.update({f"psfsize_{b}": 1.3 for b in "grz"})
        cat.update({f"psfdepth_{b}": 300.0 for b in "grz"})
        gid = f"g{i:04d}"
        meta = {"galaxy_id": gid, "split": "test", "label": label, **cat}
        if label:
            meta["kind"] = "real" if real else "injected"
            meta["injection"] = {"source_model": "clumpy" if real else "sersic"}
        samples.append(Sample(make_key(gid), image, meta, label))
    manifest = Manifest(seed=seed, status="complete", config={"probe": True})
    info = write_shard(root / shard_name("test", 0), samples)
    manifest.shards.append(ShardEntry.from_info(info, "test", 0, root))
    manifest.recompute_splits()
    manifest.save(root)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model as a checkpoint (random features still see a planted ring)."""
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    state = {
        "version": CHECKPOINT_VERSION,
        "epoch": 0,
        "step": 0,
        "model": model.state_dict(),
        "ema": None,
        "config": to_dict(cfg),
        "history": [],
    }
    return save_checkpoint(state, tmp_path_factory.mktemp("ck") / "model.pt")


def test_planted_difference_between_real_and_injected_is_found(ckpt: Path, tmp_path: Path) -> None:
    data = write_probe_dataset(tmp_path / "d", planted=True)
    out = tmp_path / "probe.json"
    argv = ["probe", "--checkpoint", str(ckpt), "--shards", str(data), "--device", "cpu"]
    assert main([*argv, "--bootstrap", "200", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["field"] == "kind" and report["sets"] == ["injected", "real"]  # the default
    assert report["n"] == {"injected": N_PER_SET, "real": N_PER_SET}  # positives only
    assert report["auc"] > 0.95 and report["auc_interval_95"][0] > 0.85
    assert len(report["fold_aucs"]) == 5 and report["n_features"] == 128


def test_no_difference_gives_chance_auc(ckpt: Path, tmp_path: Path) -> None:
    data = write_probe_dataset(tmp_path / "d", planted=False)
    report = run_probe(
        ckpt, data, field="kind", groups=["injected", "real"], device="cpu", n_boot=300
    )
    lo, hi = report["auc_interval_95"]
    assert lo < 0.5 < hi and abs(report["auc"] - 0.5) < 0.2


def test_without_real_positives_the_source_model_field_is_used(ckpt: Path, tmp_path: Path) -> None:
    data = write_probe_dataset(tmp_path / "d", planted=True)
    manifest = Manifest.load(data)
    report = run_probe(ckpt, data, field="injection.source_model", device="cpu", n_boot=100)
    assert report["sets"] == ["clumpy", "sersic"] and report["auc"] > 0.95
    assert manifest.expected("test") == 3 * N_PER_SET


def test_linear_probe_on_known_gaussians() -> None:
    # Two Gaussians 2 sigma apart along one axis: the Bayes AUC is Phi(2 / sqrt(2)) = 0.921.
    rng = np.random.default_rng(3)
    n = 2000
    x = rng.normal(size=(2 * n, 4))
    y = np.r_[np.zeros(n), np.ones(n)].astype(int)
    x[y == 1, 0] += 2.0
    result = linear_probe(x, y, n_boot=200)
    lo, hi = result["auc_interval_95"]
    assert lo < 0.9214 < hi and hi - lo < 0.03
    with pytest.raises(ValueError, match=">= 2 samples"):
        linear_probe(x[:3], np.array([0, 0, 1]))
