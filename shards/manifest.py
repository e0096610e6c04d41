"""The dataset manifest (``OUT/manifest.json``): what was built, from what, and how to check it.

The manifest is the single source of truth for readers: the trainer takes its shard list and
expected sample counts from here, ``builder verify`` checks every shard against it. It is written
atomically and contains no timestamps, so an interrupted-and-resumed build produces a manifest
byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_text
from shards.errors import ManifestError
from shards.schema import SCHEMA_VERSION, SPLITS

__all__ = ["MANIFEST_NAME", "REJECTS_NAME", "Manifest", "ManifestError", "ShardEntry"]

MANIFEST_NAME = "manifest.json"
REJECTS_NAME = "rejects.jsonl"


@dataclass
class ShardEntry:
    """One shard as recorded in the manifest (``path`` is relative to the dataset root)."""

    path: str
    split: str
    index: int
    n_samples: int
    n_pos: int
    n_neg: int
    sha256: str
    bytes: int
    n_planned: int = 0
    n_rejected: int = 0

    def __post_init__(self) -> None:
        """Refuse a field of the wrong type or a negative count (a hand-edited manifest)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
                ok = ok and value >= 0
                want = "a non-negative integer"
            else:
                ok, want = isinstance(value, str), "a string"
            if not ok:
                raise ManifestError(f"shard {self.path!r}: {f.name} must be {want}, got {value!r}")

    @classmethod
    def from_info(
        cls,
        info: Any,
        split: str,
        index: int,
        root: str | Path,
        n_planned: int | None = None,
        n_rejected: int = 0,
    ) -> ShardEntry:
        """Entry for a shard just written (``info`` is a :class:`shards.writer.ShardInfo`)."""
        return cls(
            path=Path(info.path).relative_to(root).as_posix(),
            split=split,
            index=index,
            n_samples=info.n_samples,
            n_pos=info.n_pos,
            n_neg=info.n_neg,
            sha256=info.sha256,
            bytes=info.bytes,
            n_planned=info.n_samples if n_planned is None else n_planned,
            n_rejected=n_rejected,
        )


@dataclass
class Manifest:
    """Contents of ``manifest.json``.

    Attributes
    ----------
    schema_version : int
        Version of the shard format (:data:`shards.schema.SCHEMA_VERSION`).
    status : str
        ``"complete"`` once every shard is written, ``"building"`` before.
    config : dict
        The full resolved build configuration.
    config_sha256 : str
        Fingerprint of ``config`` plus the input description; a rerun with another fingerprint
        into the same directory is refused unless told to overwrite.
    seed : int
        Master seed of the build.
    versions : dict
        Package versions used (numpy, galsim, lenstronomy, webdataset, ...).
    source : dict
        Description of the parent sample (kind, path, chunks).
    shards : list[ShardEntry]
        Every shard, sorted by split then index.
    splits : dict
        Per-split totals: n_samples, n_pos, n_neg, n_shards.
    rejections : dict
        Counts by reason and stage; the rows are in ``rejects.jsonl``.
    injection : dict
        Draw statistics: accepted, failed draws by reason, redraws.
    matching : dict
        Per split, KS statistic and p-value between hosts and controls for r-band flux,
        psfsize_r and psfdepth_r after the acceptance cuts.
    controls : str
        ``"unpaired"`` (default) or ``"paired"`` (ablation only).
    split_scheme : dict
        How splits were assigned: ``scheme`` (``healpix`` or ``hash``) and, for healpix,
        ``nside``, ``order``, ``pixel_area_deg2`` and ``n_pixels`` per split; ``builder verify``
        checks that no pixel spans two splits. Empty for datasets built before it existed.
    positives : dict
        Real positives (``--positives``) and known-lens exclusions (``--known-lenses``): planned
        real and injected positives per split, real ones by grade, the grade -> weight mapping,
        and the controls excluded near known lenses / real positives. Empty without them.
    """

    schema_version: int = SCHEMA_VERSION
    status: str = "building"
    config: dict[str, Any] = field(default_factory=dict)
    config_sha256: str = ""
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    controls: str = "unpaired"
    shards: list[ShardEntry] = field(default_factory=list)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    rejections: dict[str, Any] = field(default_factory=dict)
    injection: dict[str, Any] = field(default_factory=dict)
    matching: dict[str, Any] = field(default_factory=dict)
    split_scheme: dict[str, Any] = field(default_factory=dict)
    positives: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- queries
    def shards_for(self, split: str) -> list[ShardEntry]:
        """Shards of one split, in index order."""
        if split not in SPLITS:
            raise ManifestError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
        return sorted((s for s in self.shards if s.split == split), key=lambda s: s.index)

    def expected(self, split: str) -> int:
        """Number of samples the split holds according to the manifest."""
        return sum(s.n_samples for s in self.shards_for(split))

    def recompute_splits(self) -> None:
        """Recompute the per-split totals from the shard list."""
        self.splits = {}
        for split in SPLITS:
            entries = [s for s in self.shards if s.split == split]
            self.splits[split] = {
                "n_shards": len(entries),
                "n_samples": sum(s.n_samples for s in entries),
                "n_pos": sum(s.n_pos for s in entries),
                "n_neg": sum(s.n_neg for s in entries),
            }

    # ---------------------------------------------------------------- I/O
    def to_json(self) -> str:
        d = asdict(self)
        d["shards"] = [asdict(s) for s in sorted(self.shards, key=lambda s: (s.split, s.index))]
        return json.dumps(d, indent=1, sort_keys=True, allow_nan=False) + "\n"

    def save(self, root: str | Path) -> Path:
        """Write ``root/manifest.json`` atomically."""
        path = Path(root) / MANIFEST_NAME
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, root: str | Path, schema_version: int = SCHEMA_VERSION) -> Manifest:
        """Read ``root/manifest.json`` (``root`` may also be the manifest file itself).

        Its ``schema_version`` must be ``schema_version`` (that of the member table in use).
        """
        path = Path(root)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"no manifest at {path} (is this a dataset built by `builder`?)")
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
        if not isinstance(d, dict) or d.get("schema_version") != schema_version:
            version = d.get("schema_version") if isinstance(d, dict) else None
            raise ManifestError(
                f"{path}: schema version {version} unsupported (this code reads {schema_version})"
            )
        try:
            d["shards"] = [ShardEntry(**s) for s in d.get("shards", [])]
            return cls(**d)
        except (TypeError, ManifestError) as exc:
            raise ManifestError(f"{path}: malformed manifest ({exc})") from None
