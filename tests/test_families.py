"""Hard-negative families of the synthetic sky (builder.parents.families)."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import galsim
import numpy as np
import pytest
from scipy.stats import binomtest

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.parents.config import ParquetConfig, SynthConfig
from builder.parents.families import (
    DEFAULT_FRACTIONS,
    FAMILIES,
    FEATURE_KINDS,
    Feature,
    feature_profile,
)
from builder.parents.parquet import ParquetSource
from builder.parents.synthetic import (
    draw_params,
    make_parent,
    render_stamp,
    write_synthetic_parquet,
)
from common.configio import ConfigError, from_mapping
from shards.reader import iter_tar_samples
from shards.schema import is_label_leaking

CFG = SynthConfig()


def only(name: str, **extra) -> SynthConfig:
    fr = dict.fromkeys(FAMILIES, 0.0)
    fr[name] = 1.0
    return dataclasses.replace(CFG, families=fr, **extra)


def g_minus_r(flux) -> float:
    return -2.5 * math.log10(flux[0] / flux[1])


def test_every_family_is_registered_with_a_default_fraction() -> None:
    assert set(DEFAULT_FRACTIONS) == set(FAMILIES)
    assert sum(DEFAULT_FRACTIONS.values()) == pytest.approx(1.0)
    assert {"lrg", "blue_companion", "ring", "spiral", "merger", "shell", "edge_on"} <= set(
        FAMILIES
    )
    assert "chance_alignment" in FAMILIES


def test_family_draw_is_deterministic_and_does_not_shift_other_draws() -> None:
    for i in range(20):
        a, b = draw_params(4, i, CFG), draw_params(4, i, CFG)
        assert a == b
        plain = draw_params(4, i, only("lrg"))
        assert plain.family == "lrg" and plain.features == ()
        # host, neighbours, stars and conditions are the same whatever the family
        assert plain.components == a.components and plain.psfsize_arcsec == a.psfsize_arcsec
    assert make_parent(4, 3, CFG).meta == {"family": draw_params(4, 3, CFG).family}


def test_default_fractions_are_followed() -> None:
    n = 600
    counts = Counter(draw_params(8, i, CFG).family for i in range(n))
    assert set(counts) == set(FAMILIES)
    for name, frac in DEFAULT_FRACTIONS.items():
        assert binomtest(counts[name], n, frac).pvalue > 1e-3, (name, counts[name])


def test_knot_profile_conserves_flux_and_places_knots() -> None:
    f = Feature(
        "ring",
        0.3,
        -0.2,
        (1.0, 2.0, 3.0),
        profile="knots",
        knots=((1.0, 0.0, 1.0), (-1.0, 0.0, 3.0)),
        knot_sigma_arcsec=0.2,
    )
    img = feature_profile(f, galsim.GSParams(), 8.0).drawImage(nx=101, ny=101, scale=0.1)
    assert img.array.sum() == pytest.approx(1.0, rel=1e-3)
    c = img.true_center
    # weighted centroid: (0.3 + (1*1 - 1*3)/4, -0.2) arcsec
    y, x = np.mgrid[: img.array.shape[0], : img.array.shape[1]]
    cx = ((x + 1 - c.x) * img.array).sum() * 0.1
    cy = ((y + 1 - c.y) * img.array).sum() * 0.1
    assert (cx, cy) == pytest.approx((0.3 - 0.5, -0.2), abs=0.01)
    with pytest.raises(ValueError, match="unknown feature profile"):
        feature_profile(dataclasses.replace(f, profile="nope"), galsim.GSParams(), 8.0)


def test_blue_companions_are_close_blue_and_faint() -> None:
    cfg = only("blue_companion")
    seps = []
    for i in range(60):
        p = draw_params(1, i, cfg)
        host = p.components[0]
        assert p.family == "blue_companion" and 1 <= len(p.features) <= 3
        for f in p.features:
            assert f.kind == "companion"
            sep = math.hypot(f.dx_arcsec - host.dx_arcsec, f.dy_arcsec - host.dy_arcsec)
            seps.append(sep)
            assert 0.5 - 1e-9 <= sep <= 4.0 + 1e-9
            assert g_minus_r(f.flux_nmgy) < g_minus_r(host.flux_nmgy) - 0.3
            assert f.flux_nmgy[1] < host.flux_nmgy[1] / 2.4  # >= 1 mag fainter
    assert min(seps) < 1.2 and max(seps) > 3.0  # the whole 0.5-4" range is used


def test_ring_knots_lie_on_an_inclined_circle() -> None:
    for i in range(20):
        p = draw_params(2, i, only("ring"))
        (ring,) = p.features
        pts = np.array([(x, y) for x, y, _ in ring.knots])
        r = np.hypot(*(pts - pts.mean(axis=0)).T)
        # projected radius between q R and R, q >= 0.5
        assert r.max() <= 4.5 + 1e-6 and r.min() >= 0.5 * r.max() - 1e-6
        assert len(ring.knots) >= 6


def test_features_render_with_their_flux() -> None:
    """Noiseless renders of the features alone hold the features' total flux (compact ones)."""
    for name in ("blue_companion", "ring", "shell"):
        cfg = only(name, hlr_arcsec_range=(0.6, 0.8))
        for i in range(4):
            p = draw_params(5, i, cfg)
            want = np.sum([f.flux_nmgy for f in p.features], axis=0)
            got = render_stamp(p, cfg, kinds=FEATURE_KINDS).sum(axis=(1, 2), dtype=np.float64)
            np.testing.assert_allclose(got, want, rtol=0.03)
            host_only = render_stamp(p, cfg, kinds=("host",)).sum(axis=(1, 2))
            np.testing.assert_allclose(host_only, p.components[0].flux_nmgy, rtol=0.05)


def test_every_family_renders_finite_distinct_stamps() -> None:
    for name in FAMILIES:
        cfg = only(name)
        p = draw_params(6, 0, cfg)
        img = render_stamp(p, cfg, noise_rng=np.random.default_rng(0))
        assert img.shape == (3, 64, 64) and np.isfinite(img).all()
        if name != "lrg":
            feats = render_stamp(p, cfg, kinds=FEATURE_KINDS)
            assert feats[1].sum() > 0.01 * p.components[0].flux_nmgy[1]


def test_family_config_is_validated_with_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(SynthConfig, {"families": {"ring": 1.0, "donut": 0.5}}, "synthetic")
    assert info.value.key == "synthetic.families" and "donut" in str(info.value)
    with pytest.raises(ConfigError):
        from_mapping(SynthConfig, {"families": {"ring": -1.0}}, "synthetic")
    with pytest.raises(ConfigError):
        from_mapping(SynthConfig, {"families": {"ring": 0.0}}, "synthetic")
    ok = from_mapping(SynthConfig, {"families": {"ring": 2.0, "lrg": 2.0}}, "synthetic")
    assert {draw_params(0, i, ok).family for i in range(30)} == {"ring", "lrg"}


def test_family_survives_the_parquet_round_trip(tmp_path) -> None:
    path = write_synthetic_parquet(tmp_path / "s.parquet", 6, seed=3, cfg=CFG, row_group_size=4)
    src = ParquetSource(path, ParquetConfig())
    got = [r for c in range(src.n_chunks()) for r in src.read_chunk(c)]
    assert [r.meta["family"] for r in got] == [draw_params(3, i, CFG).family for i in range(6)]


def test_family_reaches_shard_metadata_of_hosts_and_controls(tmp_path) -> None:
    assert is_label_leaking("family")  # metadata only, never a model input
    overrides = {
        "input": {"synthetic": {"n_parents": 48, "row_group_size": 24}},
        "output": {"samples_per_shard": 48},
    }
    make_shards(load_build_config(None, overrides), tmp_path, BuildOptions(progress=False))
    by_role: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for tar in sorted(tmp_path.glob("*/*.tar")):
        for s in iter_tar_samples(str(tar)):
            assert s["meta"]["family"] in FAMILIES
            by_role[s["label"]][s["meta"]["family"]] += 1
    assert sum(by_role[0].values()) > 5 and sum(by_role[1].values()) > 5
    # families are not the label: both roles carry hard-negative families
    assert set(by_role[0]) - {"lrg"} and set(by_role[1]) - {"lrg"}
