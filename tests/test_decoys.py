"""Decoy controls (builder/inject/decoy.py): flux, colour, geometry, determinism, config."""

from __future__ import annotations

import math
from collections import Counter

import galsim
import numpy as np
import pytest
from scipy import signal, stats

from builder.build import BuildOptions, make_shards
from builder.config import load_build_config
from builder.inject import inject_arc
from builder.inject.decoy import (
    DECOY_FAMILY,
    DECOY_KINDS,
    DecoyConfig,
    add_decoy,
    decoy_rng,
    draw_decoy,
    render_decoy,
)
from builder.inject.psf import band_kernel_ffts, moffat_kernel
from builder.inject.source_light.sersic import SersicLight
from builder.photometry import nmgy_to_mag
from common.configio import ConfigError
from shards.reader import iter_tar_samples
from shards.schema import BANDS, PIXEL_SCALE_ARCSEC, is_label_leaking

CATALOG = {
    "psfsize_g": 1.35,
    "psfsize_r": 1.2,
    "psfsize_z": 1.1,
    "psfdepth_g": 3000.0,
    "psfdepth_r": 1500.0,
    "psfdepth_z": 300.0,
}
BETA = 3.5


def _host_stamp() -> np.ndarray:
    """A red exponential 'galaxy' at the stamp centre, nmgy."""
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(xx - 31.5, yy - 31.5)
    prof = np.exp(-r / 3.0) / (2 * np.pi * 9.0)
    return np.stack([f * prof for f in (3.0, 8.0, 15.0)]).astype(np.float32)


@pytest.fixture(scope="module")
def decoys() -> list:
    cfg = load_build_config(None, {"decoys": {"fraction": 1.0}})
    stamp = _host_stamp()
    out = []
    for i in range(8):
        rng = decoy_rng(cfg.seed, f"gal{i}")
        out.append((i, draw_decoy(stamp, CATALOG, rng, cfg.decoys, cfg.injection)))
    return out


def test_decoy_flux_and_colour_are_those_of_the_matched_arc(decoys) -> None:
    cfg = load_build_config(None, {"decoys": {"fraction": 1.0}})
    kinds = set()
    for i, res in decoys:
        assert res.decoy_nmgy is not None, res.params
        p = res.params
        kinds.add(p["kind"])
        drawn = np.array([p[f"flux_nmgy_{b}"] for b in BANDS])
        # the drawn flux is the noiseless arc the injection would give this stamp on this stream
        arc = inject_arc(_host_stamp(), CATALOG, decoy_rng(cfg.seed, f"gal{i}"), cfg.injection)
        np.testing.assert_allclose(drawn, arc.arc_nmgy.sum(axis=(1, 2), dtype=np.float64))
        # the noiseless decoy carries that flux (PSF conserves flux; wings leaving the stamp < 1%)
        np.testing.assert_allclose(
            res.decoy_nmgy.sum(axis=(1, 2), dtype=np.float64), drawn, rtol=1e-2
        )
        mags = nmgy_to_mag(res.decoy_nmgy.sum(axis=(1, 2), dtype=np.float64))
        assert p["g_minus_r"] == pytest.approx(mags[0] - mags[1], abs=0.02)
        assert p["r_minus_z"] == pytest.approx(mags[1] - mags[2], abs=0.02)
        assert 0.5 <= p["radius_arcsec"] <= 4.0
        # the image is the stamp + decoy + photon noise of the decoy only
        resid = res.image_nmgy - _host_stamp() - res.decoy_nmgy
        # ... with the arcs' photon noise: variance decoy / gain where the counts are large
        gain = np.asarray(cfg.injection.gain_e_per_nmgy)[:, None, None]
        bright = res.decoy_nmgy * gain > 50.0
        z = resid[bright] / np.sqrt((res.decoy_nmgy / gain)[bright])
        assert bright.sum() > 30 and 0.7 < z.std() < 1.3
    assert kinds == set(DECOY_KINDS)


def test_decoy_centroid_is_at_the_drawn_position(decoys) -> None:
    yy, xx = np.mgrid[:64, :64]
    for _, res in decoys:
        img = res.decoy_nmgy[1].astype(np.float64)
        x = ((xx - 31.5) * img).sum() / img.sum() * PIXEL_SCALE_ARCSEC
        y = ((yy - 31.5) * img).sum() / img.sum() * PIXEL_SCALE_ARCSEC
        assert x == pytest.approx(res.params["x_arcsec"], abs=0.1)
        assert y == pytest.approx(res.params["y_arcsec"], abs=0.1)


def test_streak_render_matches_galsim() -> None:
    """Geometry conventions (centre, angle, size, axis ratio) against GalSim."""
    x, y, length, q, phi = 1.7, -2.2, 2.4, 0.12, 63.0
    re = 0.5 * length * math.sqrt(q)
    light = SersicLight(x, y, re, 0.5, q, phi, (1.0, 1.0, 1.0))
    spectra = band_kernel_ffts([1.2, 1.2, 1.2], BETA)
    ours = render_decoy([(light, np.ones(3))], spectra, 8)[1]
    gauss = galsim.Gaussian(half_light_radius=re).shear(q=q, beta=phi * galsim.degrees)
    img = gauss.shift(x, y).drawImage(nx=64, ny=64, scale=PIXEL_SCALE_ARCSEC).array
    ref = signal.fftconvolve(img / img.sum(), moffat_kernel(1.2, BETA), mode="same")
    assert np.abs(ours - ref).max() < 0.01 * ref.max()


def test_streaks_are_not_tangential() -> None:
    """Streak axis vs the radius vector, measured on the rendered images: uniform, not 90 deg."""
    dcfg, icfg = DecoyConfig(fraction=1.0), load_build_config().injection
    spectra = band_kernel_ffts([1.0, 1.0, 1.0], BETA)
    yy, xx = np.mgrid[:64, :64]
    rel = []
    rng = np.random.default_rng(5)
    for _ in range(150):
        r, ang = rng.uniform(1.5, 4.0), rng.uniform(0, 360)
        x, y = r * math.cos(math.radians(ang)), r * math.sin(math.radians(ang))
        comps, _ = DECOY_KINDS["streak"].draw(rng, x, y, ang, np.ones(3), dcfg, icfg)
        img = render_decoy(comps, spectra, 4)[1].astype(np.float64)
        u, v = (xx - 31.5) * PIXEL_SCALE_ARCSEC - x, (yy - 31.5) * PIXEL_SCALE_ARCSEC - y
        mxx, myy, mxy = (img * u * u).sum(), (img * v * v).sum(), (img * u * v).sum()
        axis = 0.5 * math.degrees(math.atan2(2 * mxy, mxx - myy))
        rel.append((axis - ang) % 180.0)
    rel = np.array(rel)
    assert stats.kstest(rel / 180.0, "uniform").pvalue > 0.01
    near_tangential = np.mean(np.abs(rel - 90.0) < 15.0)
    assert 0.05 < near_tangential < 0.35  # uniform: 1/6; tangential arcs would give ~1


def test_decoys_are_off_by_default() -> None:
    cfg = load_build_config()
    assert cfg.decoys.fraction == 0.0
    fields = {"image": _host_stamp(), "meta": {"family": "ring"}, "label": 0}
    assert add_decoy(fields, "g1", CATALOG, None, cfg) is fields


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"fraction": 1.5}, "decoys.fraction"),
        ({"kinds": {"blob": 1.0}}, "decoys.kinds.blob"),
        ({"kinds": {"clump": -1}}, "decoys.kinds.clump"),
        ({"kinds": {"clump": 0, "streak": 0}}, "decoys.kinds"),
        ({"radius_arcsec": [3.0, 1.0]}, "decoys.radius_arcsec"),
        ({"streak_q": [0.0, 0.2]}, "decoys.streak_q"),
        ({"colour": 1}, "decoys.colour"),
    ],
)
def test_config_errors_name_the_key(override, key) -> None:
    with pytest.raises(ConfigError) as exc:
        load_build_config(None, {"decoys": override})
    assert str(exc.value).startswith(key)


def _build(tmp_path, name: str, workers: int, **decoys) -> tuple[list, list]:
    over = {
        "input": {"synthetic": {"n_parents": 40, "row_group_size": 20}},
        "output": {"samples_per_shard": 40, "with_arcs": True},
        "decoys": decoys,
    }
    m = make_shards(load_build_config(None, over), tmp_path / name, BuildOptions(workers=workers))
    samples = [
        s for t in sorted((tmp_path / name).glob("*/*.tar")) for s in iter_tar_samples(str(t))
    ]
    return [(s.path, s.sha256) for s in m.shards], samples


@pytest.mark.slow  # three small builds: ~6 s idle, ~25 s on a loaded machine
def test_decoy_build_is_deterministic_labelled_and_default_has_none(tmp_path) -> None:
    shas1, samples = _build(tmp_path, "a", 1, fraction=0.6)
    shas2, _ = _build(tmp_path, "b", 2, fraction=0.6)
    assert shas1 == shas2  # same bytes whatever the worker count
    fam = Counter((s["label"], s["meta"].get("family")) for s in samples)
    assert fam[(0, DECOY_FAMILY)] > 3 and fam[(1, DECOY_FAMILY)] == 0
    for s in samples:
        if s["meta"].get("family") == DECOY_FAMILY:
            assert s["label"] == 0 and s["meta"]["role"] == "control"
            d = s["meta"]["decoy"]
            assert d["kind"] in DECOY_KINDS and d["parent_family"]
            flux = s["arc"].sum(axis=(1, 2), dtype=np.float64)  # the stored noiseless decoy
            want = [d[f"flux_nmgy_{b}"] for b in BANDS]
            np.testing.assert_allclose(flux, want, rtol=1e-2)
    assert is_label_leaking("decoy") and is_label_leaking("family")
    _, default = _build(tmp_path, "c", 1)
    assert not any(s["meta"].get("family") == DECOY_FAMILY for s in default)
    assert not any("decoy" in s["meta"] for s in default)
