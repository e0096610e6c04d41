"""The build configuration: one dataclass tree, loaded from YAML and CLI flags, validated up front.

``builder dump-config`` prints the full default configuration as YAML with every parameter;
``configs/build-default.yaml`` is that output, committed for reference.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.inject.config import InjectionConfig
from builder.parents.config import FitsConfig, ParquetConfig, SynthConfig
from common.configio import (
    ConfigError,
    check,
    check_between,
    from_mapping,
    load_yaml,
    merge,
    to_dict,
)
from shards.schema import SPLITS
from shards.writer import STORAGE_DTYPES

INPUT_KINDS = ("synthetic", "parquet", "fits")


@dataclass
class InputConfig:
    """Where the parent galaxies come from.

    Attributes
    ----------
    kind : str
        ``synthetic`` (built-in GalSim sky, written to ``OUT/parents/synthetic.parquet`` and read
        back through the Parquet reader), ``parquet`` (seed layout) or ``fits`` (directory of
        cutout-service FITS files).
    path : str or None
        Parquet file or FITS directory (ignored for ``synthetic``).
    n_synthetic : int
        Number of synthetic parent galaxies to render.
    synthetic_row_group_size : int
        Rows per Parquet row group of the synthetic parent file.
    """

    kind: str = "synthetic"
    path: str | None = None
    n_synthetic: int = 4000
    synthetic_row_group_size: int = 500
    parquet: ParquetConfig = field(default_factory=ParquetConfig)
    fits: FitsConfig = field(default_factory=FitsConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)

    def validate(self, prefix: str = "input") -> None:
        check(self.kind in INPUT_KINDS, f"{prefix}.kind", f"must be one of {INPUT_KINDS}")
        if self.kind != "synthetic":
            check(bool(self.path), f"{prefix}.path", f"required for kind={self.kind}")
        check(self.n_synthetic > 0, f"{prefix}.n_synthetic", "must be > 0")
        check(
            self.synthetic_row_group_size > 0, f"{prefix}.synthetic_row_group_size", "must be > 0"
        )


@dataclass
class SplitConfig:
    """Split and role assignment.

    Attributes
    ----------
    salt : str
        Salt of the id hash that assigns splits and roles (change it to draw a new partition).
    fractions : dict
        Fraction of galaxies per split (train/val/test), summing to 1.
    pos_fraction : dict
        Per split, the fraction of galaxies that become hosts (label 1); the rest are controls.
    controls : str
        ``unpaired`` (default: controls are different galaxies) or ``paired`` (ABLATION ONLY:
        every galaxy appears as host and as control, the Gen-2 design).
    """

    salt: str = "dr10-lens-v1"
    fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1}
    )
    pos_fraction: dict[str, float] = field(
        default_factory=lambda: {"train": 0.5, "val": 0.5, "test": 0.5}
    )
    controls: str = "unpaired"

    def validate(self, prefix: str = "splits") -> None:
        check(bool(self.salt), f"{prefix}.salt", "must be non-empty")
        for name, d in (("fractions", self.fractions), ("pos_fraction", self.pos_fraction)):
            check(set(d) == set(SPLITS), f"{prefix}.{name}", f"needs exactly the keys {SPLITS}")
            for k, v in d.items():
                check_between(float(v), f"{prefix}.{name}.{k}", 0.0, 1.0)
        total = sum(float(v) for v in self.fractions.values())
        check(abs(total - 1.0) < 1e-9, f"{prefix}.fractions", f"must sum to 1 (got {total})")
        check(
            self.controls in ("unpaired", "paired"),
            f"{prefix}.controls",
            "must be 'unpaired' or 'paired' (paired is an ablation)",
        )


@dataclass
class OutputConfig:
    """Shard layout.

    Attributes
    ----------
    samples_per_shard : int
        Samples per shard; every shard of a split holds this many planned samples except the last.
    dtype : str
        Image storage dtype, ``float32`` or ``float16`` (halves size; see docs/benchmarks.md).
    with_arcs : bool
        Also store the noiseless arc model of positives as ``KEY.arc.npy``.
    """

    samples_per_shard: int = 1000
    dtype: str = "float32"
    with_arcs: bool = False

    def validate(self, prefix: str = "output") -> None:
        check(self.samples_per_shard > 0, f"{prefix}.samples_per_shard", "must be > 0")
        check(self.dtype in STORAGE_DTYPES, f"{prefix}.dtype", f"must be one of {STORAGE_DTYPES}")


@dataclass
class RejectConfig:
    """Input validation limits.

    Attributes
    ----------
    max_reject_fraction : float
        Abort the build when more than this fraction of parent rows is rejected.
    psfsize_arcsec : list
        Accepted PSF FWHM range (arcsec).
    psfdepth_invnmgy2 : list
        Accepted psfdepth range (1/nanomaggy^2).
    """

    max_reject_fraction: float = 0.05
    psfsize_arcsec: tuple[float, float] = (0.5, 4.0)
    psfdepth_invnmgy2: tuple[float, float] = (1.0, 1.0e6)

    def validate(self, prefix: str = "rejects") -> None:
        check_between(self.max_reject_fraction, f"{prefix}.max_reject_fraction", 0.0, 1.0)
        for name in ("psfsize_arcsec", "psfdepth_invnmgy2"):
            lo, hi = getattr(self, name)
            check(0 < lo < hi, f"{prefix}.{name}", f"need 0 < low < high (got [{lo}, {hi}])")


@dataclass
class BuildConfig:
    """Everything that determines the bytes of a build (``workers`` does not)."""

    seed: int = 0
    max_parents: int | None = None
    input: InputConfig = field(default_factory=InputConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    injection: InjectionConfig = field(default_factory=InjectionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    rejects: RejectConfig = field(default_factory=RejectConfig)

    def validate(self, prefix: str = "") -> None:
        check(self.seed >= 0, "seed", "must be >= 0")
        if self.max_parents is not None:
            check(self.max_parents > 0, "max_parents", "must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def fingerprint(self, source_desc: dict[str, Any]) -> str:
        """sha256 of the canonical config plus the input description."""
        blob = json.dumps({"config": self.to_dict(), "source": source_desc}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def load_build_config(
    yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> BuildConfig:
    """Defaults, then the YAML file, then ``overrides`` (nested dict), validated.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    data: dict[str, Any] = {}
    if yaml_path is not None:
        data = load_yaml(yaml_path)
    if overrides:
        data = merge(data, overrides)
    try:
        return from_mapping(BuildConfig, data)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError("", str(exc)) from None
