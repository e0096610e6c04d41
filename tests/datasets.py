"""Tiny shard datasets for tests, written with the real writer and manifest.

Positives carry a faint ring (a crude arc) so a model can learn something; images are noise plus
a central galaxy in nanomaggies. Nothing here is used by the package itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shards.manifest import Manifest, ShardEntry
from shards.schema import CATALOG_FIELDS, SPLITS, make_key, shard_name
from shards.writer import Sample, write_shard

DEFAULT_SIZES: Mapping[str, Sequence[int]] = {"train": (6, 6, 4), "val": (5, 3), "test": (4,)}


def fake_image(rng: np.random.Generator, label: int, ring_amp: float = 0.5) -> np.ndarray:
    """A (3,64,64) float32 stamp: sky noise + round galaxy (+ ring of radius 8 px if label)."""
    yy, xx = np.mgrid[:64, :64] - 31.5
    r = np.hypot(xx, yy)
    galaxy = np.exp(-r / 3.0)
    img = (
        rng.normal(0.0, 0.05, size=(3, 64, 64)) + galaxy * np.array([0.5, 1.0, 1.5])[:, None, None]
    )
    if label:
        img += (
            ring_amp
            * np.exp(-0.5 * ((r - 8.0) / 1.2) ** 2)
            * np.array([1.0, 0.8, 0.6])[:, None, None]
        )
    return img.astype(np.float32)


def make_tiny_dataset(
    root: str | Path,
    sizes: Mapping[str, Sequence[int]] = DEFAULT_SIZES,
    seed: int = 0,
    ring_amp: float = 0.5,
    dtype: str = "float32",
) -> Manifest:
    """Write shards of the given per-split sizes under ``root`` plus a manifest; return it.

    Galaxy ids are unique across the dataset; labels alternate within each shard.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    manifest = Manifest(seed=seed, status="complete", config={"tiny": True})
    gid = 0
    for split in SPLITS:
        for index, n in enumerate(sizes.get(split, ())):
            samples = []
            for j in range(n):
                label = (gid + j) % 2
                galaxy_id = f"tiny{gid + j:06d}"
                catalog = {k: 0.0 for k in CATALOG_FIELDS}
                catalog.update({f"psfsize_{b}": 1.3 for b in "grz"})
                catalog.update({f"psfdepth_{b}": 300.0 for b in "grz"})
                meta = {
                    "galaxy_id": galaxy_id,
                    "split": split,
                    "label": label,
                    "role": "host" if label else "control",
                    **catalog,
                }
                samples.append(
                    Sample(make_key(galaxy_id), fake_image(rng, label, ring_amp), meta, label)
                )
            gid += n
            rel = shard_name(split, index)
            info = write_shard(root / rel, samples, dtype=dtype)
            manifest.shards.append(ShardEntry.from_info(info, split, index, root))
    manifest.recompute_splits()
    manifest.save(root)
    return manifest
