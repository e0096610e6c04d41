"""``builder inspect SHARD``: list members and metadata; write a colour PNG grid of samples."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

from builder.errors import BuilderError
from shards.reader import iter_tar_samples


class SampleNotFound(BuilderError, KeyError):
    """``--key`` names no sample of the shard."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def describe_shard(path: str | Path, key: str | None = None, limit: int = 5) -> str:
    """Human-readable listing: members (like ``tar tvf``) and metadata of the first samples."""
    path = Path(path)
    lines = [f"{path}"]
    with tarfile.open(path, "r:") as tf:
        members = tf.getmembers()
    lines.append(f"  {len(members)} members")
    samples = [s for s in iter_tar_samples(str(path)) if key is None or s["__key__"] == key]
    if key is not None and not samples:
        raise SampleNotFound(f"no sample with key {key!r} in {path}")
    n_pos = sum(s["label"] for s in samples)
    lines.append(f"  {len(samples)} samples: {n_pos} positives, {len(samples) - n_pos} controls")
    for s in samples[:limit]:
        img = s["image"]
        lines.append(
            f"\n  {s['__key__']}: label={s['label']} image {img.dtype}{list(img.shape)} "
            f"nmgy, r-band sum {float(img[1].sum()):.3f}"
        )
        lines.append("  " + json.dumps(s["meta"], sort_keys=True, indent=1).replace("\n", "\n  "))
    return "\n".join(lines)


def shard_png(
    path: str | Path,
    png: str | Path,
    key: str | None = None,
    n: int = 16,
    positives_first: bool = True,
) -> Path:
    """Write a grid of colour composites (z, r, g -> red, green, blue; asinh stretch).

    When the shard was built ``--with-arcs``, each positive is followed by its noiseless arc
    model on the same stretch, so faint realistic arcs can be seen.
    """
    from train.plots import plot_cutout_grid

    samples = [s for s in iter_tar_samples(str(path)) if key is None or s["__key__"] == key]
    if not samples:
        raise SampleNotFound(f"no matching samples in {path}")
    if positives_first:
        samples.sort(key=lambda s: -s["label"])
    images, titles = [], []
    for s in samples:
        if len(images) >= n:
            break
        inj = s["meta"].get("injection")
        images.append(s["image"])
        if inj:
            titles.append(
                f'lens thE={inj.get("theta_e_arcsec", 0):.1f}" '
                f"mu={inj.get('magnification', 0):.0f} S/N={inj.get('arc_snr', 0):.0f}"
            )
            if "arc" in s:
                images.append(s["arc"])
                titles.append(f"arc model r={inj.get('source_mag_r', 0):.1f} (unlensed)")
        else:
            titles.append("control")
    plot_cutout_grid(np.stack(images[:n]).astype(np.float32), titles[:n], png)
    return Path(png)
