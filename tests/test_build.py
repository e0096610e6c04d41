"""End-to-end builds on the synthetic sky: determinism, manifest vs tar contents, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from builder.build import BuildOptions, make_shards, prepare_source
from builder.config import load_build_config
from builder.errors import BuilderError
from builder.inject import InjectionConfig
from builder.parents.base import ParentRecord, ReaderContext, Rejection, SourceInfo
from builder.parents.parquet_writer import write_parents_parquet
from builder.parents.registry import (
    PARENT_KINDS,
    detect_kind,
    readable_kinds,
    register_parent_kind,
)
from builder.parents.synthetic import iter_synthetic_parents
from builder.validate import BadRecord, check_catalog, check_stamp
from common.configio import ConfigError, check
from shards.reader import iter_tar_samples
from shards.schema import CATALOG_FIELDS
from shards.verify import verify_dataset

N_PARENTS = 120
OVERRIDES = {
    "input": {"synthetic": {"n_parents": N_PARENTS, "row_group_size": 40}},
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
                "visible",
                "vis_snr",
            ):
                assert k in inj
            lo, hi = InjectionConfig().source.mag_r
            assert lo <= inj["source_mag_r"] <= hi
            assert inj["visible"] and inj["vis_snr"] >= 20.0
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
    import yaml

    from builder.config import BuildConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "build-default.yaml"
    assert load_build_config(path).to_dict() == BuildConfig().to_dict()

    def keys(d: dict, prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and v:
                out |= keys(v, f"{prefix}{k}.")
        return out

    # complete: every key a user can set is in the file (regenerate: builder dump-config)
    missing = keys(BuildConfig().to_dict()) - keys(yaml.safe_load(path.read_text()))
    assert not missing, f"configs/build-default.yaml lacks {sorted(missing)[:8]}"


def test_config_clash_is_refused_before_any_file_is_touched(tmp_path):
    from builder.build import BuildError

    make_shards(_cfg(), tmp_path, BuildOptions(progress=False))
    parents = tmp_path / "parents" / "synthetic.parquet"
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    other = load_build_config(
        None, {**OVERRIDES, "input": {"synthetic": {"n_parents": 121, "row_group_size": 40}}}
    )
    with pytest.raises(BuildError, match="different config"):
        make_shards(other, tmp_path, BuildOptions(progress=False))
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    assert parents in before and after == before


def test_max_parents_keeps_the_first_rows_and_scans_no_further(tmp_path):
    from builder.build import build_limits, prepare_source
    from builder.executors import SerialExecutor
    from builder.parents.synthetic import write_synthetic_parquet
    from builder.scan import SCAN_WINDOW_CHUNKS, scan_source

    parents = write_synthetic_parquet(tmp_path / "p.parquet", 100, 0, row_group_size=5)
    cfg = load_build_config(None, {"input": {"kind": "parquet", "path": str(parents)}})
    spec = prepare_source(cfg, tmp_path)
    scanned: list[int] = []

    class RecordingExecutor(SerialExecutor):  # records which chunk each scan call reads
        def submit(self, fn, /, *args, **kwargs):
            scanned.append(args[1])
            return super().submit(fn, *args, **kwargs)

    full = scan_source(spec, build_limits(cfg))
    part = scan_source(spec, build_limits(cfg), executor=RecordingExecutor(), max_parents=12)
    assert part.galaxy_id == full.galaxy_id[:12]
    # 12 rows need chunks 0-2 (5 rows each); at most a window of chunks is scanned ahead of them
    assert scanned == list(range(len(scanned)))
    assert 3 <= len(scanned) <= 3 + SCAN_WINDOW_CHUNKS - 1 < 20


# --------------------------------------------------------------------------- a toy parent format
# Defined and registered here, without touching any library file: the registry is the only seam.


@dataclass
class NpyDirConfig:
    """``input.npydir``: a directory with ``stamps.npy`` (N, 3, 64, 64) nmgy, ``catalog.npy``
    (N, 9) in CATALOG_FIELDS order and ``ids.npy`` (N,) strings; ``rows_per_chunk`` rows a chunk."""

    rows_per_chunk: int = 16

    def validate(self, prefix: str) -> None:
        check(self.rows_per_chunk > 0, f"{prefix}.rows_per_chunk", "must be > 0")


def looks_like_npydir(path: Path) -> bool:
    return path.is_dir() and (path / "stamps.npy").is_file()


class NpyDirSource:
    def __init__(self, path: Path, cfg: NpyDirConfig, context: ReaderContext):
        self.path, self.cfg, self.limits = Path(path), cfg, context.limits
        self.n = len(np.load(self.path / "ids.npy"))

    def info(self) -> SourceInfo:
        return SourceInfo("npydir", str(self.path), self.n_chunks(), {"n": self.n})

    def n_chunks(self) -> int:
        return -(-self.n // self.cfg.rows_per_chunk)

    def read_chunk(self, chunk: int):
        yield from self.read(
            chunk, range(min(self.cfg.rows_per_chunk, self.n - chunk * self.cfg.rows_per_chunk))
        )

    def read(self, chunk: int, rows):
        stamps = np.load(self.path / "stamps.npy", mmap_mode="r")
        cats, ids = np.load(self.path / "catalog.npy"), np.load(self.path / "ids.npy")
        for row in rows:
            i = chunk * self.cfg.rows_per_chunk + row
            location = f"{self.path.name}:{i}"
            try:
                stamp = check_stamp(np.array(stamps[i], dtype=np.float32))
                cat = check_catalog(
                    dict(zip(CATALOG_FIELDS, map(float, cats[i]), strict=True)), self.limits
                )
            except BadRecord as bad:
                yield Rejection(str(ids[i]), location, bad.reason, "read", bad.detail)
                continue
            yield ParentRecord(str(ids[i]), stamp, cat, location, chunk=chunk, row=row)


@pytest.fixture
def npydir_kind():
    register_parent_kind("npydir", config_cls=NpyDirConfig, detect=looks_like_npydir)(NpyDirSource)
    yield
    del PARENT_KINDS["npydir"]


def test_a_parent_format_registered_in_a_test_builds_end_to_end(npydir_kind, tmp_path):
    records = list(iter_synthetic_parents(41, seed=4))
    stamps = np.stack([r.stamp_nmgy for r in records])
    stamps[7, 1, 30, 30] = np.nan  # one bad stamp: a recorded rejection, not a silent skip
    d = tmp_path / "npydir"
    d.mkdir()
    np.save(d / "stamps.npy", stamps)
    np.save(d / "catalog.npy", np.array([[r.catalog[f] for f in CATALOG_FIELDS] for r in records]))
    np.save(d / "ids.npy", np.array([r.galaxy_id for r in records]))
    assert detect_kind(d) == "npydir" and "npydir" in readable_kinds()
    with pytest.raises(ConfigError) as info:
        load_build_config(None, {"input": {"npydir": {"rows_per_chunk": 0}}})
    assert info.value.key == "input.npydir.rows_per_chunk"

    out = {"samples_per_shard": 8}
    cfg = load_build_config(None, {"input": {"kind": "npydir", "path": str(d)}, "output": out})
    manifest = make_shards(cfg, tmp_path / "toy", BuildOptions(progress=False, executor="serial"))
    assert verify_dataset(tmp_path / "toy").ok
    assert (
        manifest.source["kind"] == "npydir"
        and manifest.config["input"]["npydir"]["rows_per_chunk"] == 16
    )
    assert manifest.rejections["by_reason"].get("nonfinite_pixels") == 1

    # The same parents through the Parquet reader give the same samples, image for image.
    good = [r for i, r in enumerate(records) if i != 7]
    pq_path = write_parents_parquet(tmp_path / "same.parquet", good, row_group_size=16)
    cfg_pq = load_build_config(
        None, {"input": {"kind": "parquet", "path": str(pq_path)}, "output": out}
    )
    make_shards(cfg_pq, tmp_path / "pq", BuildOptions(progress=False))

    def images(root: Path) -> dict[str, np.ndarray]:
        return {
            s["__key__"]: s["image"]
            for p in sorted(root.rglob("*.tar"))
            for s in iter_tar_samples(str(p))
        }

    toy, ref = images(tmp_path / "toy"), images(tmp_path / "pq")
    assert len(toy) > 20 and toy.keys() == ref.keys()
    for key, image in toy.items():
        np.testing.assert_array_equal(image, ref[key])


def test_cli_set_overrides_dotted_keys_and_names_bad_ones(tmp_path):
    r = _cli("dump-config", "--set", "psf.moffat_beta=2.5", "--set", "input.fits.hdu=1")
    assert r.returncode == 0, r.stderr
    dumped = yaml.safe_load(r.stdout)
    assert dumped["psf"]["moffat_beta"] == 2.5 and dumped["input"]["fits"]["hdu"] == 1
    r = _cli("make-shards", "--out", str(tmp_path / "o"), "--set", "psf.moffat_beta=1.0")
    assert r.returncode == 2 and "psf.moffat_beta" in r.stderr and "Traceback" not in r.stderr
    r = _cli("make-shards", "--out", str(tmp_path / "o"), "--set", "injection.psf_beta=3")
    assert r.returncode == 2 and "injection.psf_beta: unknown key" in r.stderr


def test_one_moffat_beta_reaches_the_render_and_the_injection(tmp_path):
    cfg = _cfg(psf={"moffat_beta": 2.5}, seed=1)
    assert prepare_source(cfg, tmp_path).context.moffat_beta == 2.5  # the readers' context
    pq_path = write_parents_parquet(
        tmp_path / "p.parquet", iter_synthetic_parents(30, seed=2), row_group_size=16
    )

    def build(beta: float) -> tuple[dict, dict]:
        over = {"input": {"kind": "parquet", "path": str(pq_path)}, "psf": {"moffat_beta": beta}}
        out = tmp_path / f"beta{beta}"
        m = make_shards(load_build_config(None, over), out, BuildOptions(progress=False))
        assert m.config["psf"] == {"moffat_beta": beta} and "psf_beta" not in m.config["injection"]
        samples = [s for p in sorted(out.rglob("*.tar")) for s in iter_tar_samples(str(p))]
        return ({s["__key__"]: s["image"] for s in samples if s["label"] == lab} for lab in (1, 0))

    hosts_a, controls_a = build(3.5)
    hosts_b, controls_b = build(2.5)
    assert controls_a.keys() == controls_b.keys()
    assert all(np.array_equal(controls_a[k], controls_b[k]) for k in controls_a)
    same = set(hosts_a) & set(hosts_b)  # acceptance may differ; the injected arcs must too
    assert same and all(not np.array_equal(hosts_a[k], hosts_b[k]) for k in same)


def test_executors_are_made_by_name_and_give_the_same_results():
    from builder.executors import EXECUTORS, make_executor, submit_ordered

    assert {"local", "serial"} <= set(EXECUTORS)
    for name, workers in (("serial", 1), ("local", 1), ("local", 2)):
        with make_executor(name, workers) as ex:
            got = list(submit_ordered(ex, pow, ((i, 2) for i in range(7)), window=3))
        assert got == [i * i for i in range(7)], name
    with make_executor("serial") as ex, pytest.raises(ZeroDivisionError):
        list(submit_ordered(ex, divmod, [(1, 1), (1, 0)]))  # a task's error reaches the caller
    with pytest.raises(BuilderError, match="unknown executor 'nope'.*local"):
        make_executor("nope")
