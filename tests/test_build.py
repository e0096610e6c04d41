"""End-to-end builds on the synthetic sky: determinism, manifest vs tar contents, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from shards.reader import iter_tar_samples
from shards.verify import verify_dataset

N_PARENTS = 120
OVERRIDES = {
    "input": {"n_synthetic": N_PARENTS, "synthetic_row_group_size": 40},
    "output": {"samples_per_shard": 16},
}


def _cfg(**extra):
    o = json.loads(json.dumps(OVERRIDES))
    for k, v in extra.items():
        o.setdefault(k, {}).update(v) if isinstance(v, dict) else o.__setitem__(k, v)
    return load_build_config(None, o)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build1")
    manifest = make_shards(_cfg(), out, BuildOptions(workers=1, progress=False))
    return out, manifest


def test_manifest_matches_tar_contents(built):
    out, manifest = built
    assert manifest.status == "complete"
    total = 0
    for entry in manifest.shards:
        samples = list(iter_tar_samples(str(out / entry.path)))
        labels = Counter(s["label"] for s in samples)
        assert len(samples) == entry.n_samples
        assert labels[1] == entry.n_pos and labels[0] == entry.n_neg
        assert all(s["meta"]["split"] == entry.split for s in samples)
        total += len(samples)
    assert total + manifest.rejections["total"] == N_PARENTS
    assert sum(t["n_samples"] for t in manifest.splits.values()) == total
    report = verify_dataset(out)
    assert report.ok, report.format()


def test_shards_hold_required_members_and_positives_carry_injection(built):
    out, manifest = built
    path = out / manifest.shards_for("train")[0].path
    with tarfile.open(path) as tf:
        suffixes = Counter(m.name.split(".", 1)[1] for m in tf.getmembers())
    assert set(suffixes) == {"npy", "json", "cls"}
    assert suffixes["npy"] == suffixes["json"] == suffixes["cls"]
    for s in iter_tar_samples(str(path)):
        assert s["image"].dtype == np.float32 and s["image"].shape == (3, 64, 64)
        if s["label"] == 1:
            inj = s["meta"]["injection"]
            for k in (
                "theta_e_arcsec",
                "magnification",
                "arc_snr_r",
                "source_mag_r",
                "psf_fwhm_r",
                "injection_seed",
            ):
                assert k in inj
            assert 23.0 <= inj["source_mag_r"] <= 26.0
        else:
            assert "injection" not in s["meta"]


def test_splits_and_roles_disjoint_by_galaxy(built):
    out, manifest = built
    seen: dict[str, tuple[str, str]] = {}
    for entry in manifest.shards:
        for s in iter_tar_samples(str(out / entry.path)):
            gid = s["meta"]["galaxy_id"]
            assert gid not in seen
            seen[gid] = (entry.split, s["meta"]["role"])
    assert {r for _, r in seen.values()} == {"host", "control"}


def test_matching_report_present(built):
    _, manifest = built
    m = manifest.matching["train"]
    assert m["n_host"] > 0 and m["n_control"] > 0
    for col in ("r_flux_nmgy", "psfsize_r", "psfdepth_r"):
        assert 0.0 <= m[col]["ks"] <= 1.0 and 0.0 <= m[col]["p_value"] <= 1.0


def test_output_independent_of_worker_count(built, tmp_path):
    out1, m1 = built
    m2 = make_shards(_cfg(), tmp_path, BuildOptions(workers=2, progress=False))
    assert [(s.path, s.sha256) for s in m1.shards] == [(s.path, s.sha256) for s in m2.shards]
    assert (out1 / "manifest.json").read_bytes() == (tmp_path / "manifest.json").read_bytes()


def test_rerun_with_other_config_is_refused(built, tmp_path):
    make_shards(_cfg(), tmp_path, BuildOptions(progress=False))
    from builder.build import BuildError

    with pytest.raises(BuildError, match="different config"):
        make_shards(_cfg(seed=5), tmp_path, BuildOptions(progress=False))
    m = make_shards(_cfg(seed=5), tmp_path, BuildOptions(progress=False, overwrite=True))
    assert m.seed == 5 and verify_dataset(tmp_path).ok


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_cli_errors_are_one_line(tmp_path):
    r = _cli(
        "make-shards", "--parents", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("injection:\n  theta_e_arcsec: [3.0, 0.5]\n")
    r = _cli("make-shards", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert (
        r.returncode == 2 and "injection.theta_e_arcsec" in r.stderr and "Traceback" not in r.stderr
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("output:\n  samples_per_shardd: 3\n")
    r = _cli("make-shards", "--config", str(unknown), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "output.samples_per_shardd" in r.stderr


def test_cli_inspect_and_dump_config(built, tmp_path):
    out, manifest = built
    shard = out / manifest.shards_for("train")[0].path
    png = tmp_path / "grid.png"
    r = _cli("inspect", str(shard), "--png", str(png), "--n", "4")
    assert r.returncode == 0, r.stderr
    assert "samples:" in r.stdout and png.stat().st_size > 1000
    r = _cli("dump-config")
    assert r.returncode == 0 and "theta_e_arcsec" in r.stdout and "samples_per_shard" in r.stdout


def test_committed_default_config_is_complete_and_current():
    from builder.config import BuildConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "build-default.yaml"
    assert load_build_config(path).to_dict() == BuildConfig().to_dict()


def test_config_clash_is_refused_before_any_file_is_touched(tmp_path):
    from builder.build import BuildError

    make_shards(_cfg(), tmp_path, BuildOptions(progress=False))
    parents = tmp_path / "parents" / "synthetic.parquet"
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    other = load_build_config(
        None, {**OVERRIDES, "input": {**OVERRIDES["input"], "n_synthetic": 121}}
    )
    with pytest.raises(BuildError, match="different config"):
        make_shards(other, tmp_path, BuildOptions(progress=False))
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert parents in before and after == before


def test_max_parents_keeps_the_first_rows_and_scans_no_further(tmp_path):
    from builder.build import build_limits, prepare_source
    from builder.parents.synthetic import write_synthetic_parquet
    from builder.scan import SCAN_WINDOW_CHUNKS, scan_source

    parents = write_synthetic_parquet(tmp_path / "p.parquet", 100, 0, row_group_size=5)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(parents)}})
    spec = prepare_source(cfg, tmp_path)
    scanned: list[int] = []

    def recording_map(fn, *iterables):  # like Executor.map: every chunk is submitted at once
        jobs = list(zip(*iterables, strict=True))
        scanned.extend(args[1] for args in jobs)
        return (fn(*args) for args in jobs)

    full = scan_source(spec, build_limits(cfg))
    part = scan_source(spec, build_limits(cfg), map_fn=recording_map, max_parents=12)
    assert part.galaxy_id == full.galaxy_id[:12]
    assert scanned == list(range(SCAN_WINDOW_CHUNKS))  # one window, not all 20 chunks
