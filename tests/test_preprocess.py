"""Annulus normalisation and dihedral symmetries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.configio import ConfigError, from_mapping
from tests.datasets import fake_image
from train.preprocess import (
    MIN_SIGMA,
    N_DIHEDRAL,
    PreprocessConfig,
    annulus_mask,
    annulus_stats,
    dihedral,
    dihedral_inverse,
    normalize,
    random_dihedral,
    stack_dihedral,
)

RNG = np.random.default_rng(12345)
MASK = annulus_mask(64, 64, 20.0)


def robust(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference median and 1.4826 MAD over the last axis."""
    med = np.median(x, axis=-1)
    return med, 1.4826 * np.median(np.abs(x - med[..., None]), axis=-1)


def batch(n: int = 5) -> np.ndarray:
    """Stamps with per-band offsets and scales, plus a bright centre."""
    x = RNG.normal(size=(n, 3, 64, 64)) * RNG.uniform(0.01, 3.0, size=(n, 3, 1, 1))
    x += RNG.uniform(-5, 5, size=(n, 3, 1, 1))
    x[:, :, 24:40, 24:40] += 50.0
    return x.astype(np.float32)


def arc(amplitude: float = 2.0) -> np.ndarray:
    """A ring of radius 8 px, entirely inside the annulus' inner radius."""
    yy, xx = np.mgrid[:64, :64] - 31.5
    r = np.hypot(xx, yy)
    ring = amplitude * np.exp(-0.5 * ((r - 8.0) / 2.0) ** 2) * (r < 18.0)
    return (ring * np.ones((3, 1, 1))).astype(np.float32)


# ------------------------------------------------------------------ config


def test_default_config_is_valid():
    cfg = from_mapping(PreprocessConfig, {})
    assert cfg == PreprocessConfig()
    assert (cfg.annulus_inner_pix, cfg.asinh, cfg.asinh_softening, cfg.clip) == (20, False, 1, None)


@pytest.mark.parametrize(
    "data,key",
    [
        ({"annulus_inner_pix": -1}, "pre.annulus_inner_pix"),
        ({"annulus_inner_pix": 44}, "pre.annulus_inner_pix"),  # annulus nearly empty
        ({"asinh_softening": 0}, "pre.asinh_softening"),
        ({"clip": -2.0}, "pre.clip"),
        ({"clip": float("inf")}, "pre.clip"),
        ({"colour": 1}, "pre.colour"),
    ],
)
def test_invalid_config_names_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        from_mapping(PreprocessConfig, data, "pre")
    assert err.value.key == key


# ------------------------------------------------------------------ normalisation


def test_annulus_mask_geometry():
    assert MASK[0, 0] and MASK[63, 63] and not MASK[31, 31] and not MASK[32, 50]
    assert MASK[31, 0] and not MASK[31, 12]  # 31.5 px vs 19.5 px from the centre
    assert int(MASK.sum()) == 2832


@pytest.mark.parametrize("inner", [20.0, 10.0, 27.3])  # even and odd annulus pixel counts
def test_annulus_stats_match_reference(inner):
    x = batch()
    med, sigma = annulus_stats(x, inner)
    ref_med, ref_sigma = robust(x[:, :, annulus_mask(64, 64, inner)])
    np.testing.assert_allclose(med, ref_med, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-5)


def test_normalised_annulus_has_zero_median_unit_sigma():
    out = normalize(batch(6))
    assert out.dtype == np.float32 and out.shape == (6, 3, 64, 64)
    med, sigma = robust(out[:, :, MASK])
    np.testing.assert_allclose(med, 0.0, atol=1e-5)
    np.testing.assert_allclose(sigma, 1.0, rtol=1e-5)


def test_arc_inside_inner_radius_does_not_change_normalisation():
    rng = np.random.default_rng(0)
    host = np.stack([fake_image(rng, 0) for _ in range(4)])
    lensed = host + arc()
    # The premise: whole-stamp statistics (the old shortcut) do see the arc...
    whole_host, whole_lensed = robust(host.reshape(4, 3, -1)), robust(lensed.reshape(4, 3, -1))
    assert np.all(np.abs(whole_lensed[0] - whole_host[0]) > 1e-3)
    assert np.all(np.abs(whole_lensed[1] - whole_host[1]) > 1e-3)
    # ...the annulus statistics do not, so the arc is only added, scaled, to the output.
    for a, b in zip(annulus_stats(host, 20.0), annulus_stats(lensed, 20.0), strict=True):
        np.testing.assert_array_equal(a, b)
    _, sigma = annulus_stats(host, 20.0)
    np.testing.assert_allclose(
        normalize(lensed) - normalize(host), arc()[None] / sigma[:, :, None, None], atol=1e-4
    )


def test_flat_annulus_never_divides_by_zero():
    x = np.zeros((2, 3, 64, 64), dtype=np.float32)
    x[:, :, 30:34, 30:34] = 1e-3
    with np.errstate(all="raise"):
        out = normalize(x)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, :, 31, 31], 1e-3 / MIN_SIGMA, rtol=1e-5)
    assert (annulus_stats(x, 20.0)[1] == np.float32(MIN_SIGMA)).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.float32])
def test_output_is_float32(dtype):
    assert normalize(batch(2).astype(dtype)).dtype == np.float32


def test_torch_in_torch_out():
    x = batch(3)
    out = normalize(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), normalize(x))


def test_inplace_matches_and_overwrites():
    x = batch(3)
    expected = normalize(x)
    y = x.copy()
    out = normalize(y, inplace=True)
    assert out is y
    np.testing.assert_array_equal(y, expected)
    with pytest.raises(ValueError, match="inplace"):
        normalize(x.astype(np.float64), inplace=True)


def test_asinh_and_clip():
    x = batch(2)
    z = normalize(x)
    cfg = PreprocessConfig(asinh=True, asinh_softening=3.0)
    np.testing.assert_allclose(normalize(x, cfg), np.arcsinh(z / 3.0), rtol=1e-5, atol=1e-6)
    clipped = normalize(x, PreprocessConfig(clip=2.5))
    assert clipped.max() == np.float32(2.5) and clipped.min() == np.float32(-2.5)
    np.testing.assert_array_equal(clipped[np.abs(z) < 2.5], z[np.abs(z) < 2.5])


def test_rejects_non_batches():
    with pytest.raises(ValueError, match="B, C, H, W"):
        normalize(np.zeros((3, 64, 64), dtype=np.float32))


# ------------------------------------------------------------------ dihedral group


def test_eight_distinct_symmetries_identity_first():
    x = RNG.normal(size=(1, 3, 64, 64)).astype(np.float32)
    images = [dihedral(x, k) for k in range(N_DIHEDRAL)]
    np.testing.assert_array_equal(images[0], x)
    assert len({im.tobytes() for im in images}) == N_DIHEDRAL


def test_matches_rot90_and_flip_definition():
    x = RNG.normal(size=(2, 3, 64, 64)).astype(np.float32)
    for k in range(N_DIHEDRAL):
        ref = np.rot90(x, k % 4, axes=(-2, -1))
        ref = np.flip(ref, axis=-1) if k >= 4 else ref
        np.testing.assert_array_equal(dihedral(x, k), ref)


def test_group_closure_and_inverse():
    x = RNG.normal(size=(1, 1, 64, 64)).astype(np.float32)
    elements = {dihedral(x, k).tobytes(): k for k in range(N_DIHEDRAL)}
    for a in range(N_DIHEDRAL):
        inv = dihedral_inverse(a)
        np.testing.assert_array_equal(dihedral(dihedral(x, a), inv), x)
        for b in range(N_DIHEDRAL):
            assert dihedral(dihedral(x, a), b).tobytes() in elements
    np.testing.assert_array_equal(dihedral_inverse(np.arange(8)), [0, 3, 2, 1, 4, 5, 6, 7])


def test_per_sample_symmetries_and_torch_agree():
    x = RNG.normal(size=(16, 3, 64, 64)).astype(np.float32)
    ks = np.arange(16) % N_DIHEDRAL
    out = dihedral(x, ks)
    assert out.dtype == np.float32 and not np.shares_memory(out, x)
    for i, k in enumerate(ks):
        np.testing.assert_array_equal(out[i], dihedral(x[i : i + 1], int(k))[0])
    np.testing.assert_array_equal(dihedral(torch.from_numpy(x), ks).numpy(), out)
    np.testing.assert_array_equal(stack_dihedral(list(x), ks), out)


def test_random_dihedral_is_seeded():
    x = RNG.normal(size=(32, 3, 64, 64)).astype(np.float32)
    a = random_dihedral(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, random_dihedral(x, np.random.default_rng(5)))
    assert not np.array_equal(a, random_dihedral(x, np.random.default_rng(6)))


def test_normalisation_commutes_with_symmetries():
    x = batch(8)
    ks = np.arange(8)
    np.testing.assert_allclose(normalize(dihedral(x, ks)), dihedral(normalize(x), ks), atol=1e-6)


def test_invalid_symmetry_index():
    with pytest.raises(ValueError, match="0..7"):
        dihedral(np.zeros((2, 3, 64, 64), dtype=np.float32), 8)
    with pytest.raises(ValueError, match="square"):
        dihedral(np.zeros((2, 3, 64, 32), dtype=np.float32), 1)
