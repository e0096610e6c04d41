"""Feature sets of the shortcut audit (``builder audit``): image batch -> feature matrix.

Each set is a deterministic function of a ``(B, 3, 64, 64)`` batch of stamps in nanomaggies (or
of the samples' metadata, for ``catalog``). The audit computes the image sets twice: on the
*host-only* stamps (stored image minus the stored noiseless arc for positives; the stamp itself
for controls), where a classifier must do no better than chance, and on the stored stamps with
the arc, reported as information. Register a new set with :func:`register_feature_set`.

Also here: :func:`blue_excess`, the one hand-made feature that separated the classes of the
early synthetic sky ("g-band light in excess of the host's colour 0.5-4 arcsec from the
centre").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shards.schema import CATALOG_FIELDS, PIXEL_SCALE_ARCSEC, STAMP_SIZE_PIX
from train.preprocess import PreprocessConfig, annulus_stats

ImageFn = Callable[[np.ndarray], np.ndarray]
_C = (STAMP_SIZE_PIX - 1) / 2.0
_YY, _XX = np.mgrid[:STAMP_SIZE_PIX, :STAMP_SIZE_PIX] - _C
_R_PIX = np.hypot(_XX, _YY)
SOFTENING_NMGY = 0.01
"""asinh softening of pixel features: linear below ~ the DR10 sky noise, logarithmic above."""
RADIAL_EDGES_PIX: tuple[float, ...] = (0, 1.5, 3, 4.5, 6, 8, 10, 12.5, 15, 18, 22, 26, 32)
CENTRAL_BOX_PIX = 16
HOST_IMAGE_BIN_PIX = 8


@dataclass(frozen=True)
class FeatureSet:
    """One audit feature set.

    Attributes
    ----------
    name : str
        Report key.
    fn : callable or None
        ``fn(images) -> (B, F)`` for image sets; None for the catalog set.
    description : str
        One line for the report.
    """

    name: str
    fn: ImageFn | None
    description: str


FEATURE_SETS: dict[str, FeatureSet] = {}
"""Name -> :class:`FeatureSet`, in report order."""


def register_feature_set(name: str, description: str) -> Callable[[ImageFn], ImageFn]:
    """Decorator registering an image feature set."""

    def deco(fn: ImageFn) -> ImageFn:
        if name in FEATURE_SETS:
            raise ValueError(f"audit feature set {name!r} is already registered")
        FEATURE_SETS[name] = FeatureSet(name, fn, description)
        return fn

    return deco


def _stretch(x: np.ndarray) -> np.ndarray:
    return np.arcsinh(x / SOFTENING_NMGY)


@register_feature_set(
    "host_image", f"whole stamp, {HOST_IMAGE_BIN_PIX}x{HOST_IMAGE_BIN_PIX}-pixel bins, asinh"
)
def host_image(images: np.ndarray) -> np.ndarray:
    b, c, h, w = images.shape
    k = HOST_IMAGE_BIN_PIX
    binned = images.reshape(b, c, h // k, k, w // k, k).sum(axis=(3, 5))
    return _stretch(binned).reshape(b, -1)


@register_feature_set(
    "normalisation", "the trainer's annulus median and robust sigma per band (train/preprocess)"
)
def normalisation(images: np.ndarray) -> np.ndarray:
    med, sigma = annulus_stats(
        np.ascontiguousarray(images, np.float32), PreprocessConfig().annulus_inner_pix
    )
    return np.concatenate([med, np.log(sigma)], axis=1)


@register_feature_set("radial_profile", "azimuthal mean per band in 12 radial bins, asinh")
def radial_profile(images: np.ndarray) -> np.ndarray:
    cols = []
    for lo, hi in zip(RADIAL_EDGES_PIX[:-1], RADIAL_EDGES_PIX[1:], strict=True):
        m = (_R_PIX >= lo) & (_R_PIX < hi)
        cols.append(images[:, :, m].mean(axis=2))
    return _stretch(np.stack(cols, axis=2)).reshape(len(images), -1)


@register_feature_set(
    "central_box", f"central {CENTRAL_BOX_PIX}x{CENTRAL_BOX_PIX} pixels in 2x2 bins, asinh"
)
def central_box(images: np.ndarray) -> np.ndarray:
    b, c, h, _ = images.shape
    lo, n = (h - CENTRAL_BOX_PIX) // 2, CENTRAL_BOX_PIX // 2
    box = images[:, :, lo : lo + CENTRAL_BOX_PIX, lo : lo + CENTRAL_BOX_PIX]
    return _stretch(box.reshape(b, c, n, 2, n, 2).sum(axis=(3, 5))).reshape(b, -1)


CATALOG_SET = FeatureSet("catalog", None, f"catalog covariates ({', '.join(CATALOG_FIELDS)})")


def catalog_features(metas: Sequence[dict[str, Any]]) -> np.ndarray:
    """(B, 8) catalog covariates of the samples (:data:`shards.schema.CATALOG_FIELDS`)."""
    return np.array([[float(m[f]) for f in CATALOG_FIELDS] for m in metas], dtype=np.float64)


BLUE_EXCESS_ANNULUS_ARCSEC = (0.5, 4.0)
_CORE_PIX = 0.5 / PIXEL_SCALE_ARCSEC


def blue_excess(images: np.ndarray) -> np.ndarray:
    """g-band light in excess of the host's colour 0.5-4 arcsec from the centre, per stamp.

    The host colour is the g/r flux ratio inside 0.5"; the excess is
    ``sum_annulus(g - ratio * r)`` divided by the r flux of the annulus (so it is a colour, not
    a brightness). Large for blue light around a red galaxy: an arc, or a blue companion.

    Returns
    -------
    ndarray
        (B,) float64.
    """
    lo, hi = (a / PIXEL_SCALE_ARCSEC for a in BLUE_EXCESS_ANNULUS_ARCSEC)
    core = _R_PIX < _CORE_PIX
    ring = (_R_PIX >= lo) & (_R_PIX < hi)
    x = images.astype(np.float64)
    g_core, r_core = x[:, 0, core].sum(axis=1), x[:, 1, core].sum(axis=1)
    ratio = g_core / np.maximum(r_core, 1e-6)
    g_ring, r_ring = x[:, 0, ring].sum(axis=1), x[:, 1, ring].sum(axis=1)
    return (g_ring - ratio * r_ring) / np.maximum(np.abs(r_ring), 1e-3)
