"""Cutout figures: the survey-viewer colour composite, cutout titles, grids of cutouts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from train.plots.canvas import new_figure, save_figure

__all__ = [
    "RGB_OFFSET",
    "RGB_Q",
    "RGB_SCALES_GRZ",
    "cutout_title",
    "plot_cutout_grid",
    "rgb_composite",
]

# Lupton asinh stretch in nanomaggies: linear below ~stretch, logarithmic above. Sky noise in a
# DR10 coadd pixel is ~0.005-0.01 nmgy and an LRG core a few nmgy, so both stay visible.
RGB_SCALES_GRZ = (6.0, 3.4, 2.2)  # legacypipe DR2+ viewer scales for g, r, z
RGB_OFFSET = 0.03
RGB_Q = 20.0


def rgb_composite(
    image_nmgy: ArrayLike,
    scales: Sequence[float] = RGB_SCALES_GRZ,
    m: float = RGB_OFFSET,
    q: float = RGB_Q,
) -> NDArray[np.uint8]:
    """Colour composite of a (3, H, W) g, r, z stamp: z -> red, r -> green, g -> blue.

    The Legacy Surveys viewer's scheme (legacypipe ``sdss_rgb`` with the DR2+ scales
    g 6.0, r 3.4, z 2.2 and offset 0.03; Lupton et al. 2004 asinh stretch on the mean
    intensity): red galaxies come out orange-yellow, star-forming arcs blue, and sky noise stays
    dark, so images look like the survey's own cutouts. Non-finite pixels are drawn as 0.

    Parameters
    ----------
    image_nmgy : array_like, shape (3, H, W)
        g, r, z fluxes in nanomaggies per pixel.
    scales : sequence of 3 floats
        Multipliers of the g, r, z planes.
    m : float
        Offset added before the stretch (sets the black level).
    q : float
        Asinh softening.

    Returns
    -------
    numpy.ndarray of uint8, shape (H, W, 3)
    """
    img = np.asarray(image_nmgy, dtype=np.float64)
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) g, r, z image, got shape {img.shape}")
    img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
    planes = np.maximum(0.0, img * np.asarray(scales, dtype=np.float64)[:, None, None] + m)
    intensity = planes.mean(axis=0)
    intensity = np.where(intensity == 0.0, 1e-6, intensity)
    f = np.arcsinh(q * intensity) / np.sqrt(q)
    rgb = np.clip(planes[::-1] * (f / intensity), 0.0, 1.0)  # z, r, g -> R, G, B
    return np.round(np.moveaxis(rgb, 0, -1) * 255.0).astype(np.uint8)


def cutout_title(meta: Mapping[str, Any], logit: float | None = None) -> str:
    """The title of one cutout in a grid: id, ra/dec, and what the sample is.

    Lines: the galaxy id (its last 20 characters), ``ra dec`` in degrees, then for an injected
    lens ``thetaE`` (arcsec) and arc S/N, for a real lens its grade, for a control its family
    when recorded; and the logit when given.
    """
    lines = [str(meta.get("galaxy_id", meta.get("key", "?")))[-20:]]
    ra, dec = meta.get("ra"), meta.get("dec")
    if isinstance(ra, int | float) and isinstance(dec, int | float):
        lines.append(f"{ra:.4f} {dec:+.4f}")
    inj = meta.get("injection") or {}
    if inj:
        lines.append(
            f'lens thE {inj.get("theta_e_arcsec", 0):.2f}" S/N {inj.get("arc_snr", 0):.0f}'
        )
    elif meta.get("kind") == "real":
        lines.append(f"real lens {meta.get('grade', '')}".strip())
    elif meta.get("label") == 0:
        lines.append(f"control {meta.get('family', '')}".strip())
    if logit is not None:
        lines.append(f"logit {logit:.2f}")
    return "\n".join(lines)


def plot_cutout_grid(
    images: ArrayLike,
    titles: Sequence[str],
    path: str | Path,
    ncols: int = 8,
    suptitle: str | None = None,
) -> Path:
    """Grid of colour composites, e.g. highest-scoring controls or lowest-scoring lenses.

    Parameters
    ----------
    images : array_like, shape (N, 3, H, W)
        g, r, z stamps in nanomaggies.
    titles : sequence of str
        One short title per image (e.g. key and logit).
    path : str or Path
        Output image.
    ncols : int
        Columns of the grid.
    suptitle : str, optional
        Figure title.

    Returns
    -------
    Path
        The written file.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[1] != 3:
        raise ValueError(f"expected (N, 3, H, W) images, got shape {imgs.shape}")
    if len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles")
    n = max(len(imgs), 1)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = new_figure(1.6 * ncols, 1.75 * nrows + (0.3 if suptitle else 0.0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, img, title in zip(axes.flat, imgs, titles, strict=False):
        ax.imshow(rgb_composite(img), origin="lower", interpolation="nearest")
        ax.set_title(title, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return save_figure(fig, path)
