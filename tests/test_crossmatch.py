"""common/crossmatch.py: the known-lens CSV reader and SkyCoord matching vs brute-force haversine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.crossmatch import (
    KnownLensError,
    KnownLenses,
    match_coords,
    match_within,
    read_known_lenses,
)


def haversine_arcsec(ra1, dec1, ra2, dec2):
    """Great-circle distance matrix (n, m) in arcsec, haversine formula (independent of astropy)."""
    r1, d1 = np.radians(ra1)[:, None], np.radians(dec1)[:, None]
    r2, d2 = np.radians(ra2)[None, :], np.radians(dec2)[None, :]
    a = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))) * 3600.0


def brute_force(ra, dec, cra, cdec, radius):
    d = haversine_arcsec(ra, dec, cra, cdec)
    j = d.argmin(axis=1)
    sep = d[np.arange(len(ra)), j]
    return np.where(sep <= radius, j, -1), sep


def _sky(rng, n, ra0, dec0, half_deg=0.05):
    """``n`` points scattered ~``half_deg`` around (ra0, dec0) on the sphere (fine at the poles)."""
    r0, d0 = np.radians(ra0), np.radians(dec0)
    centre = np.array([np.cos(d0) * np.cos(r0), np.cos(d0) * np.sin(r0), np.sin(d0)])
    v = centre + rng.normal(0.0, np.radians(half_deg), (n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360.0, np.degrees(np.arcsin(v[:, 2]))


@pytest.mark.parametrize(
    "ra0,dec0",
    [(150.0, 2.0), (0.02, -5.0), (359.98, 10.0), (45.0, 89.9), (200.0, -89.95)],
    ids=["equator", "ra0", "ra360", "npole", "spole"],
)
def test_match_agrees_with_haversine(ra0, dec0):
    rng = np.random.default_rng(7)
    ra, dec = _sky(rng, 300, ra0, dec0)
    cra, cdec = _sky(rng, 40, ra0, dec0)
    known = KnownLenses(cra, cdec)
    radius = 30.0
    idx, sep = match_within(ra, dec, known, radius)
    ref_idx, ref_sep = brute_force(ra, dec, cra, cdec, radius)
    np.testing.assert_allclose(sep, ref_sep, rtol=0, atol=1e-6)
    # nearest-neighbour ties are measure-zero for random floats: indices agree exactly
    np.testing.assert_array_equal(idx, ref_idx)
    assert (idx >= 0).any() and (idx == -1).any()  # the radius really cuts


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 359.999), st.floats(-89.9, 89.9)), min_size=1, max_size=20),
    st.lists(st.tuples(st.floats(0, 359.999), st.floats(-89.9, 89.9)), min_size=1, max_size=8),
    st.floats(0.0, 3.6e5),
)
def test_match_property(points, catalog, radius):
    ra, dec = np.array(points).T
    cra, cdec = np.array(catalog).T
    idx, sep = match_coords(ra, dec, cra, cdec, radius)
    _, ref_sep = brute_force(ra, dec, cra, cdec, radius)
    np.testing.assert_allclose(sep, ref_sep, atol=1e-5)
    d = haversine_arcsec(ra, dec, cra, cdec)
    for i in range(len(ra)):
        if idx[i] >= 0:
            assert d[i, idx[i]] == pytest.approx(sep[i], abs=1e-5)
            assert sep[i] <= radius
        else:
            assert sep[i] > radius - 1e-6


def test_single_entry_and_empty_catalogue():
    idx, sep = match_coords([10.0, 10.001], [0.0, 0.0], [10.0], [0.0], radius_arcsec=2.0)
    np.testing.assert_array_equal(idx, [0, -1])
    assert sep[1] == pytest.approx(3.6, abs=1e-6)
    idx, sep = match_within([1.0, 2.0], [3.0, 4.0], KnownLenses([], []), 5.0)
    np.testing.assert_array_equal(idx, [-1, -1])
    assert np.isinf(sep).all()
    idx, sep = match_coords([], [], [1.0], [1.0], 5.0)
    assert idx.shape == (0,) and sep.shape == (0,)
    with pytest.raises(ValueError, match="radius_arcsec"):
        match_coords([1.0], [1.0], [1.0], [1.0], -1.0)


def test_read_known_lenses(tmp_path):
    p = tmp_path / "known.csv"
    p.write_text(
        "# DESI candidates\nName,RA,Dec,Grade,z\nJ1,150.1,2.2,confident,0.5\n\nJ2,0.5,-3,probable,\n"
    )
    k = read_known_lenses(p)
    assert len(k) == 2
    np.testing.assert_array_equal(k.ra_deg, [150.1, 0.5])
    np.testing.assert_array_equal(k.dec_deg, [2.2, -3.0])
    assert list(k.name) == ["J1", "J2"] and list(k.grade) == ["confident", "probable"]
    assert k.path == str(p)
    q = tmp_path / "bare.csv"
    q.write_text("ra_deg,dec_deg\n1,2\n")
    k = read_known_lenses(q)
    assert k.name is None and k.grade is None and len(k) == 1


@pytest.mark.parametrize(
    "text,match",
    [
        ("ra,foo\n1,2\n", r"no dec column.*columns: ra, foo"),
        ("x,dec\n1,2\n", r"no ra column"),
        ("ra,dec\n1,abc\n", r"line 2: column 'dec' is not a number"),
        ("ra,dec\n1,nan\n", r"line 2: column 'dec' is not finite"),
        ("ra,dec\n360.5,0\n", r"line 2: column 'ra' = 360.5 not in \[0, 360\)"),
        ("ra,dec\n1,91\n", r"column 'dec' = 91.0 not in \[-90, 90\]"),
        ("ra,dec\n1,2,3\n", r"line 2: 3 fields, header has 2"),
        ("", r"empty file"),
    ],
)
def test_read_known_lenses_errors_name_file_and_column(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(KnownLensError, match=match) as exc:
        read_known_lenses(p)
    assert str(p) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(KnownLensError, match="not found"):
        read_known_lenses(tmp_path / "nope.csv")
