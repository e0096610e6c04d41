"""Spatial splits: HEALPix pixel -> split, role by galaxy hash; the synthetic sky's dense footprint;
the manifest records the scheme and ``builder verify`` catches a pixel spanning two splits."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from astropy import units as u
from astropy_healpix import HEALPix
from scipy.integrate import dblquad
from scipy.stats import kstest

from builder.build import BuildOptions, make_shards
from builder.config import BuildConfig, SplitConfig, load_build_config
from builder.parents.config import SynthConfig
from builder.parents.parquet_writer import write_parents_parquet
from builder.parents.synthetic import draw_params, iter_synthetic_parents
from builder.plan import plan_build
from builder.scan import ScanResult
from common.configio import ConfigError
from shards.reader import iter_tar_samples
from shards.verify import verify_dataset


@functools.cache
def _positions(n: int, density: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    cfg = SynthConfig(n_parents=n, lrg_density_per_deg2=density)
    cfg.validate()
    params = [draw_params(seed, i, cfg) for i in range(n)]
    return np.array([p.ra for p in params]), np.array([p.dec for p in params])


def _scan(ra: np.ndarray, dec: np.ndarray) -> ScanResult:
    s = ScanResult()
    for i, (r, d) in enumerate(zip(ra, dec, strict=True)):
        s.galaxy_id.append(f"sky-{i:05d}")
        s.location.append(f"mem:{i}")
        s.chunk.append(i // 500)
        s.row.append(i % 500)
        s.catalog.append([float(r), float(d), 1.3, 1.2, 1.1, 300.0, 200.0, 50.0])
    return s


def _where(plan) -> dict[str, tuple[str, str]]:
    return {s.galaxy_id: (t.split, s.role) for t in plan.tasks for s in t.samples}


def test_synthetic_footprint_is_contiguous_at_the_configured_density():
    n, density = 3000, 300.0
    ra, dec = _positions(n, density)
    cfg = SynthConfig(n_parents=n, lrg_density_per_deg2=density)
    ra_lo, ra_hi, dec_lo, dec_hi = cfg.footprint_deg()
    assert (ra >= ra_lo).all() and (ra < ra_hi).all()
    assert (dec >= dec_lo).all() and (dec <= dec_hi).all()
    # Its solid angle (numerical integral of cos(dec) dra ddec) is n / density = 10 deg^2.
    area, _ = dblquad(
        lambda d, r: math.cos(math.radians(d)), ra_lo, ra_hi, dec_lo, dec_hi, epsabs=1e-10
    )
    assert area == pytest.approx(n / density, rel=1e-6)
    assert dec_hi - dec_lo == pytest.approx(math.sqrt(n / density))  # a square-ish patch
    # Uniform on the sphere inside it (no holes): RA and sin(dec) are uniform.
    assert kstest((ra - ra_lo) / (ra_hi - ra_lo), "uniform").pvalue > 1e-3
    s_lo, s_hi = np.sin(np.radians(dec_lo)), np.sin(np.radians(dec_hi))
    assert kstest((np.sin(np.radians(dec)) - s_lo) / (s_hi - s_lo), "uniform").pvalue > 1e-3
    # The default spreads galaxies over the whole wide patch, as before.
    wide = SynthConfig()
    assert wide.footprint_deg() == (*wide.ra_range, *wide.dec_range)
    with pytest.raises(ConfigError, match="lrg_density_per_deg2"):
        load_build_config(None, {"input": {"synthetic": {"lrg_density_per_deg2": 1e-3}}})


def test_healpix_plan_keeps_every_pixel_in_one_split_and_roles_by_galaxy():
    ra, dec = _positions(3000, 300.0)  # 10 deg^2
    nside = 256  # 0.052 deg^2: ~190 pixels of ~16 galaxies
    cfg = BuildConfig(splits=SplitConfig(scheme="healpix", healpix_nside=nside))
    plan = plan_build(_scan(ra, dec), cfg)
    where = _where(plan)
    assert len(where) == 3000
    pix = HEALPix(nside=nside, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    splits_of_pixel: dict[int, set[str]] = {}
    roles_of_pixel: dict[int, set[str]] = {}
    for i, p in enumerate(pix.tolist()):
        split, role = where[f"sky-{i:05d}"]
        splits_of_pixel.setdefault(p, set()).add(split)
        roles_of_pixel.setdefault(p, set()).add(role)
    assert len(splits_of_pixel) > 100
    assert all(len(v) == 1 for v in splits_of_pixel.values())
    # roles are per galaxy: most pixels hold both hosts and controls
    assert np.mean([len(v) == 2 for v in roles_of_pixel.values()]) > 0.9
    n_pix = {sp: sum(v == {sp} for v in splits_of_pixel.values()) for sp in ("train", "val")}
    total = len(splits_of_pixel)
    for sp, frac in (("train", 0.8), ("val", 0.1)):
        assert abs(n_pix[sp] / total - frac) < 4 * math.sqrt(frac * (1 - frac) / total)
    rec = plan.split_scheme
    assert rec["scheme"] == "healpix" and rec["nside"] == nside and rec["order"] == "nested"
    assert rec["pixel_area_deg2"] == pytest.approx(41252.96125 / (12 * nside**2), rel=1e-6)
    assert sum(rec["n_pixels"].values()) == total

    # The pixel-blind hash scheme does split pixels (so the check above can fail).
    hashed = _where(plan_build(_scan(ra, dec), BuildConfig(splits=SplitConfig(scheme="hash"))))
    spans = {}
    for i, p in enumerate(pix.tolist()):
        spans.setdefault(p, set()).add(hashed[f"sky-{i:05d}"][0])
    assert sum(len(v) > 1 for v in spans.values()) > 50


def test_assignment_is_stable_when_the_sample_grows():
    ra, dec = _positions(3000, 300.0)
    cfg = BuildConfig(splits=SplitConfig(healpix_nside=256))
    small = _where(plan_build(_scan(ra[:1000], dec[:1000]), cfg))
    big = _where(plan_build(_scan(ra, dec), cfg))
    assert all(big[g] == v for g, v in small.items())


def test_split_config_is_validated():
    for key, value, match in (
        ("scheme", "voronoi", "splits.scheme"),
        ("healpix_nside", 100, "splits.healpix_nside"),
        ("healpix_nside", 0, "splits.healpix_nside"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_build_config(None, {"splits": {key: value}})
    assert load_build_config(None, {}).splits.scheme == "healpix"


def test_build_records_the_scheme_and_verify_catches_a_pixel_spanning_splits(tmp_path):
    n, nside = 60, 256
    synth = SynthConfig(n_parents=n, lrg_density_per_deg2=600.0)  # 0.1 deg^2: a few pixels
    pq = write_parents_parquet(
        tmp_path / "sky.parquet", iter_synthetic_parents(n, 3, synth), row_group_size=32
    )

    def build(scheme: str):
        over = {
            "input": {"kind": "parquet", "path": str(pq)},
            "splits": {"scheme": scheme, "healpix_nside": nside},
            "output": {"samples_per_shard": 16},
        }
        out = tmp_path / scheme
        manifest = make_shards(load_build_config(None, over), out, BuildOptions(progress=False))
        return out, manifest

    out, manifest = build("healpix")
    assert manifest.split_scheme["scheme"] == "healpix" and manifest.split_scheme["nside"] == nside
    saved = json.loads((out / "manifest.json").read_text())["split_scheme"]
    assert saved == manifest.split_scheme
    assert verify_dataset(out).ok, verify_dataset(out).format()
    metas = [s["meta"] for p in sorted(out.rglob("*.tar")) for s in iter_tar_samples(str(p))]
    pix = HEALPix(nside=nside, order="nested").lonlat_to_healpix(
        np.array([m["ra"] for m in metas]) * u.deg, np.array([m["dec"] for m in metas]) * u.deg
    )
    per_pixel: dict[int, set[str]] = {}
    for p, m in zip(pix.tolist(), metas, strict=True):
        per_pixel.setdefault(p, set()).add(m["split"])
    assert max(np.bincount(pix)) > 5 and all(len(v) == 1 for v in per_pixel.values())

    # A hash-split dataset relabelled as healpix: verify names the pixels that span splits.
    out_h, _ = build("hash")
    assert verify_dataset(out_h).ok
    mpath = out_h / "manifest.json"
    doc = json.loads(mpath.read_text())
    doc["split_scheme"] = {"scheme": "healpix", "nside": nside, "order": "nested"}
    mpath.write_text(json.dumps(doc))
    report = verify_dataset(out_h)
    spans = [e for e in report.errors if "spans splits" in e]
    assert spans and not [e for e in report.errors if e not in spans], report.format()
    assert f"nside {nside}" in spans[0]
