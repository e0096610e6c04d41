"""``builder audit``: passes on a default build, fails on planted shortcuts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from builder.audit import AuditConfig, AuditError, auc_interval, run_audit
from builder.audit_features import FEATURE_SETS, blue_excess
from builder.build import BuildOptions, make_shards
from builder.cli import main as builder_main
from builder.config import load_build_config
from shards.manifest import Manifest, ShardEntry
from shards.reader import iter_tar_samples
from shards.writer import Sample, write_shard

N_PARENTS = 160
CFG = AuditConfig(folds=3)


def _build(out: Path, with_arcs: bool = True, n: int = N_PARENTS) -> Path:
    overrides = {
        "input": {"synthetic": {"n_parents": n, "row_group_size": 100}},
        "output": {"samples_per_shard": 100, "with_arcs": with_arcs},
        "splits": {"fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
    }
    make_shards(load_build_config(None, overrides), out, BuildOptions(progress=False))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("audit-build"))


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a dataset sample by sample through the real writer, applying ``change``."""
    old = Manifest.load(src)
    manifest = Manifest(seed=old.seed, status="complete", config={"planted": True})
    for entry in old.shards:
        samples = []
        for s in iter_tar_samples(str(src / entry.path)):
            image, meta = change(s["image"].astype(np.float32), s.get("arc"), dict(s["meta"]), s)
            fields = {"image": image, "meta": meta, "label": s["label"]}
            if s.get("arc") is not None:
                fields["arc"] = s["arc"]
            samples.append(Sample.from_fields(s["__key__"], fields))
        info = write_shard(dst / entry.path, samples)
        manifest.shards.append(ShardEntry.from_info(info, entry.split, entry.index, dst))
    manifest.recompute_splits()
    manifest.save(dst)
    return dst


def test_default_build_passes_the_audit(built: Path) -> None:
    report = run_audit(built, CFG)
    assert report["ok"], report["gates_failed"]
    r = report["splits"]["all"]
    assert set(r["host_only"]) == {"catalog", *FEATURE_SETS}
    for e in r["host_only"].values():
        assert e["max"] < 0.65  # host-only: no better than chance within noise
    # with the arc the same weak models do see the arcs
    assert max(e["max"] for e in r["with_arc"].values()) > 0.65
    assert json.loads((built / "audit.json").read_text())["ok"] is True
    assert "**Result: PASS**" in (built / "audit.md").read_text()


def test_planted_bright_hosts_fail_the_host_only_gates(built: Path, tmp_path: Path) -> None:
    def brighter(image, arc, meta, s):
        if s["label"] == 1:  # hosts 50 % brighter than controls: a classic shortcut
            image = 1.5 * (image - arc) + arc
        return image, meta

    planted = _rewrite(built, tmp_path / "planted", brighter)
    report = run_audit(planted, CFG)
    assert not report["ok"]
    failed = set(report["splits"]["all"]["gates_failed"])
    # the trainer's normalisation statistics see the brighter (and noisier) stamps at once,
    # the binned pixels too; the radial profile leans the same way
    assert {"normalisation", "host_image"} <= failed
    assert report["splits"]["all"]["host_only"]["radial_profile"]["max"] > 0.55
    assert "catalog" not in failed
    assert builder_main(["audit", str(planted)]) == 1  # the CLI exits non-zero


def test_planted_covariate_shortcut_fails_the_catalog_gate(built: Path, tmp_path: Path) -> None:
    def seeing(image, arc, meta, s):
        if s["label"] == 1:  # positives observed in worse seeing
            meta["psfsize_r"] += 0.3
        return image, meta

    report = run_audit(_rewrite(built, tmp_path / "seeing", seeing), CFG)
    assert "catalog" in report["splits"]["all"]["gates_failed"]


def test_build_without_arcs_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    out = _build(tmp_path / "noarcs", with_arcs=False, n=30)
    with pytest.raises(AuditError, match="--with-arcs"):
        run_audit(out, CFG)
    with pytest.raises(AuditError, match="manifest"):
        run_audit(tmp_path, CFG)


def test_auc_lower_bound_shrinks_with_sample_size() -> None:
    a = auc_interval(0.6, 50, 50, 0.95)
    b = auc_interval(0.6, 5000, 5000, 0.95)
    assert a < b < 0.6 and b > 0.58
    assert auc_interval(0.6, 50, 50, 0.0) == pytest.approx(0.6)


def test_blue_excess_sees_blue_light_around_a_red_core() -> None:
    yy, xx = np.mgrid[:64, :64] - 31.5
    red = np.exp(-np.hypot(xx, yy) / 3.0)
    base = np.stack([0.3 * red, red, 1.5 * red])[None]
    blob = np.exp(-0.5 * (np.hypot(xx - 8, yy) / 1.5) ** 2)  # 2.1" from the centre
    blue = base.copy()
    blue[0, 0] += 0.5 * blob
    blue[0, 1] += 0.2 * blob
    redder = base.copy()
    redder[0, 1] += 0.5 * blob
    e = blue_excess(np.concatenate([base, blue, redder]))
    assert abs(e[0]) < 1e-6 and e[1] > 0.1 and e[2] < -0.02
