"""Real positives (--positives, FITS made here) and known-lens exclusions (--known-lenses):
labels, kinds, grade weights that reach the loss, no control near a known lens, the hybrid ratio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from astropy.io import fits

from builder.build import BuildOptions, make_shards
from builder.cli import _overrides, build_parser
from builder.config import BuildConfig, load_build_config
from builder.errors import SourceError
from builder.parents.config import SynthConfig
from builder.parents.parquet_writer import write_parents_parquet
from builder.parents.synthetic import iter_synthetic_parents
from builder.plan import plan_build
from builder.positives import PositivesConfig, RealPositives, grade_positives
from builder.scan import ScanResult
from common.configio import ConfigError
from common.crossmatch import KnownLenses
from shards.reader import iter_tar_samples
from shards.schema import is_label_leaking
from shards.verify import verify_dataset
from train.by_kind import metrics_by_kind, positive_kinds
from train.collate import collate
from train.losses import LossConfig, WeightedBinaryLoss
from train.metrics import evaluate_scores

RADIUS = 12.0
GRADES = {"confident": 1.0, "probable": 0.5}
DEFAULT_WEIGHT = 0.8


def sep_arcsec(ra1, dec1, ra2, dec2):
    """Haversine distance matrix (n, m), arcsec (independent of astropy)."""
    r1, d1 = np.radians(ra1)[:, None], np.radians(dec1)[:, None]
    r2, d2 = np.radians(ra2)[None, :], np.radians(dec2)[None, :]
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))) * 3600.0


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """Parents (synthetic Parquet, dense footprint), 6 real lenses as FITS, a known-lens CSV."""
    root = tmp_path_factory.mktemp("hybrid")
    synth = SynthConfig(n_parents=40, lrg_density_per_deg2=2000.0)
    parents = list(iter_synthetic_parents(40, 4, synth))
    pq = write_parents_parquet(root / "parents.parquet", parents, row_group_size=16)
    pra = np.array([p.catalog["ra"] for p in parents])
    pdec = np.array([p.catalog["dec"] for p in parents])

    # Real lenses: stamps of other synthetic galaxies, placed 30" east of parents 0..5 (so
    # parents 0..5 are neighbours of a real positive), written as cutout-service FITS files.
    lens_dir = root / "lenses"
    lens_dir.mkdir()
    lenses = list(iter_synthetic_parents(6, 99, synth))
    lra = pra[:6] + (6.0 / 3600.0) / np.cos(np.radians(pdec[:6]))
    ldec = pdec[:6].copy()
    for i, rec in enumerate(lenses):
        hdr = fits.Header()
        hdr["RA"], hdr["DEC"] = float(lra[i]), float(ldec[i])
        fits.PrimaryHDU(rec.stamp_nmgy, header=hdr).writeto(lens_dir / f"lens{i:02d}.fits")

    # Known lenses: the 6 real ones (graded: confident, probable, blank...) plus 3 others
    # 5" from parents 10..12 (ungraded) -- these parents may not be controls.
    kra = np.concatenate([lra, pra[10:13] + (5.0 / 3600.0) / np.cos(np.radians(pdec[10:13]))])
    kdec = np.concatenate([ldec, pdec[10:13]])
    grades = ["confident", "probable", "", "confident", "probable", "", "", "", ""]
    csv = root / "known.csv"
    csv.write_text(
        "name,ra,dec,grade\n"
        + "".join(
            f"K{i},{float(r)!r},{float(d)!r},{g}\n"
            for i, (r, d, g) in enumerate(zip(kra, kdec, grades, strict=True))
        )
    )
    over = {
        "input": {"kind": "parquet", "path": str(pq)},
        "positives": {
            "path": str(lens_dir),
            "kind": "fits",
            "grade_weights": GRADES,
            "default_weight": DEFAULT_WEIGHT,
        },
        "known_lenses": {"path": str(csv), "radius_arcsec": RADIUS},
        "output": {"samples_per_shard": 16},
        # 0.84 deg^2 pixels are far larger than this 0.02 deg^2 sky: one pixel, one split
        "splits": {"scheme": "healpix", "healpix_nside": 64},
    }
    out = root / "shards"
    manifest = make_shards(load_build_config(None, over), out, BuildOptions(progress=False))
    samples = [s for p in sorted(out.rglob("*.tar")) for s in iter_tar_samples(str(p))]
    return {
        "out": out,
        "manifest": manifest,
        "samples": samples,
        "parents": (pra, pdec),
        "lenses": (lra, ldec, grades[:6]),
        "known": (kra, kdec),
    }


def test_real_positives_are_labelled_kinded_and_weighted(hybrid):
    samples = hybrid["samples"]
    real = {s["meta"]["galaxy_id"]: s for s in samples if s["meta"].get("kind") == "real"}
    assert sorted(real) == [f"lens{i:02d}" for i in range(6)]
    _, _, grades = hybrid["lenses"]
    for i, g in enumerate(grades):
        s = real[f"lens{i:02d}"]
        assert s["label"] == 1 and s["meta"]["label"] == 1 and "injection" not in s["meta"]
        assert s["meta"]["grade"] == g
        assert s["meta"]["weight"] == (GRADES[g] if g else DEFAULT_WEIGHT)
    injected = [s for s in samples if s["label"] == 1 and s["meta"].get("kind") != "real"]
    assert injected and all(s["meta"]["kind"] == "injected" for s in injected)
    assert all("injection" in s["meta"] and "weight" not in s["meta"] for s in injected)
    assert all("kind" not in s["meta"] for s in samples if s["label"] == 0)
    rec = hybrid["manifest"].positives
    assert sum(rec["n_real_planned"].values()) == 6
    assert rec["n_real_by_grade"] == {"(none)": 2, "confident": 2, "probable": 2}
    assert verify_dataset(hybrid["out"]).ok, verify_dataset(hybrid["out"]).format()


def test_known_lens_neighbours_are_kept_out_of_the_controls(hybrid):
    samples, out = hybrid["samples"], hybrid["out"]
    kra, kdec = hybrid["known"]
    lra, ldec, _ = hybrid["lenses"]
    parents = [s for s in samples if s["meta"].get("kind") != "real"]
    ra = np.array([s["meta"]["ra"] for s in parents])
    dec = np.array([s["meta"]["dec"] for s in parents])
    controls = np.array([s["label"] == 0 for s in parents])
    near_known = (sep_arcsec(ra, dec, kra, kdec) <= RADIUS).any(axis=1)
    near_real = (sep_arcsec(ra, dec, lra, ldec) <= RADIUS).any(axis=1)
    assert controls.any()
    assert not (controls & near_known).any()
    assert not near_real.any()  # no parent of any role next to a real positive

    # Every parent close to a known lens or a real positive is accounted for as an exclusion.
    pra, pdec = hybrid["parents"]
    d_known = (sep_arcsec(pra, pdec, kra, kdec) <= RADIUS).any(axis=1)
    d_real = (sep_arcsec(pra, pdec, lra, ldec) <= RADIUS).any(axis=1)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    excl = {r["galaxy_id"]: r for r in rejects if r["stage"] == "exclude"}
    assert d_real.sum() >= 6 and d_known.sum() > d_real.sum()
    ids = [f"synth-4-{i:08d}" for i in range(40)]
    for i, gid in enumerate(ids):
        if d_real[i]:
            assert excl[gid]["reason"] == "near_real_positive"
        elif d_known[i] and gid in excl:
            assert excl[gid]["reason"] == "near_known_lens"
            assert excl[gid]["detail"].startswith("control at ")
        elif d_known[i]:  # kept near a known lens: only as an injection host
            label = [s["label"] for s in parents if s["meta"]["galaxy_id"] == gid]
            assert label in ([1], []), (gid, label)  # [] = its injection failed
    counts = hybrid["manifest"].positives["known_lenses"]["excluded"]
    assert counts["near_real_positive"] == d_real.sum()
    assert counts["near_known_lens"] == sum(r["reason"] == "near_known_lens" for r in excl.values())
    assert counts["near_known_lens"] + counts["near_real_positive"] == len(excl)
    by_reason = hybrid["manifest"].rejections["by_reason"]
    assert by_reason.get("near_real_positive") == d_real.sum()


def test_weights_reach_the_loss_and_never_the_model(hybrid):
    samples = hybrid["samples"]
    batch = collate(samples)
    want = np.array([s["meta"].get("weight", 1.0) for s in samples], np.float32)
    np.testing.assert_array_equal(batch["weight"], want)
    assert np.unique(want).tolist() == pytest.approx([0.5, DEFAULT_WEIGHT, 1.0])
    logits = torch.linspace(-2, 2, len(samples))
    labels = torch.from_numpy(batch["label"])
    w = torch.from_numpy(batch["weight"])
    got = WeightedBinaryLoss(LossConfig())(logits, labels, w)
    per = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    assert got == pytest.approx(float((per * w).sum() / w.sum()), rel=1e-6)
    assert got != pytest.approx(float(per.mean()), rel=1e-4)  # the weights matter
    for field in ("kind", "grade", "weight"):
        assert is_label_leaking(field)


def _scan(n: int, prefix: str, ra0: float = 150.0) -> ScanResult:
    s = ScanResult()
    for i in range(n):
        s.galaxy_id.append(f"{prefix}{i:04d}")
        s.location.append(f"mem:{i}")
        s.chunk.append(0)
        s.row.append(i)
        # 1 arcmin apart along RA: no exclusions unless a known lens is placed near one
        s.catalog.append([ra0 + i / 60.0, 2.0, 1.3, 1.2, 1.1, 300.0, 200.0, 50.0])
    return s


def test_hybrid_ratio_caps_injected_hosts_per_split():
    parents, lenses = _scan(2000, "p"), _scan(40, "L", ra0=200.0)
    real = RealPositives(lenses, KnownLenses([], []), [""] * 40, [1.0] * 40)
    for f in (0.5, 0.2, 1.0):
        cfg = load_build_config(
            None,
            {
                "positives": {"path": "unused", "real_fraction": f},
                "splits": {"scheme": "hash"},
            },
        )
        plan = plan_build(parents, cfg, real)
        for split, counts in plan.assignment.items():
            n_real, n_inj = counts.get("real", 0), counts.get("host", 0)
            cap = int(np.floor(n_real * (1 - f) / f + 1e-9))
            assert n_inj == min(cap, 1000), (f, split, counts)  # enough hosts to reach the cap
            if n_real:
                assert n_real / (n_real + n_inj) >= f - 1e-9
        assert sum(c.get("control", 0) + c.get("host", 0) for c in plan.assignment.values()) == 2000
    base = plan_build(parents, BuildConfig(), real)
    assert sum(c.get("host", 0) for c in base.assignment.values()) > 900  # unset: all kept


def test_unknown_grade_and_bad_config_are_clear_errors(tmp_path):
    lenses = _scan(2, "L")
    known = KnownLenses([150.0], [2.0], grade=["gold"], path="k.csv")
    with pytest.raises(SourceError, match=r"grade 'gold' \(from k.csv\).*grade_weights"):
        grade_positives(lenses, known, PositivesConfig())
    for over, key in (
        ({"positives": {"real_fraction": 0.5}}, "positives.real_fraction"),
        ({"positives": {"path": "x", "real_fraction": 0.0}}, "positives.real_fraction"),
        ({"positives": {"grade_weights": {"A": 0.0}}}, "positives.grade_weights.A"),
        ({"known_lenses": {"radius_arcsec": -1.0}}, "known_lenses.radius_arcsec"),
        ({"positives": {"path": "x"}, "splits": {"controls": "paired"}}, "positives.path"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_build_config(None, over)
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,decl\n1,2\n")
    tiny = {"synthetic": {"n_parents": 20, "row_group_size": 20}}  # fails before any shard
    cfg = load_build_config(None, {"known_lenses": {"path": str(bad)}, "input": tiny})
    with pytest.raises(SourceError, match="no dec column"):
        make_shards(cfg, tmp_path / "o", BuildOptions(progress=False))


def test_cli_flags_become_config(tmp_path):
    d = tmp_path / "lenses"
    d.mkdir()
    fits.PrimaryHDU(np.zeros((3, 64, 64), np.float32)).writeto(d / "a.fits")
    args = build_parser().parse_args(
        ["make-shards", "--positives", str(d), "--known-lenses", str(tmp_path / "k.csv")]
    )
    o = _overrides(args)
    assert o["positives"] == {"path": str(d), "kind": "fits"}
    assert o["known_lenses"] == {"path": str(tmp_path / "k.csv")}
    assert Path(o["positives"]["path"]).is_dir()


def test_metrics_are_reported_for_real_and_injected_positives_separately(hybrid):
    out, samples = hybrid["out"], hybrid["samples"]
    split = next(sp for sp, t in hybrid["manifest"].splits.items() if t["n_samples"])
    kinds = positive_kinds(out, split)
    in_split = [s for s in samples if s["meta"]["split"] == split]
    assert kinds == {s["__key__"]: s["meta"]["kind"] for s in in_split if s["label"] == 1}
    assert sorted(set(kinds.values())) == ["injected", "real"]

    # Scores where injections are easy and real lenses hard: the two kinds must differ.
    rng = np.random.default_rng(0)
    keys = [s["__key__"] for s in in_split]
    labels = np.array([s["label"] for s in in_split])
    kind = np.array([kinds.get(k, "") for k in keys])
    logits = rng.normal(0, 1, len(keys)).astype(np.float32)
    logits[kind == "injected"] += 4.0
    got = metrics_by_kind(keys, labels, logits, kinds)
    assert set(got) == {"injected", "real"}
    for k in ("injected", "real"):
        mask = (labels == 0) | (kind == k)
        ref = evaluate_scores(logits[mask], labels[mask])
        assert got[k]["n_pos"] == (kind == k).sum() and got[k]["n_neg"] == (labels == 0).sum()
        assert got[k]["auc"] == ref["auc"]
    assert got["injected"]["auc"] > got["real"]["auc"]
    # Without real positives nothing extra is reported.
    only_inj = {k: v for k, v in kinds.items() if v == "injected"}
    keep = np.array([kinds.get(k) != "real" for k in keys])
    assert metrics_by_kind(list(np.array(keys)[keep]), labels[keep], logits[keep], only_inj) == {}
