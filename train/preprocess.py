"""The one preprocessing of image batches, shared by training, evaluation and inference.

Each sample and band is normalised with robust statistics of the *outer annulus* of the stamp
(pixels at least ``annulus_inner_pix`` from the centre): subtract its median, divide by
``1.4826 * MAD``. The centre, where a lensing arc lives, never enters the statistics, so adding an
arc cannot change how the rest of the stamp is scaled (whole-stamp statistics would be a label
shortcut). An optional asinh stretch and clip follow. The eight dihedral symmetries of the square
stamp serve as augmentation; the annulus is invariant under them, so normalising before or after
augmenting gives the same result.

Everything works on whole batches ``(B, C, H, W)``: numpy arrays, or torch tensors (returned as
tensors on their original device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

from common.configio import check

MAD_TO_SIGMA = 1.4826
MIN_SIGMA = 1e-6  # nanomaggies; floor for a flat annulus (a pure-noise DR10 sky is ~1e-3)
MIN_ANNULUS_PIX = 64
N_DIHEDRAL = 8

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass
class PreprocessConfig:
    """How to normalise a stamp.

    Attributes
    ----------
    annulus_inner_pix : float
        Pixels whose distance from the stamp centre ((31.5, 31.5) for 64x64) is >= this form the
        annulus whose median / MAD normalise the stamp.
    asinh : bool
        Apply ``arcsinh(x / asinh_softening)`` after normalising.
    asinh_softening : float
        Softening of the stretch, in units of the annulus sigma.
    clip : float or None
        Clip the result to ``[-clip, clip]``; ``None`` keeps it unbounded.
    """

    annulus_inner_pix: float = 20.0
    asinh: bool = False
    asinh_softening: float = 1.0
    clip: float | None = None

    def validate(self, prefix: str = "") -> None:
        """Raise :class:`common.configio.ConfigError` naming the offending key."""
        p = f"{prefix}." if prefix else ""
        r = self.annulus_inner_pix
        check(
            isinstance(r, int | float) and math.isfinite(r) and r >= 0,
            f"{p}annulus_inner_pix",
            f"must be a finite number >= 0 (got {r!r})",
        )
        n = int(annulus_mask(64, 64, float(r)).sum())
        check(
            n >= MIN_ANNULUS_PIX,
            f"{p}annulus_inner_pix",
            f"leaves {n} pixels of a 64x64 stamp in the annulus; need >= {MIN_ANNULUS_PIX}",
        )
        s = self.asinh_softening
        check(
            isinstance(s, int | float) and math.isfinite(s) and s > 0,
            f"{p}asinh_softening",
            f"must be a finite number > 0 (got {s!r})",
        )
        c = self.clip
        check(
            c is None or (isinstance(c, int | float) and math.isfinite(c) and c > 0),
            f"{p}clip",
            f"must be null or a finite number > 0 (got {c!r})",
        )


@lru_cache(maxsize=16)
def annulus_mask(height: int, width: int, inner_pix: float) -> np.ndarray:
    """Boolean (H, W) mask of pixels at distance >= ``inner_pix`` from the stamp centre."""
    yy, xx = np.mgrid[:height, :width]
    r = np.hypot(yy - (height - 1) / 2, xx - (width - 1) / 2)
    mask = r >= inner_pix
    mask.flags.writeable = False
    return mask


@lru_cache(maxsize=16)
def _annulus_index(height: int, width: int, inner_pix: float) -> np.ndarray:
    return np.flatnonzero(annulus_mask(height, width, inner_pix))


def _median_rows_inplace(a: np.ndarray) -> np.ndarray:
    """Median of each row of the 2-d array ``a``, partially reordering ``a`` in place."""
    n = a.shape[1]
    h = n // 2
    a.partition(h, axis=1)
    upper = a[:, h]
    if n % 2:
        return upper.copy()
    # After partitioning at h, a[:, :h] <= a[:, h]: its max is the lower middle element.
    return 0.5 * (a[:, :h].max(axis=1) + upper)


def annulus_stats(images: np.ndarray, inner_pix: float) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust sigma (1.4826 MAD, floored) of the annulus, per sample and band.

    Parameters
    ----------
    images : np.ndarray
        (B, C, H, W) batch.
    inner_pix : float
        Inner radius of the annulus in pixels.

    Returns
    -------
    median, sigma : np.ndarray
        Each (B, C), float32; ``sigma >= MIN_SIGMA``.
    """
    b, c, h, w = images.shape
    idx = _annulus_index(h, w, float(inner_pix))
    if idx.size == 0:
        raise ValueError(f"annulus of inner radius {inner_pix} px is empty for {h}x{w} stamps")
    ann = np.take(images.reshape(b * c, h * w), idx, axis=1).astype(np.float32, copy=False)
    med = _median_rows_inplace(ann)
    np.subtract(ann, med[:, None], out=ann)
    np.abs(ann, out=ann)
    sigma = np.maximum(MAD_TO_SIGMA * _median_rows_inplace(ann), MIN_SIGMA)
    return med.reshape(b, c).astype(np.float32), sigma.reshape(b, c).astype(np.float32)


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _like(out: np.ndarray, ref: ArrayT) -> ArrayT:
    return torch.from_numpy(out).to(ref.device) if isinstance(ref, torch.Tensor) else out


def _check_batch(x: np.ndarray | torch.Tensor, square: bool = False) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral symmetries need square stamps, got {tuple(x.shape)}")


def normalize(
    images: ArrayT, cfg: PreprocessConfig | None = None, *, inplace: bool = False
) -> ArrayT:
    """Normalise a batch by its annulus statistics (then optional asinh stretch and clip).

    Parameters
    ----------
    images : np.ndarray or torch.Tensor
        (B, C, H, W) images in nanomaggies.
    cfg : PreprocessConfig, optional
        Defaults to ``PreprocessConfig()``.
    inplace : bool
        Overwrite ``images`` (must then be a writable float32 numpy array) instead of allocating
        a new batch; saves a pass over memory in the loader.

    Returns
    -------
    np.ndarray or torch.Tensor
        float32 batch of the same shape and kind; in the annulus each sample and band has median
        0 and robust sigma 1 (before the stretch).
    """
    cfg = cfg or PreprocessConfig()
    _check_batch(images)
    x = _to_numpy(images)
    med, sigma = annulus_stats(x, cfg.annulus_inner_pix)
    if inplace:
        if not (isinstance(images, np.ndarray) and x.dtype == np.float32 and x.flags.writeable):
            raise ValueError("inplace normalisation needs a writable float32 numpy array")
        out = x
        out -= med[:, :, None, None]
    else:
        out = np.subtract(x, med[:, :, None, None], dtype=np.float32)
    out *= (1.0 / sigma)[:, :, None, None]
    if cfg.asinh:
        if cfg.asinh_softening != 1.0:
            out *= np.float32(1.0 / cfg.asinh_softening)
        np.arcsinh(out, out=out)
    if cfg.clip is not None:
        np.clip(out, -cfg.clip, cfg.clip, out=out)
    return _like(out, images)


def _view(x: np.ndarray, k: int) -> np.ndarray:
    """Dihedral element ``k`` of the last two axes, as a strided view (no copy).

    Rotates by ``k % 4`` quarter turns in the ``np.rot90`` sense, then mirrors left-right if
    ``k >= 4``.
    """
    for _ in range(k % 4):
        x = x[..., ::-1].swapaxes(-2, -1)  # == np.rot90(x, 1, axes=(-2, -1))
    return x[..., ::-1] if k >= 4 else x


def _check_k(k: int | np.ndarray, n: int) -> np.ndarray:
    ks = np.broadcast_to(np.asarray(k, dtype=np.int64), (n,))
    if ks.size and (ks.min() < 0 or ks.max() >= N_DIHEDRAL):
        raise ValueError(f"dihedral index must be in 0..{N_DIHEDRAL - 1}, got {k!r}")
    return ks


def dihedral_inverse(k: int | np.ndarray) -> int | np.ndarray:
    """Index of the inverse symmetry: rotations invert to ``-k mod 4``, mirrors to themselves."""
    k = np.asarray(k)
    inv = np.where(k >= 4, k, (4 - k) % 4)
    return int(inv) if inv.ndim == 0 else inv


def stack_dihedral(images: Sequence[np.ndarray], k: int | np.ndarray) -> np.ndarray:
    """Stack (C, H, W) stamps into a batch, applying symmetry ``k[i]`` to stamp ``i``.

    The symmetries are strided views, so the stacking copy is the only pass over the pixels
    (no gather/scatter, no extra batch-sized temporaries).
    """
    ks = _check_k(k, len(images))
    if not len(images):
        raise ValueError("cannot stack an empty list of stamps")
    return np.stack([_view(x, g) for x, g in zip(images, ks.tolist(), strict=True)])


def _dihedral_torch(images: torch.Tensor, ks: np.ndarray) -> torch.Tensor:
    out = torch.empty_like(images)
    for g in np.unique(ks).tolist():
        sel = torch.from_numpy(np.flatnonzero(ks == g)).to(images.device)
        y = torch.rot90(images[sel], g % 4, dims=(-2, -1))
        out[sel] = torch.flip(y, dims=(-1,)) if g >= 4 else y
    return out


def dihedral(images: ArrayT, k: int | np.ndarray) -> ArrayT:
    """Apply dihedral symmetry ``k`` (0..7, 0 = identity) to each sample of a batch.

    Element ``k`` rotates by ``k % 4`` quarter turns (as ``np.rot90`` / ``torch.rot90`` on the
    last two axes) and then, if ``k >= 4``, mirrors left-right; :func:`dihedral_inverse` gives
    the inverse element.

    Parameters
    ----------
    images : np.ndarray or torch.Tensor
        (B, C, H, W) batch of square stamps.
    k : int or array of int
        One symmetry for the whole batch, or one per sample (shape (B,)).

    Returns
    -------
    np.ndarray or torch.Tensor
        New batch (never a view of ``images``). Numpy batches are restacked from strided views
        (one copy); tensors are transformed group by group with ``torch.rot90`` / ``torch.flip``
        (device-friendly).
    """
    _check_batch(images, square=True)
    ks = _check_k(k, images.shape[0])
    if isinstance(images, torch.Tensor):
        return _dihedral_torch(images, ks)
    return stack_dihedral(images, ks) if len(images) else images.copy()


def random_dihedral(images: ArrayT, rng: np.random.Generator) -> ArrayT:
    """Apply an independent uniformly drawn dihedral symmetry to each sample of a batch."""
    return dihedral(images, random_symmetries(len(images), rng))


def random_symmetries(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` dihedral indices drawn uniformly from 0..7."""
    return rng.integers(0, N_DIHEDRAL, size=n)
