"""``builder inspect SHARD``: list members and metadata; write a colour PNG grid of samples."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

from builder.errors import BuilderError
from common.configio import ConfigError
from common.files import NotRegularFileError, require_regular_file
from shards.errors import ShardFormatError
from shards.reader import iter_tar_samples


class SampleNotFound(BuilderError, KeyError):
    """``--key`` names no sample of the shard."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_shard_path(path: str | Path) -> Path:
    """``path`` if it can be a shard: a regular ``.tar`` file (never opens a FIFO or device)."""
    path = Path(path)
    if path.name.endswith(".idx.json"):
        tar = path.with_name(path.name[: -len(".idx.json")] + ".tar")
        raise ShardFormatError(f"{path} is a shard's offset index; inspect the shard {tar}")
    try:
        require_regular_file(path, "shard")
    except NotRegularFileError as exc:
        raise ShardFormatError(str(exc)) from None
    if path.stat().st_size == 0:
        raise ShardFormatError(f"{path}: an empty file, not a shard")
    return path


def describe_shard(path: str | Path, key: str | None = None, limit: int = 5) -> str:
    """Human-readable listing: members (like ``tar tvf``) and metadata of the first samples."""
    path = check_shard_path(path)
    lines = [f"{path}"]
    try:
        with tarfile.open(path, "r:") as tf:
            members = tf.getmembers()
    except (tarfile.TarError, EOFError) as exc:
        raise ShardFormatError(f"{path}: not a readable shard tar ({exc})") from None
    if not members:
        raise ShardFormatError(f"{path}: an empty tar, not a shard")
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
) -> Path:
    """Write a grid of colour composites (z, r, g -> red, green, blue; asinh stretch).

    Both classes are shown: up to ``n / 2`` positives then controls (more of one class when the
    shard has too few of the other), each titled with its id, ra/dec and what it is (theta_E
    and arc S/N of a lens, the family of a control; :func:`train.plots.cutout_title`). When the
    shard was built ``--with-arcs``, each positive is followed by its noiseless arc model on the
    same stretch (it counts towards ``n``), so faint realistic arcs can be seen.
    """
    from train.plots import cutout_title, plot_cutout_grid

    if n < 1:
        raise ConfigError("n", f"samples in the PNG grid must be >= 1 (got {n})")
    path = check_shard_path(path)
    samples = [s for s in iter_tar_samples(str(path)) if key is None or s["__key__"] == key]
    if not samples:
        raise SampleNotFound(f"no matching samples in {path}")
    pos = [s for s in samples if s["label"] == 1]
    neg = [s for s in samples if s["label"] != 1]
    per_pos = 2 if any("arc" in s for s in pos) else 1  # a positive and its arc model
    n_pos = min(len(pos), max((n // 2) // per_pos, 1 if pos and n >= per_pos else 0))
    n_neg = min(len(neg), n - n_pos * per_pos)
    n_pos = min(len(pos), (n - n_neg) // per_pos)
    images, titles = [], []
    for s in pos[:n_pos] + neg[:n_neg]:
        images.append(s["image"])
        titles.append(cutout_title(s["meta"]))
        if "arc" in s:
            inj = s["meta"].get("injection") or {}
            images.append(s["arc"])
            titles.append(f"arc model\nr={inj.get('source_mag_r', 0):.1f} (unlensed)")
    plot_cutout_grid(np.stack(images).astype(np.float32), titles, png)
    return Path(png)
