"""Triangle mapping of a ray-traced grid: which cells' source-plane images hold a point source.

The seed finder of :func:`builder.inject.lensing.find_images` and the grid image counter of the
renderer. Pure geometry on the ray-traced corners (no lens model here).
"""

from __future__ import annotations

import numpy as np


def count_images(
    beta_x_arcsec: np.ndarray,
    beta_y_arcsec: np.ndarray,
    source_x_arcsec: float,
    source_y_arcsec: float,
    exclude: np.ndarray | None = None,
) -> int:
    """Count the images of a point source by triangle mapping of a ray-traced grid.

    Each grid cell is split into two triangles; their source-plane images (the ray-traced
    corners) contain the source position once per image (the standard triangle-mapping image
    finder). Triangles of either orientation count, so both image parities are found. A source
    exactly on a shared edge or vertex is counted once (simulation of simplicity).

    This is a grid-resolution estimate: where the grid does not resolve a critical curve (small
    ``theta_E``, sources near a caustic) the piecewise-linear map folds in the wrong places and
    one image may cover several triangles, or an image pair none. For the number of images use
    :func:`find_images` (root finding on the lens equation); this function is its seed finder.

    Parameters
    ----------
    beta_x_arcsec, beta_y_arcsec : np.ndarray
        Source-plane positions of the (ny+1, nx+1) cell corners, arcsec.
    source_x_arcsec, source_y_arcsec : float
        Point-source position, arcsec.
    exclude : np.ndarray or None
        Boolean (ny, nx) mask of cells to ignore (those touching the singular lens centre, whose
        ray-traced triangles straddle the cut and would give spurious images).

    Returns
    -------
    int
        Number of triangles containing the source position.
    """
    inside_a, inside_b = _triangle_hits(
        beta_x_arcsec, beta_y_arcsec, source_x_arcsec, source_y_arcsec
    )
    if exclude is not None:
        keep = ~exclude
        inside_a &= keep
        inside_b &= keep
    return int(np.count_nonzero(inside_a) + np.count_nonzero(inside_b))


def _triangle_hits(
    beta_x_arcsec: np.ndarray, beta_y_arcsec: np.ndarray, source_x: float, source_y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: does its lower-left / upper-right triangle's source-plane image hold the source?

    Only cells whose four ray-traced corners do not all lie strictly on one side of the source
    (in x or in y) are tested: a triangle in an open half-plane not containing the source cannot
    contain it, and the computed edge signs agree with the exact ones (monotone rounding), so
    the prefilter changes nothing but the cost.
    """
    bx = beta_x_arcsec - source_x
    by = beta_y_arcsec - source_y
    cand = ~(
        _all_corners(bx > 0) | _all_corners(bx < 0) | _all_corners(by > 0) | _all_corners(by < 0)
    )
    shape = cand.shape
    inside_a = np.zeros(shape, dtype=bool)
    inside_b = np.zeros(shape, dtype=bool)
    idx = np.flatnonzero(cand)
    if not idx.size:
        return inside_a, inside_b
    ci, cj = np.divmod(idx, shape[1])
    v00 = (bx[ci, cj], by[ci, cj])
    v01 = (bx[ci, cj + 1], by[ci, cj + 1])
    v10 = (bx[ci + 1, cj], by[ci + 1, cj])
    v11 = (bx[ci + 1, cj + 1], by[ci + 1, cj + 1])

    def side(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        # Sign (+1 / -1) of the z-component of a x b: on which side of the edge a->b the source
        # lies. An exact zero (source on the edge's line) is decided by simulation of
        # simplicity: the source is moved by (eps, eps^2), which gives -sign(dy), or sign(dx) when
        # dy == 0, for the edge d = b - a. The reversed edge of the neighbouring triangle gets the
        # opposite sign, so a source on a shared edge or vertex is counted once, not twice.
        c = a[0] * b[1] - a[1] * b[0]
        dx, dy = b[0] - a[0], b[1] - a[1]
        tie = np.where(dy != 0, -np.sign(dy), np.sign(dx))
        return np.where(c != 0, np.sign(c), tie)

    s_11_00 = side(v11, v00)
    inside_a.flat[idx] = _inside(side(v00, v01), side(v01, v11), s_11_00)
    inside_b.flat[idx] = _inside(side(v00, v11), side(v11, v10), side(v10, v00))
    return inside_a, inside_b


def _all_corners(m: np.ndarray) -> np.ndarray:
    """Per cell of a corner grid: is ``m`` true at all four of its corners?"""
    return m[:-1, :-1] & m[:-1, 1:] & m[1:, :-1] & m[1:, 1:]


def _inside(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Inside a triangle: its three edge signs (+1/-1, 0 for a degenerate edge) all agree."""
    return ((a > 0) & (b > 0) & (c > 0)) | ((a < 0) & (b < 0) & (c < 0))
